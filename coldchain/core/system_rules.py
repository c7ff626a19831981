"""System alerts: what coldchain says about itself, from facts its edges report with a ``now``; pure.

The edges (MQTT connections, the durable writer, the supervisor, the disk probe, start-up) report
plain facts; ``SystemRules`` turns them into alerts of the system kinds in the same ``AlertBook``
as every other alert, so they are published, stored, notified and acknowledged the same way:

=====================  =======================================  ==========================================
kind                   opens when                               resolves when
=====================  =======================================  ==========================================
``broker_unreachable`` a connection is down for ``broker_after``  it is up again
``store_unreachable``  the store fails for ``store_after``        a write or ping succeeds
``disk_low``           free space under the directory's minimum   free space at or over the minimum
``role_failed``        the supervisor reports a role failing      the role is healthy again
``state_reset``        state could not be read and was reset      acknowledged (nothing clears by itself)
``clock_skew``         ``skew_burst`` ``ts_in_future`` rejections  none for ``skew_clear``
                       within ``skew_window``
=====================  =======================================  ==========================================

``started_at`` is when the fault began (the first fact that showed it), as excursions start at
their first bad reading. Every system alert is at site and unit ``coldchain``; its subject is
the client id, the store, the directory or the role, made topic-safe by ``topic_safe``.

The broker outages are also kept (``outages``): the notification policy groups the
``sensor_offline`` alerts they explain under them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from coldchain.core.alert import AlertBook, AlertKind, Place
from coldchain.core.times import format_time, parse_time
from coldchain.core.wording import say_span, say_time

SYSTEM_PLACE = Place(site="coldchain", unit="coldchain", name="coldchain")
"""Where system alerts are: coldchain itself (routes filtering on a site or unit do not match them)."""

_MAX_OUTAGES = 20


def topic_safe(text: str) -> str:
    """``text`` usable as one MQTT topic level: ``%``, ``/``, ``+``, ``#`` percent-encoded."""
    return text.replace("%", "%25").replace("/", "%2F").replace("+", "%2B").replace("#", "%23")


def say_bytes(count: int) -> str:
    """``512 MB``, ``1.5 GB``: a size as a message says it (decimal units, like ``df -H``)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            value = count / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{count} B"


LinkKind = Literal["broker_unreachable", "store_unreachable"]


@dataclass(frozen=True, slots=True)
class Link:
    """A dependency answered (``up``) or not: the broker for one client id, or the store."""

    kind: LinkKind
    subject: str
    up: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """Free space of the filesystem holding a state directory."""

    path: str
    free: int
    total: int
    min_free: int


@dataclass(frozen=True, slots=True)
class RoleHealth:
    """The supervisor's view of one role."""

    role: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class StateReset:
    """State that could not be read was moved aside and started afresh; ``lost`` says what that cost."""

    what: str
    lost: str


@dataclass(frozen=True, slots=True)
class FutureTimestamps:
    """``count`` messages were rejected as ``ts_in_future`` since the last report."""

    count: int


Fact = Link | DiskSpace | RoleHealth | StateReset | FutureTimestamps


@dataclass(frozen=True, slots=True)
class Outage:
    """A span the broker was unreachable (``end`` None while it lasts)."""

    subject: str
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class SystemLimits:
    """When facts become alerts."""

    broker_after: timedelta = timedelta(minutes=2)
    store_after: timedelta = timedelta(minutes=10)
    skew_burst: int = 10
    skew_window: timedelta = timedelta(minutes=1)
    skew_clear: timedelta = timedelta(minutes=10)
    skew_subject: str = "ts_in_future"
    """The subject of ``clock_skew`` (a rules partition names itself: ``ts_in_future@<client id>``)."""


class SystemRules:
    """The state behind the system alerts; alerts go into the engine's ``AlertBook``."""

    def __init__(self, limits: SystemLimits) -> None:
        self.limits = limits
        self.down: dict[tuple[LinkKind, str], tuple[datetime, str]] = {}
        """(kind, subject) of a link down -> (since, detail), until it is up again."""
        self.alerts: dict[tuple[AlertKind, str], str] = {}
        """(kind, subject) -> the id of its open alert."""
        self.outages: deque[Outage] = deque(maxlen=_MAX_OUTAGES)
        self._skew: deque[tuple[datetime, int]] = deque()
        self._skew_last: datetime | None = None

    def observe(self, facts: list[Fact], now: datetime, book: AlertBook) -> None:
        """Take the edges' facts at ``now``; opens and resolves alerts in ``book``."""
        for fact in facts:
            if isinstance(fact, Link):
                self._link(fact, now, book)
            elif isinstance(fact, DiskSpace):
                self._disk(fact, now, book)
            elif isinstance(fact, RoleHealth):
                self._role(fact, now, book)
            elif isinstance(fact, StateReset):
                self._open(
                    "state_reset",
                    fact.what.replace(" ", "-"),
                    now,
                    now,
                    f"coldchain could not read its {fact.what} and started afresh: {fact.lost}",
                    book,
                )
            else:
                self._future(fact, now, book)
        self.tick(now, book)

    def tick(self, now: datetime, book: AlertBook) -> None:
        """What the clock alone decides: links down long enough, a clock skew that calmed down."""
        for (kind, subject), (since, detail) in self.down.items():
            after = self.limits.broker_after if kind == "broker_unreachable" else self.limits.store_after
            if (kind, subject) not in self.alerts and now >= since + after:
                what = "MQTT broker" if kind == "broker_unreachable" else "store"
                because = f": {detail}" if detail else ""
                message = f"coldchain cannot reach the {what} ({subject}) since {say_time(since)}{because}"
                self._open(kind, subject, since, since + after, message, book)
        if self._skew_last is not None and now >= self._skew_last + self.limits.skew_clear:
            self._skew_last = None
            self._resolve("clock_skew", self.limits.skew_subject, now, "no reading from the future any more", book)

    # -- the facts -------------------------------------------------------------------------

    def _link(self, fact: Link, now: datetime, book: AlertBook) -> None:
        key = (fact.kind, fact.subject)
        if not fact.up:
            if key not in self.down:
                self.down[key] = (now, fact.detail)
                if fact.kind == "broker_unreachable":
                    self.outages.append(Outage(fact.subject, now, None))
            return
        if self.down.pop(key, None) is None:
            return
        if fact.kind == "broker_unreachable":
            self._end_outage(fact.subject, now)
        what = "MQTT broker" if fact.kind == "broker_unreachable" else "store"
        self._resolve(fact.kind, fact.subject, now, f"coldchain reaches the {what} ({fact.subject}) again", book)

    def _end_outage(self, subject: str, now: datetime) -> None:
        for index in range(len(self.outages) - 1, -1, -1):
            outage = self.outages[index]
            if outage.subject == subject and outage.end is None:
                self.outages[index] = Outage(subject, outage.start, max(now, outage.start))
                return

    def _disk(self, fact: DiskSpace, now: datetime, book: AlertBook) -> None:
        if fact.free < fact.min_free:
            message = (
                f"Only {say_bytes(fact.free)} free of {say_bytes(fact.total)} for {fact.path} "
                f"(minimum {say_bytes(fact.min_free)}): free space before coldchain has to stop acknowledging"
            )
            self._open("disk_low", fact.path, now, now, message, book, value=float(fact.free))
        else:
            self._resolve("disk_low", fact.path, now, f"{say_bytes(fact.free)} free for {fact.path} again", book)

    def _role(self, fact: RoleHealth, now: datetime, book: AlertBook) -> None:
        if fact.ok:
            self._resolve("role_failed", fact.role, now, f"coldchain's {fact.role} role is working again", book)
        else:
            message = f"coldchain's {fact.role} role is failing: {fact.detail}"
            self._open("role_failed", fact.role, now, now, message, book)

    def _future(self, fact: FutureTimestamps, now: datetime, book: AlertBook) -> None:
        if fact.count <= 0:
            return
        self._skew.append((now, fact.count))
        while self._skew and self._skew[0][0] <= now - self.limits.skew_window:
            self._skew.popleft()
        self._skew_last = now
        burst = sum(count for _, count in self._skew)
        if burst >= self.limits.skew_burst and ("clock_skew", self.limits.skew_subject) not in self.alerts:
            message = (
                f"{burst} readings in {say_span(self.limits.skew_window)} carry times more than 5 min after "
                "coldchain's clock: coldchain's clock is probably behind (check NTP); they are rejected"
            )
            self._open("clock_skew", self.limits.skew_subject, now, now, message, book, value=float(burst))

    # -- alerts ----------------------------------------------------------------------------

    def _open(
        self,
        kind: AlertKind,
        subject: str,
        started: datetime,
        at: datetime,
        message: str,
        book: AlertBook,
        value: float | None = None,
    ) -> None:
        key = (kind, subject)
        if key in self.alerts and self.alerts[key] in book.open_alerts:
            return
        self.alerts[key] = book.open(kind, topic_safe(subject), SYSTEM_PLACE, (started, at), value, message)

    def _resolve(self, kind: AlertKind, subject: str, now: datetime, message: str, book: AlertBook) -> None:
        aid = self.alerts.pop((kind, subject), None)
        if aid is not None and aid in book.open_alerts:
            book.resolve(aid, now, value=None, message=message)

    def forget(self, alert_id: str) -> None:
        """An acknowledgement resolved ``alert_id`` (a ``state_reset``): a new reset may open again."""
        self.alerts = {key: aid for key, aid in self.alerts.items() if aid != alert_id}

    # -- snapshot --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "down": [
                [kind, subject, format_time(since), detail] for (kind, subject), (since, detail) in self.down.items()
            ],
            "alerts": [[kind, subject, aid] for (kind, subject), aid in self.alerts.items()],
            "outages": [[o.subject, format_time(o.start), format_time(o.end) if o.end else None] for o in self.outages],
            "skew_last": format_time(self._skew_last) if self._skew_last else None,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.down = {(kind, subject): (parse_time(since), detail) for kind, subject, since, detail in data["down"]}
        self.alerts = {(kind, subject): aid for kind, subject, aid in data["alerts"]}
        self.outages = deque(
            (Outage(s, parse_time(start), parse_time(end) if end else None) for s, start, end in data["outages"]),
            maxlen=_MAX_OUTAGES,
        )
        self._skew_last = parse_time(data["skew_last"]) if data.get("skew_last") else None
