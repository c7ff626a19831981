"""Bag events that cannot have happened are refused; a second dilution is a conflict and the earlier rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.config import Settings
from coldchain.core.bag_sequence import BagFacts, BagLedger, sequence_error
from coldchain.core.records import BagEvent, BagEventKind
from coldchain.core.rules import RulesEngine
from coldchain.core.signoff import Acknowledgement

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
H = timedelta(hours=1)
SETTINGS = Settings(units=[{"id": "fridge-a", "site": "main", "name": "Fridge A"}], sensors=[])


def ev(kind: BagEventKind, at: timedelta, bag: str = "B1") -> BagEvent:
    return BagEvent(bag, kind, T0 + at, "fridge-a" if kind == "diluted" else None, "main", None, None, "j.doe")


def facts(diluted: float | None = 0, started: float | None = None, ended: float | None = None) -> BagFacts:
    def at(hours: float | None) -> datetime | None:
        return None if hours is None else T0 + hours * H

    return BagFacts(at(diluted), at(started), at(ended))


@pytest.mark.parametrize(
    ("known", "event", "possible"),
    [
        (facts(None), ev("infusion_started", H), False),  # no recorded dilution
        (facts(None), ev("discarded", H), False),  # an end with no recorded dilution
        (facts(None), ev("diluted", H), True),  # the first dilution
        (facts(0), ev("discarded", -H), False),  # the attack: an end dated before the dilution
        (facts(0), ev("infusion_started", 0 * H), False),  # at the very moment of the dilution
        (facts(0), ev("infusion_completed", 0 * H), False),
        (facts(0), ev("infusion_started", H), True),
        (facts(0, ended=2), ev("infusion_started", 3 * H), False),  # a start after the bag ended
        (facts(0, ended=2), ev("infusion_started", 2 * H), False),  # at the moment it ended
        (facts(0, started=1), ev("infusion_started", 2 * H), False),  # a second start at another time
        (facts(0, started=1), ev("infusion_started", 1 * H), True),  # the same start again: a redelivery
        (facts(0, started=2), ev("infusion_completed", H), False),  # an end before the start
        (facts(0, started=2), ev("discarded", 3 * H), True),
        (facts(0, ended=2), ev("discarded", 3 * H), False),  # a second end at another time
        (facts(0, ended=2), ev("infusion_completed", 1 * H), False),  # an earlier end, after the fact
        (facts(0, ended=2), ev("discarded", 2 * H), True),  # the same end again
        (facts(0, ended=2), ev("diluted", 3 * H), False),  # a dilution after the bag ended
        (facts(0), ev("diluted", -H), True),  # a second, earlier dilution: possible (a conflict)
        (facts(0), ev("diluted", H), True),  # a second, later dilution: possible (a conflict)
    ],
)
def test_sequence_rules(known: BagFacts, event: BagEvent, possible: bool) -> None:
    """Each impossible sequence of docs/rules.md is named; possible ones pass."""
    error = sequence_error(known, event)
    assert (error is None) == possible, error
    if error is not None:
        assert event.bag in error


def test_a_message_is_refused_whole() -> None:
    """[diluted T, discarded T-1h] is refused whole: the genuine dilution that follows starts the timer."""
    ledger = BagLedger(lambda bag: BagFacts())
    assert ledger.admit([ev("diluted", 0 * H), ev("discarded", -H)]) is not None
    assert ledger.facts("B1") == BagFacts()
    assert ledger.admit([ev("diluted", 0 * H)]) is None


def kinds(transitions: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(t.alert.kind, t.change) for t in transitions]


def test_an_early_end_cannot_silence_the_timer() -> None:
    """An end dated before the dilution changes nothing: bag_expired still opens at the deadline."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    engine.observe([ev("diluted", 0 * H)], T0)
    assert engine.observe([ev("discarded", -H)], T0 + H) == []
    assert engine.stats.invalid_bag_events == 1
    assert ("bag_expired", "opened") in kinds(engine.tick(T0 + 8 * H))


def test_an_earlier_second_dilution_rules_and_raises_a_conflict() -> None:
    """A second, earlier dilution moves the deadline earlier and opens bag_conflict (a warning)."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    engine.observe([ev("diluted", 0 * H)], T0)
    out = engine.observe([ev("diluted", -2 * H)], T0 + H)
    assert kinds(out) == [("bag_conflict", "opened")] and out[0].alert.severity == "warning"
    assert engine.observe([ev("diluted", -2 * H)], T0 + H) == []  # redelivered: one conflict
    assert ("bag_expired", "opened") in kinds(engine.tick(T0 + 6 * H))
    status = engine.bag_status("B1")
    assert status is not None and status.deadline == T0 + 6 * H


def test_a_later_second_dilution_changes_no_deadline() -> None:
    """A second, later dilution opens bag_conflict but the first (earlier) dilution's deadline stands."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    engine.observe([ev("diluted", 0 * H)], T0)
    assert kinds(engine.observe([ev("diluted", 3 * H)], T0 + 3 * H)) == [("bag_conflict", "opened")]
    status = engine.bag_status("B1")
    assert status is not None and status.deadline == T0 + 8 * H
    (conflict,) = [a for a in engine.open_alerts() if a.kind == "bag_conflict"]
    transition = engine.acknowledge(Acknowledgement(conflict.id, "pharmacist", "label checked"), T0 + 4 * H)
    assert transition is not None and transition.change == "resolved"


def test_an_earlier_dilution_of_an_ended_bag_reveals_its_expiry() -> None:
    """A bag discarded at +2 h, then labelled as diluted at -7 h: it had expired at +1 h, before it was discarded."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    engine.observe([ev("diluted", 0 * H)], T0)
    engine.observe([ev("discarded", 2 * H)], T0 + 2 * H)
    out = engine.observe([ev("diluted", -7 * H)], T0 + 3 * H)
    assert kinds(out) == [
        ("bag_conflict", "opened"),
        ("bag_expiring", "opened"),
        ("bag_expiring", "resolved"),
        ("bag_expired", "opened"),
        ("bag_expired", "resolved"),
    ]
    expired = [t.alert for t in out if t.alert.kind == "bag_expired"]
    assert (expired[0].started_at, expired[-1].resolved_at) == (T0 + H, T0 + 2 * H)


events = st.lists(
    st.tuples(
        st.sampled_from(("diluted", "infusion_started", "infusion_completed", "discarded")),
        st.integers(-40, 40),  # quarter hours around T0
        st.sampled_from(("B1", "B2")),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=6))
def test_deadline_never_later_than_earliest_accepted_dilution(messages: list[list[tuple[str, int, str]]]) -> None:
    """Whatever order and content, a running timer's deadline is never later than its earliest accepted
    dilution + shelf life, and never runs for a bag whose dilution was refused."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    accepted: dict[str, datetime] = {}
    now = T0 + 11 * H
    for message in messages:
        batch = [ev(kind, timedelta(minutes=15 * q), bag) for kind, q, bag in message]  # type: ignore[arg-type]
        ledger = engine.bag_ledger()
        if ledger.admit(batch) is not None:
            continue  # refused whole, as the rules worker does
        engine.observe(batch, now)
        for event in batch:
            if event.event == "diluted":
                accepted[event.bag] = min(accepted.get(event.bag, event.ts), event.ts)
    for bag, _unit, diluted, deadline in engine.running_bags():
        assert diluted == accepted[bag]
        assert deadline <= accepted[bag] + timedelta(hours=8)


def test_the_export_folds_bags_as_the_rules_do() -> None:
    """bags.csv's fold skips impossible stored events, takes the earliest dilution and the stricter deadline."""
    from coldchain.core.bag_history import fold_bag_events

    def row(kind: str, hours: float, bag: str = "B1") -> dict[str, object]:
        return {"bag": bag, "event": kind, "time": T0 + hours * H, "unit": "fridge-a", "site": "main", "by": "x"}

    rows = [
        row("diluted", -2),  # an earlier second label, stored later but oldest in time
        row("discarded", -1.5, bag="B2"),  # an end for a bag never diluted
        row("infusion_completed", -3),  # before any dilution: impossible
        row("diluted", 0),
        row("infusion_started", 1),
        row("infusion_started", 1.5),  # a second start at another time: impossible
    ]
    rows.sort(key=lambda r: r["time"])  # type: ignore[arg-type, return-value]
    lives = fold_bag_events(rows, lambda unit: timedelta(hours=8), {"B1": T0 + 8 * H})
    assert set(lives) == {"B1"}
    life = lives["B1"]
    assert (life.diluted_at, life.deadline) == (T0 - 2 * H, T0 + 6 * H)  # the earlier label's, stricter
    assert (life.started_at, life.completed_at) == (T0 + H, None)
