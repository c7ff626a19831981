"""Keeps the rollups (``core/rollups.py``) up to date as readings arrive, in the process that ingests.

- Ingest hands over each batch once it is durable (``observe``). Per sensor one 5-minute
  accumulator is open; a reading of a later interval closes it, and so does the clock ``settle``
  after the interval's end (a silent sensor). A closed interval is written to ``rollup_5m`` and
  added to the sensor's running day, written to ``rollup_1d`` when the day closes. Memory: one
  accumulator and one running day per sensor.
- An interval that cannot be built from memory is recomputed from the stored readings: one a
  reading arrives for after it closed (late, or a buffered upload), one whose readings came out of
  order, one already under way when the process started, and every interval when ingest replicas
  split the readings (``mqtt.shared_group``). Its day is then recomputed from the stored 5-minute
  rollups. Recomputing waits until the spool is empty, so the raw readings are in the store.
- Rollups are derived data: rewriting one (same sensor and interval start) is how it is corrected.
  They go through the same ``DurableWriter`` as the readings, so while the store is away they are
  spooled behind the readings they summarise and replayed in order.
- What waits for a recompute is kept durably (``RollupMarks``) before ingest acks the batch that
  caused it. At start, what the previous run may have left unwritten (intervals from the newest
  stored rollup on, its day under way, the day before just after midnight) is recomputed too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.rollup_marks import Mark, RollupMarks
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.port import StoreError
from coldchain.config import Settings
from coldchain.core.records import Record, ShakeReading, TemperatureReading
from coldchain.core.rollups import (
    FIVE_MINUTES_MS,
    MEASUREMENTS,
    Accumulator,
    Band,
    Combination,
    DayBounds,
    Rollup,
    SensorPlace,
    interval_start_ms,
    rollup_of,
    utc_day,
)
from coldchain.core.times import from_millis, to_millis

log = logging.getLogger("coldchain.rollups")

_NEVER = datetime.min.replace(tzinfo=UTC)
_CATCH_UP_MS = 6 * 3_600_000
"""How far back a start looks for intervals a previous run left unwritten (a stop longer than this loses them)."""
_RUN_GAP_MS = 3_600_000
"""Marked intervals further apart than this are read from the store separately."""
_WHOLE_WINDOW = 50
"""From this many sensors sharing a window (and a large enough share of the fleet), read it once for all."""


def places_of(settings: Settings) -> dict[str, SensorPlace]:
    """Each sensor's tags and band, from its unit's profile (overrides applied)."""
    units = {unit.id: unit for unit in settings.units}
    places: dict[str, SensorPlace] = {}
    for sensor in settings.sensors:
        unit = units[sensor.unit]
        profile = settings.unit_profile(unit)
        if sensor.kind == "shake":
            band = Band("shake", None, profile.agitation_g)
        else:
            band = Band("temperature", profile.min_celsius, profile.max_celsius)
        places[sensor.id] = SensorPlace(sensor.id, unit.id, unit.site, band)
    return places


def rollup_from_row(row: dict[str, object], width: str) -> Rollup:
    """A stored rollup row (``read_range`` of ``rollup_5m`` / ``rollup_1d``) as a Rollup."""
    start = row["time"]
    assert isinstance(start, datetime)
    return Rollup(
        str(row["sensor"]),
        str(row.get("unit", "")),
        str(row.get("site", "")),
        str(row.get("kind", "")),
        width,
        start,
        int(row["count"]),  # type: ignore[call-overload]
        float(row["min"]),  # type: ignore[arg-type]
        float(row["max"]),  # type: ignore[arg-type]
        float(row["sum"]),  # type: ignore[arg-type]
        float(row["mean"]),  # type: ignore[arg-type]
        int(row["out_ms"]),  # type: ignore[call-overload]
    )


@dataclass(slots=True)
class _Day:
    """A sensor's running day: the 5-minute rollups closed so far, combined; ``complete`` while every
    interval of the day came from memory (else the day is recomputed from the store when it closes)."""

    start: datetime
    end: datetime
    parts: Combination
    complete: bool


class RollupKeeper:
    """Per-sensor accumulators, the intervals to recompute, and the loop that writes them."""

    def __init__(
        self,
        settings: Settings,
        writer: DurableWriter,
        metrics: Metrics | None = None,
        *,
        marks: RollupMarks | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        day_of: Callable[[str], DayBounds] = lambda site: utc_day,
    ) -> None:
        """``day_of(site)`` is where a site's days begin: UTC days unless a site calendar is given."""
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        self._day_of = day_of
        self.places = places_of(settings)
        self.gap = settings.export.gap_after
        self._gap_ms = int(self.gap.total_seconds() * 1000)
        self.settle = settings.rollups.settle
        self.recompute_every = settings.rollups.recompute_every.total_seconds()
        self.from_memory = not settings.mqtt.shared_group
        """False when ingest replicas split the readings: then every interval is recomputed from the store."""
        self.started = clock()
        self._started_ms = to_millis(self.started)
        settle_ms = int(self.settle.total_seconds() * 1000)
        self._unfinished: tuple[int, int] | None = (
            interval_start_ms(self._started_ms - settle_ms) - FIVE_MINUTES_MS,
            interval_start_ms(self._started_ms) + FIVE_MINUTES_MS,
        )
        """The intervals a previous run may have left unwritten (under way or settling when it stopped)."""
        self._lock = threading.Lock()
        self._open: dict[str, Accumulator] = {}
        self._tainted: set[str] = set()
        # the day under way: the previous run's share of it is in the store only, so it is recomputed when it closes
        self._site_days = {place.site: day_of(place.site) for place in self.places.values()}
        self._days: dict[str, _Day] = {
            sensor: _Day(*self.day_of(sensor, self.started), Combination(), False) for sensor in self.places
        }
        self._last_closed: dict[str, int] = {}
        self._last_day: dict[str, datetime] = {}
        """Per sensor, the latest day closed (written or marked): one that opens again is recomputed."""
        self._scanned = -1
        self._rescan = False
        """An accumulator was opened for an interval the clock has already passed (a buffered upload)."""
        self._dirty: dict[str, set[int]] = {}
        self._dirty_days: dict[str, set[datetime]] = {}
        self._new_marks: list[Mark] = []
        self.marks = marks
        """Where marks are kept durably (None: in memory only, lost with the process)."""
        for sensor, width, start in marks.load() if marks is not None else ():  # what a previous run left
            if sensor not in self.places:
                continue
            if width == "5m":
                self._dirty.setdefault(sensor, set()).add(start)
            else:
                self._dirty_days.setdefault(sensor, set()).add(from_millis(start))
        # started within settle and a quarter of an hour of a midnight: a day closes once the first interval of the
        # next has (a sensor's), so the previous run may not have written that day yet
        just_before = from_millis(self._started_ms - settle_ms - 3 * FIVE_MINUTES_MS)
        for sensor, day in self._days.items():
            if (previous := self.day_of(sensor, just_before)[0]) < day.start:
                self._mark_day(sensor, previous)
        self._ready: list[Record] = []
        self._stopping = threading.Event()
        self.heartbeat: Callable[[], None] = lambda: None
        self.recomputed = 0
        """Intervals recomputed from the store so far (for tests and logs)."""
        if metrics is not None:
            metrics.rollups_pending.set_function(self.pending)
            metrics.rollups_recomputed.set_function(lambda: self.recomputed)

    def day_of(self, sensor: str, ts: datetime) -> tuple[datetime, datetime]:
        """The day (of the sensor's site) that ``ts`` falls in."""
        return self._site_days[self.places[sensor].site](ts)

    # -- fed by ingest -----------------------------------------------------------------------

    def observe(self, records: Iterable[Record]) -> None:
        """Take the readings of a batch that is now durable (other records ignored)."""
        with self._lock:
            for record in records:
                if type(record) is TemperatureReading:
                    self._take(record.sensor, to_millis(record.ts), record.celsius)
                elif type(record) is ShakeReading:
                    self._take(record.sensor, to_millis(record.ts), record.peak_g)
        self._keep_marks()  # durable before ingest acknowledges the batch (raises DiskFull: not acked)

    def _keep_marks(self) -> None:
        with self._lock:
            marks, self._new_marks = self._new_marks, []
        if marks and self.marks is not None:
            try:
                self.marks.add(marks)
            except BaseException:
                with self._lock:
                    self._new_marks[:0] = marks
                raise

    def _take(self, sensor: str, ts_ms: int, value: float) -> None:
        place = self.places.get(sensor)
        if place is None:
            return
        start = interval_start_ms(ts_ms)
        open_one = self._open.get(sensor)
        if open_one is not None and start > open_one.start_ms:
            self._close(sensor, open_one)
            open_one = None
        if open_one is None:
            if self._closed_before(sensor, start):
                self._mark(sensor, start)  # late: its interval was written already
                return
            open_one = self._open[sensor] = Accumulator(start, place.band, self._gap_ms)
            self._rescan = self._rescan or open_one.end_ms <= self._scanned
            if start < self._started_ms or not self.from_memory:
                self._tainted.add(sensor)  # begun before we started listening, or shared with replicas
        if start < open_one.start_ms:
            self._mark(sensor, start)
        elif not open_one.add(ts_ms, value):
            self._tainted.add(sensor)  # out of order (or redelivered): the memory is not the whole truth

    def _closed_before(self, sensor: str, start_ms: int) -> bool:
        """Whether the interval at ``start_ms`` was closed already (written, or marked for recomputing)."""
        return start_ms <= self._last_closed.get(sensor, -1)

    def _mark(self, sensor: str, start_ms: int) -> None:
        """Interval ``start_ms`` of ``sensor`` is recomputed from the store, then its day."""
        self._dirty.setdefault(sensor, set()).add(start_ms)
        self._new_marks.append((sensor, "5m", start_ms))
        day = self._days.get(sensor)
        if day is not None and day.start <= from_millis(start_ms) < day.end:
            day.complete = False
        else:
            self._mark_day(sensor, self.day_of(sensor, from_millis(start_ms))[0])

    def _mark_day(self, sensor: str, day: datetime) -> None:
        self._dirty_days.setdefault(sensor, set()).add(day)
        self._new_marks.append((sensor, "1d", to_millis(day)))

    def _close(self, sensor: str, accumulator: Accumulator) -> None:
        """Interval over: write it from memory (or mark it for recomputing), and add it to its day."""
        del self._open[sensor]
        self._last_closed[sensor] = accumulator.start_ms
        start = from_millis(accumulator.start_ms)
        day = self._days.get(sensor)
        if day is not None and not day.start <= start < day.end:
            self._close_day(sensor, day)
            day = None
        if day is None:
            day_start, day_end = self.day_of(sensor, start)
            # from memory only a day we saw begin, and never closed before (a buffered upload can reopen one)
            fresh = day_start >= self.started and day_start > self._last_day.get(sensor, _NEVER)
            day = self._days[sensor] = _Day(day_start, day_end, Combination(), fresh and self.from_memory)
        rollup = None if sensor in self._tainted else accumulator.result(self.places[sensor])
        self._tainted.discard(sensor)
        if rollup is None:
            self._mark(sensor, accumulator.start_ms)
            return
        day.parts.add(rollup)
        self._ready.append(rollup)

    def _close_day(self, sensor: str, day: _Day) -> None:
        del self._days[sensor]
        self._last_day[sensor] = max(day.start, self._last_day.get(sensor, _NEVER))
        if not day.complete:
            self._mark_day(sensor, day.start)
        elif (daily := day.parts.result(day.start)) is not None:
            self._ready.append(daily)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Every second: close what the clock closed, write, and now and then recompute (supervised)."""
        last_recompute = 0.0
        while not self._stopping.wait(1.0):
            self.heartbeat()
            self.flush(self.clock())
            now = self.clock().timestamp()
            if now - last_recompute >= self.recompute_every:
                last_recompute = now
                self.recompute()

    def stop(self) -> None:
        self._stopping.set()

    def flush(self, now: datetime) -> int:
        """Close the intervals and days that ended ``settle`` before ``now``; write what is ready. How many."""
        # everything ends on a 5-minute boundary: scan the sensors only once the clock passes a new one
        boundary = interval_start_ms(to_millis(now - self.settle))
        with self._lock:
            if boundary > self._scanned or self._rescan:
                self._scanned, self._rescan = max(boundary, self._scanned), False
                for sensor, accumulator in list(self._open.items()):
                    if accumulator.end_ms <= boundary:
                        self._close(sensor, accumulator)
                for sensor, day in list(self._days.items()):
                    open_one = self._open.get(sensor)  # one of a later day does not hold this one open
                    end_ms = to_millis(day.end)
                    if end_ms <= boundary and (open_one is None or open_one.start_ms >= end_ms):
                        self._close_day(sensor, day)
            ready, self._ready = self._ready, []
        self._keep_marks()
        self._write(ready)
        return len(ready)

    def pending(self) -> int:
        """Intervals and days waiting to be recomputed (1 more until the previous run's leftovers are read)."""
        with self._lock:
            unfinished = 0 if self._unfinished is None else 1  # what a previous run left: not yet looked at
            return unfinished + sum(map(len, self._dirty.values())) + sum(map(len, self._dirty_days.values()))

    def recompute(self) -> int:
        """Recompute the marked intervals from the stored readings, then their days; how many rollups written.

        Waits (returns 0) while the spool holds batches: the readings may not be in the store yet."""
        if self.writer.spool.batches:
            return 0
        if self._unfinished is not None:
            try:
                self._mark_unfinished(*self._unfinished)
            except StoreError as exc:
                log.warning("could not read the intervals a previous run left unfinished yet (will retry): %s", exc)
                return 0
            self._unfinished = None
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        written = 0
        try:
            written += self._recompute_intervals(dirty)
            dirty = {}
            with self._lock:
                days, self._dirty_days = self._dirty_days, {}
            try:
                written += self._recompute_days(days)
            except BaseException:
                with self._lock:
                    for sensor, day_starts in days.items():
                        self._dirty_days.setdefault(sensor, set()).update(day_starts)
                raise
        except StoreError as exc:
            log.warning("could not recompute rollups yet (will retry): %s", exc)
            return written
        finally:
            with self._lock:
                for sensor, starts in dirty.items():
                    self._dirty.setdefault(sensor, set()).update(starts)
        return written

    def _mark_unfinished(self, start_ms: int, end_ms: int) -> None:
        """Mark every interval that holds stored readings from the newest rollup a previous run wrote (at most
        ``_CATCH_UP`` back; at least the intervals under way or settling at start) to ``end_ms``: the previous
        run may have stopped before writing them, and no new reading need ever touch them again."""
        newest = max(
            (row["time"] for row in self.writer.store.latest(MEASUREMENTS["5m"], "sensor").values()), default=None
        )
        # from the newest rollup written; with none at all, from an hour back (readings stored before rollups
        # existed are not rolled up: an upgrade does not rebuild the past)
        start_ms = min(start_ms, end_ms - 3_600_000 if newest is None else to_millis(newest))
        if start_ms < end_ms - _CATCH_UP_MS:
            log.warning(
                "rollups before %s are not rebuilt (the newest one was written at %s); readings before are kept",
                from_millis(end_ms - _CATCH_UP_MS),
                newest,
            )
            start_ms = end_ms - _CATCH_UP_MS
        found: set[tuple[str, int]] = set()
        for measurement in ("temperature", "shake"):
            for row in self.writer.store.read_range(measurement, from_millis(start_ms), from_millis(end_ms)):
                sensor = str(row.get("sensor"))
                if sensor in self.places:
                    found.add((sensor, interval_start_ms(to_millis(row["time"]))))
        with self._lock:
            for sensor, start in found:
                self._mark(sensor, start)

    def _recompute_intervals(self, dirty: dict[str, set[int]]) -> int:
        total = 0
        for (first, last), sensors in _by_run(dirty).items():  # one read per run of nearby intervals
            start, end = from_millis(first), from_millis(last + FIVE_MINUTES_MS)
            readings = self._raw(sensors, start, end)
            written: list[Record] = []
            for sensor in sensors:
                by_interval: dict[int, list[tuple[datetime, float]]] = {}
                for ts, value in readings.get(sensor, []):
                    by_interval.setdefault(interval_start_ms(to_millis(ts)), []).append((ts, value))
                for interval in sorted(i for i in dirty[sensor] if first <= i <= last):
                    rollup = rollup_of(
                        by_interval.get(interval, []), from_millis(interval), self.places[sensor], self.gap
                    )
                    if rollup is not None:
                        written.append(rollup)
            self._write(written)
            total += len(written)
            self.recomputed += len(written)
        self._forget([(sensor, "5m", start) for sensor, starts in dirty.items() for start in starts])
        return total

    def _raw(self, sensors: Sequence[str], start: datetime, end: datetime) -> dict[str, list[tuple[datetime, float]]]:
        """The stored readings of ``sensors`` in ``[start, end)``, by sensor."""
        found: dict[str, list[tuple[datetime, float]]] = {sensor: [] for sensor in sensors}
        for kind in {self.places[sensor].band.kind for sensor in sensors}:
            field = "celsius" if kind == "temperature" else "peak_g"
            for row in self._rows(kind, sensors, start, end):
                bucket = found.get(str(row.get("sensor")))
                value = row.get(field)
                if bucket is not None and isinstance(value, int | float):
                    bucket.append((row["time"], float(value)))
        return found

    def _rows(
        self, measurement: str, sensors: Sequence[str], start: datetime, end: datetime
    ) -> Iterator[dict[str, Any]]:
        store = self.writer.store
        # one read of the window for every sensor when that costs less than a query per sensor: per row
        # about 1/600 of a query's overhead, at one reading a minute (raw) or a rollup per 5 minutes
        per_sensor_rows = (end - start) / (
            timedelta(minutes=1) if measurement in ("temperature", "shake") else timedelta(minutes=5)
        )
        if len(sensors) >= _WHOLE_WINDOW and len(sensors) * 600 >= len(self.places) * per_sensor_rows:
            yield from store.read_range(measurement, start, end)
            return
        for sensor in sensors:
            yield from store.read_range(measurement, start, end, {"sensor": sensor})

    def _recompute_days(self, days: dict[str, set[datetime]]) -> int:
        written: list[Record] = []
        by_day: dict[tuple[datetime, datetime], list[str]] = {}  # sites in other zones: other bounds
        for sensor, starts in days.items():
            for day in starts:
                by_day.setdefault(self.day_of(sensor, day), []).append(sensor)
        for (day, end), sensors in sorted(by_day.items()):
            # rows come oldest first: each sensor's intervals are combined in order, in constant memory
            parts = {sensor: Combination() for sensor in sensors}
            for row in self._rows(MEASUREMENTS["5m"], sensors, day, end):
                combination = parts.get(str(row.get("sensor")))
                if combination is not None:
                    combination.add(rollup_from_row(row, "5m"))
            for sensor in sensors:
                daily = parts[sensor].result(day)
                if daily is not None:
                    written.append(daily)
        self._write(written)
        self._forget([(sensor, "1d", to_millis(day)) for sensor, starts in days.items() for day in starts])
        return len(written)

    def _forget(self, marks: list[Mark]) -> None:
        """The marks whose rollups were just rewritten (a mark left behind only costs a recompute)."""
        if self.marks is not None:
            self.marks.remove(marks)

    def _write(self, rollups: list[Record]) -> None:
        if rollups:
            self.writer.write(rollups)


def _by_run(dirty: dict[str, set[int]]) -> dict[tuple[int, int], list[str]]:
    """Sensors grouped by the runs (first, last interval start) of their marked intervals, a run ending where
    an hour passes without a mark (a buffered day of one sensor and today's intervals are read apart)."""
    runs: dict[tuple[int, int], list[str]] = {}
    for sensor, starts in dirty.items():
        ordered = sorted(starts)
        first = previous = ordered[0] if ordered else 0
        for start in ordered[1:]:
            if start - previous > _RUN_GAP_MS:
                runs.setdefault((first, previous), []).append(sensor)
                first = start
            previous = start
        if ordered:
            runs.setdefault((first, previous), []).append(sensor)
    return runs
