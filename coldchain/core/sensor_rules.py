"""Per-sensor state machines: temperature excursions, freezing, agitation and silence.

Each sensor's rules live in one small object built once from the inventory (thresholds copied
out of its unit's profile), fed the sensor's new readings in ``ts`` order by the engine, and
asked by ``due(now)`` for what the clock alone decides. Nothing here reads the clock or does IO.

Temperature (``lo`` = min_celsius, ``hi`` = max_celsius, ``freeze`` = freeze_celsius):

* A reading is *high* above ``hi``, *in range* within ``[lo, hi]`` (both ends in range), *low*
  in ``(freeze, lo)`` and *freezing* at or below ``freeze``.
* ``temperature_high`` / ``temperature_low`` are delayed excursions. A run starts at the first
  high (resp. low) reading; a reading that is not high (resp. neither low nor freezing) ends a
  run that has not yet opened. The alert opens at the first reading of the run
  whose ts is at least ``excursion_delay`` after the run's first reading (``started_at`` = that
  first reading, ``updated_at`` = the confirming reading). Gaps between readings do not break a
  run: without a reading in range the product is assumed to have stayed out.
* A freezing reading never starts ``temperature_low`` (it opens ``freezing`` instead), but inside
  a low run it keeps the run going and may confirm it: it is below ``lo`` too.
* Fail-safe (``due``): if a run is pending and nothing has ended it, the alert opens by the
  clock once ``excursion_delay`` has passed since the run's first reading; ``updated_at`` is
  that due moment, not the tick's ``now``, so the result does not depend on tick cadence.
* An open excursion resolves when readings stay in range for ``clear_after``: the first
  in-range reading starts the clearing, any out-of-range reading cancels it, and the alert
  resolves at the first in-range reading whose ts is at least ``clear_after`` after the
  clearing began (``resolved_at`` = that reading's ts). Temperature never resolves by the clock:
  a silent sensor keeps its excursion open (and goes offline).
* ``freezing`` opens at the first reading at or below ``freeze``, and resolves like the above
  with "above ``freeze``" as the clearing condition (a low reading clears freezing).
* ``value`` is the episode's peak so far when the transition is emitted: the maximum for high,
  the minimum for low (freezing readings included) and freezing.

Agitation: a shake reading with ``peak_g >= agitation_g`` opens ``agitation`` at once. It
resolves once ``agitation_clear`` has passed since the last such reading, decided by the clock
(``due``) or by any later reading; ``resolved_at`` is last hit + ``agitation_clear`` either way.
A hit at or after that moment starts a new episode.

Silence: ``sensor_offline`` opens by the clock when nothing was received from the sensor for
its unit's ``offline_after``. "Received" is the later of the newest reading's ts and the ``now``
of the last call that delivered any reading of the sensor (so a buffered upload that ends in
the past does not reopen it at once); before any reading it is the engine's first ``now``.
``started_at`` is that moment, ``updated_at`` the moment it fell due. It resolves, at the
``now`` of the call, when any reading of the sensor arrives. A device whose gateway reports it
offline (Zigbee2MQTT availability) opens ``sensor_offline`` at once, at the report's arrival.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from coldchain.core.alert import AlertBook, AlertKind, Place
from coldchain.core.times import format_time, parse_time
from coldchain.core.wording import say_number, say_span, say_time

IDLE, PENDING, OPEN, CLEARING = 0, 1, 2, 3
PHASES = ("idle", "pending", "open", "clearing")
NEVER = datetime(1, 1, 1, tzinfo=UTC)
"""Before any reading: the ``last`` of a sensor not yet heard from."""

IN_RANGE, HIGH, LOW, FREEZING = 0, 1, 2, 3

SEEN_GRAIN_DIVISOR = 10
"""A quiet sensor's last-seen is persisted once it moved by ``offline_after / SEEN_GRAIN_DIVISOR``."""


def _time_out(ts: datetime) -> str | None:
    return None if ts == NEVER else format_time(ts)


def _time_in(text: str | None) -> datetime:
    return NEVER if text is None else parse_time(text)


class Episode:
    """One excursion's progress: idle, pending (delay running), open, or open and clearing."""

    __slots__ = ("alert", "clear_from", "first", "peak", "phase")

    def __init__(self) -> None:
        self.phase = IDLE
        self.first = NEVER
        self.peak = 0.0
        self.clear_from = NEVER
        self.alert: str | None = None

    def end(self, book: AlertBook, at: datetime, message: str) -> None:
        """Resolve the episode's alert at ``at`` (if it opened one) and go idle."""
        if self.alert is not None:
            book.resolve(self.alert, at, value=self.peak, message=message)
        self.phase = IDLE
        self.alert = None

    def snapshot(self) -> dict[str, Any]:
        if self.phase == IDLE:
            return {"phase": "idle"}
        return {
            "phase": PHASES[self.phase],
            "first": format_time(self.first),
            "peak": self.peak,
            "clear_from": format_time(self.clear_from) if self.phase == CLEARING else None,
            "alert": self.alert,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.phase = PHASES.index(data["phase"])
        if self.phase != IDLE:
            self.first = parse_time(data["first"])
            self.peak = float(data["peak"])
            self.clear_from = _time_in(data["clear_from"])
            self.alert = data["alert"]


class SensorRules:
    """What every sensor has: its place, its newest judged reading, and its silence."""

    __slots__ = (
        "grain",
        "heard",
        "last",
        "last_due",
        "offline",
        "offline_after",
        "place",
        "saved_heard",
        "saved_last",
        "seen_due",
        "sensor",
    )

    kind = "sensor"

    def __init__(self, sensor: str, place: Place, offline_after: timedelta) -> None:
        self.sensor = sensor
        self.place = place
        self.offline_after = offline_after
        self.grain = offline_after / SEEN_GRAIN_DIVISOR
        """How stale the persisted last-seen (``heard``, ``last``) of a quiet sensor may be (see ``rules_changes``)."""
        self.saved_heard = NEVER
        """``heard`` as last persisted (by a change record or a full snapshot)."""
        self.saved_last = NEVER
        """``last`` as last persisted."""
        self.last_due = NEVER + self.grain
        """``saved_last + grain``: once ``last`` reaches it, the last-seen is due to be persisted."""
        self.seen_due = NEVER + self.grain
        """``saved_heard + grain``: once ``heard`` reaches it, the last-seen is due to be persisted."""
        self.last = NEVER
        """ts of the newest judged reading; older ones are late and do not change episodes."""
        self.heard = NEVER
        """The engine's ``now`` when a reading of this sensor last arrived (its first ``now`` before)."""
        self.offline: str | None = None

    @property
    def named(self) -> str:
        """``Sensor t-001 in Infusion fridge A``: how messages about the sensor itself begin."""
        return f"Sensor {self.sensor} in {self.place.name}"

    def _raise(
        self, book: AlertBook, kind: AlertKind, span: tuple[datetime, datetime], value: float | None, message: str
    ) -> str:
        """Open an alert about this sensor in its place; ``span`` is (started_at, updated_at)."""
        return book.open_for_sensor(kind, self.sensor, self.place, span, value, message)

    def check_offline(self, now: datetime, book: AlertBook) -> None:
        """Open ``sensor_offline`` once nothing has been received for ``offline_after``."""
        if self.offline is not None:
            return
        since = self.heard if self.heard >= self.last else self.last
        due = since + self.offline_after
        if now < due:
            return
        what = "no reading" if self.last == NEVER else "nothing received"
        said = f"{what} for {say_span(self.offline_after)} (since {say_time(since)})"
        self.offline = self._raise(book, "sensor_offline", (since, due), None, f"{self.named}: {said}")

    def reported_offline(self, at: datetime, book: AlertBook) -> None:
        """The device itself reported offline (its gateway said so) at ``at``: open ``sensor_offline`` now."""
        if self.offline is not None:
            return
        said = f"reported offline by its gateway at {say_time(at)}"
        self.offline = self._raise(book, "sensor_offline", (at, at), None, f"{self.named}: {said}")

    def back_online(self, now: datetime, book: AlertBook) -> None:
        """A reading arrived: resolve ``sensor_offline`` at ``now``."""
        if self.offline is not None:
            message = f"{self.named} is reporting again"
            book.resolve(self.offline, now, value=None, message=message)
            self.offline = None

    def at_rest(self) -> bool:
        """Nothing in progress that the clock could move on (``due`` would do nothing)."""
        return True

    def due(self, now: datetime, book: AlertBook) -> None:
        """What the clock alone decides for this sensor's episodes at ``now`` (the kinds say)."""

    def saved(self) -> None:
        """The sensor's state as it stands is persisted: its last-seen is due again a grain later."""
        self.saved_heard = self.heard
        self.saved_last = self.last
        self.seen_due = self.heard + self.grain
        self.last_due = self.last + self.grain

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "last": _time_out(self.last),
            "heard": _time_out(self.heard),
            "offline": self.offline,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.last = _time_in(data["last"])
        self.heard = _time_in(data["heard"])
        self.offline = data["offline"]


class TemperatureRules(SensorRules):
    """``temperature_high``, ``temperature_low`` and ``freezing`` of one temperature sensor."""

    __slots__ = ("clear_after", "delay", "freeze", "freezing", "hi", "high", "lo", "low", "quiet")

    kind = "temperature"

    def __init__(
        self,
        sensor: str,
        place: Place,
        offline_after: timedelta,
        *,
        lo: float,
        hi: float,
        freeze: float,
        delay: timedelta,
        clear_after: timedelta,
    ) -> None:
        super().__init__(sensor, place, offline_after)
        self.lo = lo
        self.hi = hi
        self.freeze = freeze
        self.delay = delay
        self.clear_after = clear_after
        self.high = Episode()
        self.low = Episode()
        self.freezing = Episode()
        self.quiet = True
        """No episode in progress: an in-range reading changes nothing (the engine's fast path)."""

    def at_rest(self) -> bool:
        return self.quiet

    def judge(self, ts: datetime, celsius: float, book: AlertBook) -> None:
        """Apply a reading newer than every one judged before."""
        if celsius > self.hi:
            grade = HIGH
        elif celsius >= self.lo:
            grade = IN_RANGE
        elif celsius > self.freeze:
            grade = LOW
        else:
            grade = FREEZING
        in_range = grade == IN_RANGE
        self._freezing(ts, celsius, grade == FREEZING, book)
        self._delayed(self.high, "temperature_high", ts, celsius, grade == HIGH, grade == HIGH, in_range, book)
        self._delayed(self.low, "temperature_low", ts, celsius, grade >= LOW, grade == LOW, in_range, book)
        self.quiet = self.high.phase == IDLE and self.low.phase == IDLE and self.freezing.phase == IDLE

    def due(self, now: datetime, book: AlertBook) -> None:
        """The fail-safe: a pending run that nothing has ended opens once its delay has passed."""
        if self.quiet:
            return
        pending: tuple[tuple[Episode, AlertKind], ...] = (
            (self.high, "temperature_high"),
            (self.low, "temperature_low"),
        )
        for episode, kind in pending:
            if episode.phase == PENDING and now - episode.first >= self.delay:
                self._open(episode, kind, episode.first + self.delay, by_clock=True, book=book)

    def _delayed(
        self,
        episode: Episode,
        kind: AlertKind,
        ts: datetime,
        celsius: float,
        out: bool,
        start: bool,
        in_range: bool,
        book: AlertBook,
    ) -> None:
        phase = episode.phase
        if phase == IDLE:
            if not start:
                return
            episode.phase = phase = PENDING
            episode.first = ts
            episode.peak = celsius
        if phase == PENDING:
            if not out:
                episode.phase = IDLE
                return
            episode.peak = max(episode.peak, celsius) if kind == "temperature_high" else min(episode.peak, celsius)
            if ts - episode.first >= self.delay:
                self._open(episode, kind, ts, by_clock=False, book=book)
            return
        if out:
            episode.phase = OPEN
            episode.peak = max(episode.peak, celsius) if kind == "temperature_high" else min(episode.peak, celsius)
            return
        if not in_range:
            episode.phase = OPEN  # out on the other side: not in range, so the clearing starts over
            return
        if phase == OPEN:
            episode.phase = CLEARING
            episode.clear_from = ts
        if ts - episode.clear_from >= self.clear_after:
            self._resolve(episode, kind, ts, book)

    def _open(self, episode: Episode, kind: AlertKind, at: datetime, *, by_clock: bool, book: AlertBook) -> None:
        episode.phase = OPEN
        if kind == "temperature_high":
            message = f"{self.place.name} above {say_number(self.hi)} °C for {say_span(at - episode.first)}"
            detail = f"peak {say_number(episode.peak)} °C"
        else:
            message = f"{self.place.name} below {say_number(self.lo)} °C for {say_span(at - episode.first)}"
            detail = f"lowest {say_number(episode.peak)} °C"
        if by_clock:
            detail += f"; no reading since {say_time(self.last)}"
        episode.alert = self._raise(book, kind, (episode.first, at), episode.peak, f"{message} ({detail})")

    def _resolve(self, episode: Episode, kind: AlertKind, at: datetime, book: AlertBook) -> None:
        side, limit, peak = ("above", self.hi, "peak") if kind == "temperature_high" else ("below", self.lo, "lowest")
        message = (
            f"{self.place.name} back in range ({say_number(self.lo)} to {say_number(self.hi)} °C)"
            f" after {say_span(episode.clear_from - episode.first)} {side} {say_number(limit)} °C"
            f" ({peak} {say_number(episode.peak)} °C)"
        )
        episode.end(book, at, message)

    def _freezing(self, ts: datetime, celsius: float, frozen: bool, book: AlertBook) -> None:
        episode = self.freezing
        phase = episode.phase
        if phase == IDLE:
            if not frozen:
                return
            episode.phase = OPEN
            episode.first = ts
            episode.peak = celsius
            said = f"{say_number(celsius)} °C, the product may have frozen"
            message = f"{self.place.name} at or below {say_number(self.freeze)} °C: {said}"
            episode.alert = self._raise(book, "freezing", (ts, ts), celsius, message)
            return
        if frozen:
            episode.phase = OPEN
            episode.peak = min(episode.peak, celsius)
            return
        if phase == OPEN:
            episode.phase = CLEARING
            episode.clear_from = ts
        if ts - episode.clear_from >= self.clear_after:
            message = (
                f"{self.place.name} above {say_number(self.freeze)} °C again for {say_span(ts - episode.clear_from)}"
                f" (lowest {say_number(episode.peak)} °C)"
            )
            episode.end(book, ts, message)

    def snapshot(self) -> dict[str, Any]:
        data = SensorRules.snapshot(self)
        data["high"] = self.high.snapshot()
        data["low"] = self.low.snapshot()
        data["freezing"] = self.freezing.snapshot()
        return data

    def load(self, data: dict[str, Any]) -> None:
        SensorRules.load(self, data)
        self.high.load(data["high"])
        self.low.load(data["low"])
        self.freezing.load(data["freezing"])
        self.quiet = self.high.phase == IDLE and self.low.phase == IDLE and self.freezing.phase == IDLE


class ShakeRules(SensorRules):
    """``agitation`` of one shake sensor."""

    __slots__ = ("agitation", "clear_after", "last_hit", "peak", "threshold")

    kind = "shake"

    def __init__(
        self, sensor: str, place: Place, offline_after: timedelta, *, threshold: float, clear_after: timedelta
    ) -> None:
        super().__init__(sensor, place, offline_after)
        self.threshold = threshold
        self.clear_after = clear_after
        self.agitation: str | None = None
        self.last_hit = NEVER
        self.peak = 0.0

    def at_rest(self) -> bool:
        return self.agitation is None

    def judge(self, ts: datetime, peak_g: float, book: AlertBook) -> None:
        """Apply a reading newer than every one judged before."""
        if self.agitation is not None and ts - self.last_hit >= self.clear_after:
            self._calm(book)
        if peak_g < self.threshold:
            return
        if self.agitation is not None:
            self.last_hit = ts
            self.peak = max(self.peak, peak_g)
            return
        self.last_hit = ts
        self.peak = peak_g
        message = f"{self.place.name} shaken: {say_number(peak_g)} g (limit {say_number(self.threshold)} g)"
        self.agitation = self._raise(book, "agitation", (ts, ts), peak_g, message)

    def due(self, now: datetime, book: AlertBook) -> None:
        """Resolve agitation once ``agitation_clear`` has passed since the last hit."""
        if self.agitation is not None and now - self.last_hit >= self.clear_after:
            self._calm(book)

    def _calm(self, book: AlertBook) -> None:
        if self.agitation is None:
            return
        message = (
            f"{self.place.name} still for {say_span(self.clear_after)} after shaking (peak {say_number(self.peak)} g)"
        )
        book.resolve(self.agitation, self.last_hit + self.clear_after, value=self.peak, message=message)
        self.agitation = None

    def snapshot(self) -> dict[str, Any]:
        data = SensorRules.snapshot(self)
        data["agitation"] = self.agitation
        data["last_hit"] = _time_out(self.last_hit)
        data["peak"] = self.peak
        return data

    def load(self, data: dict[str, Any]) -> None:
        SensorRules.load(self, data)
        self.agitation = data["agitation"]
        self.last_hit = _time_in(data["last_hit"])
        self.peak = float(data["peak"])
