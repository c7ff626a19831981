"""Each diluted bag's life from its stored events, and whether it was used within its limit; pure.

Events (measurement ``bag_event``) are folded by bag, oldest first: the first ``diluted`` (the
earliest: of two dilution times the earlier rules) starts the bag, and the first of each later kind
is its step (repeats are ignored, as the rules engine ignores them); events that cannot have happened
(``bag_sequence.py``: e.g. an end before the dilution, stored before such events were refused) and
events of a bag whose ``diluted`` is not among the rows are left out. The deadline is the stricter of
the one the rules worker recorded (measurement ``bag_timer``) and ``diluted`` + the unit's
``diluted_use_within``.

*Used within the limit* means the infusion started at or before the deadline (the rules open
``bag_used_after_expiry`` only for a start strictly after it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from coldchain.core.bag_sequence import BagFacts, after, sequence_error
from coldchain.core.records import BagEvent


@dataclass(slots=True)
class BagLife:
    """A diluted bag's steps, each with who did it."""

    bag: str
    site: str
    unit: str
    product: str | None
    lot: str | None
    diluted_at: datetime
    diluted_by: str | None
    deadline: datetime | None = None
    started_at: datetime | None = None
    started_by: str | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None
    discarded_at: datetime | None = None
    discarded_by: str | None = None

    @property
    def ended_at(self) -> datetime | None:
        """When the bag left the fridge for good (completed or discarded)."""
        ends = [t for t in (self.completed_at, self.discarded_at) if t is not None]
        return min(ends) if ends else None

    def verdict(self, now: datetime) -> tuple[str, str]:
        """(``used_within_limit``: yes, no or empty when unused; the outcome in words) as of ``now``."""
        deadline = self.deadline
        if self.started_at is not None:
            if deadline is None:
                return "", "infusion started; deadline unknown"
            if self.started_at <= deadline:
                done = "completed" if self.completed_at is not None else "started"
                return "yes", f"infusion {done} within the limit"
            return "no", "infusion started after the deadline"
        if self.discarded_at is not None:
            return "", "discarded unused"
        if self.completed_at is not None:  # completed without a recorded start
            if deadline is None or self.completed_at <= deadline:
                return "yes", "infusion completed within the limit (no start recorded)"
            return "no", "infusion completed after the deadline (no start recorded)"
        if deadline is not None and now > deadline:
            return "no", "expired: neither used nor discarded by the deadline"
        return "", "in progress"


_STEPS = {
    "infusion_started": ("started_at", "started_by"),
    "infusion_completed": ("completed_at", "completed_by"),
    "discarded": ("discarded_at", "discarded_by"),
}


def fold_bag_events(
    rows: Iterable[Mapping[str, Any]],
    use_within: Callable[[str], timedelta | None],
    deadlines: Mapping[str, datetime] | None = None,
) -> dict[str, BagLife]:
    """Bags by id from bag_event rows (oldest first). ``use_within(unit)`` gives the unit's shelf life;
    ``deadlines`` (bag -> deadline) the ones the worker recorded."""
    bags: dict[str, BagLife] = {}
    facts: dict[str, BagFacts] = {}
    for row in rows:
        bag, event = str(row.get("bag", "")), row.get("event")
        if event not in ("diluted", "infusion_started", "infusion_completed", "discarded"):
            continue
        step_event = BagEvent(bag, event, row["time"], row.get("unit"), None, None, None, None)
        known_facts = facts.get(bag, BagFacts())
        if sequence_error(known_facts, step_event) is not None:
            continue
        facts[bag] = after(known_facts, step_event)
        if event == "diluted":
            if bag in bags or not row.get("unit"):
                continue
            unit = str(row["unit"])
            life = BagLife(
                bag=bag,
                site=str(row.get("site", "")),
                unit=unit,
                product=row.get("product"),
                lot=row.get("lot"),
                diluted_at=row["time"],
                diluted_by=row.get("by"),
            )
            known = (deadlines or {}).get(bag)
            shelf = use_within(unit)
            derived = life.diluted_at + shelf if shelf is not None else None
            candidates = [d for d in (known, derived) if d is not None]
            life.deadline = min(candidates) if candidates else None
            bags[bag] = life
            continue
        known_bag = bags.get(bag)
        step = _STEPS.get(str(event))
        if known_bag is None or step is None or getattr(known_bag, step[0]) is not None:
            continue
        setattr(known_bag, step[0], row["time"])
        setattr(known_bag, step[1], row.get("by"))
    return bags
