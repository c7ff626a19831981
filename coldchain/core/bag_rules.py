"""Diluted-bag timers: ``bag_expiring``, ``bag_expired`` and ``bag_used_after_expiry``.

A bag's timer starts with its ``diluted`` event (ts ``D``) in a unit; its deadline is
``D + diluted_use_within`` and its warning time ``deadline - bag_warning_before``, both from the
unit's profile at dilution (overrides applied), kept for the bag's life. The timer runs until
``infusion_completed`` or ``discarded`` ("ended"); expiry does not stop it: an expired bag still
in the fridge is still there.

* ``bag_expiring`` opens at the warning time unless the bag ended at or before it, and resolves
  when the bag ends. It stays open after ``bag_expired`` opens.
* ``bag_expired`` opens at the deadline unless the bag ended at or before it (within 8 h means
  up to and including the deadline), and resolves when the bag ends.
* ``bag_used_after_expiry`` opens at an ``infusion_started`` whose ts is after the deadline
  (strictly); only an acknowledgement resolves it, so the engine never does.
* Time reaches a bag by the clock (``due(now)``) and by the ts of its own events: an
  ``infusion_started`` at or after a due moment, or an ending after it, opens what fell due
  first, so a late upload reveals a past expiry with its true times (opened, then resolved by
  the ending). Opens carry the due moment as ``started_at`` and ``updated_at``.
* Events are judged by ts, also when they come late: a completion or discard resolves what is
  open at its ts, or at the alert's ``started_at`` if the event predates it (the alert was raised
  on what was known then). Repeated events count as duplicates; events of a bag whose
  ``diluted`` was not seen count as unknown and are ignored.
* An ended bag is forgotten ``BAG_MEMORY`` after it ended: no accepted event can be that old.
* Events that cannot have happened (``bag_sequence.py``: a start or an end at or before the
  dilution, a start after the end, a second start or end at another time, …) are refused
  (``invalid_sequence``) and change nothing. A second dilution at another time is a
  ``bag_conflict`` (warning, resolved by an acknowledgement): the earlier dilution rules, so an
  earlier one moves the deadline and warning time earlier, a later one changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from coldchain.core.alert import AlertBook, AlertKind, Place
from coldchain.core.bag_sequence import BagFacts, BagLedger, sequence_error
from coldchain.core.inventory import Profile
from coldchain.core.records import MAX_AGE, BagEvent
from coldchain.core.times import format_time, parse_time
from coldchain.core.wording import say_span, say_time

BAG_MEMORY = MAX_AGE
"""How long an ended bag is remembered (for late events and ``affected_bags`` of past episodes)."""

BagOutcome = Literal["applied", "duplicate", "unknown_bag", "unknown_unit", "invalid_sequence", "conflict"]


class BagTimer:
    """One diluted bag: its deadlines, what happened to it, and its open alerts."""

    __slots__ = (
        "bag",
        "deadline",
        "diluted",
        "dilutions",
        "ended",
        "ended_by",
        "expired",
        "expiring",
        "lapsed",
        "place",
        "started",
        "use_within",
        "used",
        "warn_at",
        "warned",
    )

    def __init__(
        self, bag: str, place: Place, diluted: datetime, use_within: timedelta, warn_before: timedelta
    ) -> None:
        self.bag = bag
        self.place = place
        self.diluted = diluted
        self.dilutions: set[datetime] = {diluted}
        """Every dilution time recorded for the bag (more than one is a ``bag_conflict``)."""
        self.use_within = use_within
        self.deadline = diluted + use_within
        self.warn_at = self.deadline - warn_before
        self.started: datetime | None = None
        self.ended: datetime | None = None
        self.ended_by = ""
        self.expiring: str | None = None
        self.expired: str | None = None
        self.warned = False
        """The warning time has been reached (whether or not an alert was due)."""
        self.lapsed = False
        """The deadline has been reached (whether or not an alert was due)."""
        self.used = False

    @property
    def facts(self) -> BagFacts:
        """What is recorded for this bag, as ``bag_sequence`` judges it."""
        return BagFacts(self.diluted, self.started, self.ended)

    def rediluted(self, ts: datetime, book: AlertBook) -> None:
        """A second dilution at ``ts``: the earlier one rules; the disagreement opens ``bag_conflict``."""
        first = self.diluted
        self.dilutions.add(ts)
        if ts < self.diluted:
            warn_before = self.deadline - self.warn_at
            self.diluted = ts
            self.deadline = ts + self.use_within
            self.warn_at = self.deadline - warn_before
        self._conflict(first, ts, book)
        if self.ended is not None:
            self.advance(self.ended, book)  # an ended bag: what the earlier deadline made due before its end

    def _conflict(self, first: datetime, ts: datetime, book: AlertBook) -> None:
        message = (
            f"Bag {self.bag} in {self.place.name}: two dilution times, {say_time(first)} and {say_time(ts)};"
            f" the earlier one rules (deadline {say_time(self.deadline)}). Check the label."
        )
        self._raise("bag_conflict", ts, message, book)

    def _raise(self, kind: AlertKind, at: datetime, message: str, book: AlertBook) -> str:
        """Open this bag's alert of ``kind``, starting at ``at``; its id."""
        return book.open(kind, self.bag, self.place, (at, at), None, message, bag=self.bag)

    def running_at(self, at: datetime) -> bool:
        """Diluted at or before ``at`` and not yet completed or discarded."""
        return self.diluted <= at and (self.ended is None or self.ended > at)

    def advance(self, to: datetime, book: AlertBook) -> None:
        """Open what falls due at or before ``to``."""
        if not self.warned and to >= self.warn_at:
            self.warned = True
            if self.ended is None or self.ended > self.warn_at:
                self.expiring = self._open("bag_expiring", self.warn_at, "expires", book)
                self._close(book)  # an ended bag's alert closes at once
        if not self.lapsed and to >= self.deadline:
            self.lapsed = True
            if self.ended is None or self.ended > self.deadline:
                self.expired = self._open("bag_expired", self.deadline, "expired", book)
                self._close(book)

    def _open(self, kind: Literal["bag_expiring", "bag_expired"], at: datetime, verb: str, book: AlertBook) -> str:
        message = (
            f"Bag {self.bag} in {self.place.name} {verb} at {say_time(self.deadline)}"
            f" (diluted {say_time(self.diluted)}, use within {say_span(self.use_within)})"
        )
        return self._raise(kind, at, message, book)

    def start(self, ts: datetime, book: AlertBook) -> bool:
        """An infusion started at ``ts``; False if one was already recorded."""
        if self.started is not None:
            self.started = min(self.started, ts)
            return False
        self.started = ts
        if ts > self.deadline:
            self.used = True
            message = (
                f"Bag {self.bag} from {self.place.name}: infusion started at {say_time(ts)},"
                f" {say_span(ts - self.deadline)} after its deadline {say_time(self.deadline)}"
            )
            self._raise("bag_used_after_expiry", ts, message, book)
        return True

    def end(self, ts: datetime, how: str, book: AlertBook) -> bool:
        """Completed or discarded at ``ts``; False if the bag had already ended."""
        if self.ended is not None:
            if ts < self.ended:
                self.ended, self.ended_by = ts, how
            return False
        self.ended, self.ended_by = ts, how
        self.advance(ts, book)  # what fell due before the end opens, and closes at once
        self._close(book)
        return True

    def _close(self, book: AlertBook) -> None:
        """Resolve the bag's open expiry alerts at its end; nothing while it runs."""
        if self.ended is None:
            return
        what = "infusion completed" if self.ended_by == "infusion_completed" else "discarded"
        message = f"Bag {self.bag} from {self.place.name}: {what} at {say_time(self.ended)}"
        for aid in (self.expiring, self.expired):
            if aid is not None:
                book.resolve(aid, self.ended, value=None, message=message)
        self.expiring = self.expired = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "bag": self.bag,
            "unit": self.place.unit,
            "site": self.place.site,
            "name": self.place.name,
            "diluted": format_time(self.diluted),
            "dilutions": sorted(format_time(ts) for ts in self.dilutions),
            "use_within_s": self.use_within.total_seconds(),
            "deadline": format_time(self.deadline),
            "warn_at": format_time(self.warn_at),
            "started": format_time(self.started) if self.started is not None else None,
            "ended": format_time(self.ended) if self.ended is not None else None,
            "ended_by": self.ended_by,
            "expiring": self.expiring,
            "expired": self.expired,
            "warned": self.warned,
            "lapsed": self.lapsed,
            "used": self.used,
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> BagTimer:
        place = Place(site=data["site"], unit=data["unit"], name=data["name"])
        use_within = timedelta(seconds=data["use_within_s"])
        timer = cls(data["bag"], place, parse_time(data["diluted"]), use_within, timedelta(0))
        timer.dilutions = {parse_time(ts) for ts in data.get("dilutions", [data["diluted"]])}
        timer.deadline = parse_time(data["deadline"])
        timer.warn_at = parse_time(data["warn_at"])
        timer.started = parse_time(data["started"]) if data["started"] is not None else None
        timer.ended = parse_time(data["ended"]) if data["ended"] is not None else None
        timer.ended_by = data["ended_by"]
        timer.expiring = data["expiring"]
        timer.expired = data["expired"]
        timer.warned = data["warned"]
        timer.lapsed = data["lapsed"]
        timer.used = data["used"]
        return timer


class BagRules:
    """Every bag the engine knows, by id, with the running ones indexed for the clock."""

    __slots__ = ("_by_unit", "_forget_after", "_running", "_units", "bags", "touched")

    def __init__(self, units: dict[str, tuple[Place, Profile]]) -> None:
        self._units = units
        self.bags: dict[str, BagTimer] = {}
        self.touched: set[str] = set()
        """Bags changed or forgotten since the owner last cleared it (for change records)."""
        self._running: dict[str, BagTimer] = {}
        self._by_unit: dict[str, dict[str, BagTimer]] = {}
        self._forget_after: datetime | None = None
        """Earliest end + ``BAG_MEMORY`` among remembered ended bags: the next time one is forgotten."""

    def event(self, event: BagEvent, book: AlertBook) -> BagOutcome:
        """Apply one bag event (events of one call come in ts order)."""
        self.touched.add(event.bag)
        found = self.bags.get(event.bag)
        if found is None and event.event != "diluted":
            return "unknown_bag"
        if sequence_error(found.facts if found is not None else BagFacts(), event) is not None:
            return "invalid_sequence"
        if event.event == "diluted":
            if found is not None:
                if event.ts in found.dilutions:
                    return "duplicate"
                found.rediluted(event.ts, book)
                return "conflict"
            unit = self._units.get(event.unit or "")
            if unit is None:
                return "unknown_unit"
            place, profile = unit
            timer = BagTimer(event.bag, place, event.ts, profile.diluted_use_within, profile.bag_warning_before)
            self._add(timer)
            return "applied"
        assert found is not None
        timer = found
        if event.event == "infusion_started":
            timer.advance(event.ts, book)
            return "applied" if timer.start(event.ts, book) else "duplicate"
        ended = timer.end(event.ts, event.event, book)
        self._running.pop(timer.bag, None)
        self._remember_end(timer)
        return "applied" if ended else "duplicate"

    def ledger(self) -> BagLedger:
        """A ledger over the bags as they stand, to check a batch's messages whole before applying them."""
        return BagLedger(lambda bag: self.bags[bag].facts if bag in self.bags else BagFacts())

    def due(self, now: datetime, book: AlertBook) -> None:
        """Open the bag alerts that fall due by ``now``, and forget bags ended long ago."""
        for timer in self._running.values():
            if not timer.lapsed:
                timer.advance(now, book)
        if self._forget_after is not None and now > self._forget_after:
            horizon = now - BAG_MEMORY
            for timer in [t for t in self.bags.values() if t.ended is not None and t.ended < horizon]:
                del self.bags[timer.bag]
                del self._by_unit[timer.place.unit][timer.bag]
                self.touched.add(timer.bag)
            self._forget_after = None
            for timer in self.bags.values():
                self._remember_end(timer)

    def running_in(self, unit: str, at: datetime) -> tuple[str, ...]:
        """Ids of the bags whose timers run in ``unit`` at ``at``, sorted."""
        bags = self._by_unit.get(unit)
        if not bags:
            return ()
        return tuple(sorted(bag for bag, timer in bags.items() if timer.running_at(at)))

    def _add(self, timer: BagTimer) -> None:
        self.bags[timer.bag] = timer
        if timer.ended is None:
            self._running[timer.bag] = timer
        self._by_unit.setdefault(timer.place.unit, {})[timer.bag] = timer
        self._remember_end(timer)

    def _remember_end(self, timer: BagTimer) -> None:
        if timer.ended is not None:
            forget = timer.ended + BAG_MEMORY
            if self._forget_after is None or forget < self._forget_after:
                self._forget_after = forget

    def snapshot(self) -> list[dict[str, Any]]:
        return [timer.snapshot() for timer in self.bags.values()]

    def load(self, data: list[dict[str, Any]]) -> None:
        for item in data:
            self._add(BagTimer.restore(item))
