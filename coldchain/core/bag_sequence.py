"""Which bag events can have happened, given what is recorded for the bag; pure.

A bag's recorded facts are its earliest accepted dilution, its infusion start and its end
(completion or discard). An event is *impossible* (reason ``invalid_sequence``) when:

1. it is an infusion start or an end for a bag with no recorded dilution;
2. it is an infusion start or an end dated at or before the bag's (earliest) dilution;
3. it is an infusion start dated at or after the bag's end;
4. it is an infusion start while another start, at another time, is recorded;
5. it is an end dated at or before the recorded infusion start;
6. it is an end while another end, at another time, is recorded;
7. it is a dilution dated at or after the bag's end.

The same event again (same kind and time) is a redelivery, never impossible. A second dilution at
another time is possible: the earlier one rules (the stricter deadline) and the disagreement is a
``bag_conflict``. Events of one message are judged in time order, each against the facts as the
message's earlier events leave them, and the message is refused whole if any of them is impossible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from coldchain.core.records import BagEvent
from coldchain.core.times import format_time

ENDINGS = frozenset({"infusion_completed", "discarded"})


@dataclass(frozen=True, slots=True)
class BagFacts:
    """What is recorded for one bag."""

    diluted: datetime | None = None
    """The earliest accepted dilution."""
    started: datetime | None = None
    ended: datetime | None = None


def sequence_error(facts: BagFacts, event: BagEvent) -> str | None:
    """Why ``event`` cannot have happened after ``facts`` (in words), or None if it can."""
    ts, kind = event.ts, event.event
    if kind == "diluted":
        if facts.ended is not None and ts >= facts.ended:
            return f"bag {event.bag}: diluted at {format_time(ts)}, at or after it ended at {format_time(facts.ended)}"
        return None
    what = f"bag {event.bag}: " + ("infusion start" if kind == "infusion_started" else kind.replace("_", " "))
    what += f" at {format_time(ts)}"
    if facts.diluted is None:
        return f"{what} for a bag with no recorded dilution"
    if ts <= facts.diluted:
        return f"{what}, at or before its dilution at {format_time(facts.diluted)}"
    if kind == "infusion_started":
        if facts.ended is not None and ts >= facts.ended:
            return f"{what}, at or after it ended at {format_time(facts.ended)}"
        if facts.started is not None and ts != facts.started:
            return f"{what}, but its infusion started at {format_time(facts.started)}"
        return None
    if facts.started is not None and ts <= facts.started:
        return f"{what}, at or before its infusion start at {format_time(facts.started)}"
    if facts.ended is not None and ts != facts.ended:
        return f"{what}, but it already ended at {format_time(facts.ended)}"
    return None


def after(facts: BagFacts, event: BagEvent) -> BagFacts:
    """The facts once a possible ``event`` is recorded."""
    if event.event == "diluted":
        if facts.diluted is None or event.ts < facts.diluted:
            return replace(facts, diluted=event.ts)
        return facts
    if event.event == "infusion_started":
        return replace(facts, started=event.ts)
    return replace(facts, ended=event.ts)


def fold(events: Iterable[BagEvent], facts: BagFacts | None = None) -> BagFacts:
    """The facts of a bag from its recorded events (oldest first), skipping impossible ones."""
    current = facts or BagFacts()
    for event in events:
        if sequence_error(current, event) is None:
            current = after(current, event)
    return current


class BagLedger:
    """The facts of the bags seen so far, asking ``lookup`` (the store, the engine) for a bag not seen yet."""

    __slots__ = ("_facts", "_lookup")

    def __init__(self, lookup: Callable[[str], BagFacts]) -> None:
        self._lookup = lookup
        self._facts: dict[str, BagFacts] = {}

    def facts(self, bag: str) -> BagFacts:
        """What is recorded for ``bag``; a bag without a dilution is asked again next time (one may be replayed)."""
        found = self._facts.get(bag)
        if found is None:
            found = self._lookup(bag)
            if found.diluted is not None:
                self._facts[bag] = found
        return found

    def admit(self, events: Sequence[BagEvent]) -> str | None:
        """Check one message's events (in time order); if all can have happened, record them and return None,
        else record nothing and return why the first impossible one cannot."""
        staged: dict[str, BagFacts] = {}
        for event in sorted(events, key=lambda e: e.ts):
            facts = staged.get(event.bag) or self.facts(event.bag)
            error = sequence_error(facts, event)
            if error is not None:
                return error
            staged[event.bag] = after(facts, event)
        self._facts.update(staged)
        return None

    def forget(self, bag: str) -> None:
        """Drop what is cached for ``bag`` (the next look-up asks ``lookup`` again)."""
        self._facts.pop(bag, None)
