"""Properties of the rules engine over generated streams of readings, bag events and ticks.

A stream is a list of calls: uploads of a few readings (in ts order or shuffled, some held back
and delivered late) and ticks, with a clock that never runs backwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.config import Settings
from coldchain.core.alert import Transition
from coldchain.core.records import BagEvent, BagEventKind, ShakeReading, TemperatureReading
from coldchain.core.rules import RulesEngine

T0 = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)
SETTINGS = Settings(
    units=[
        {"id": "fridge-a", "site": "main-pharmacy", "name": "Infusion fridge A"},
        {"id": "fridge-b", "site": "main-pharmacy", "overrides": {"excursion_delay": "5m", "clear_after": "2m"}},
    ],
    sensors=[
        {"id": "t-001", "unit": "fridge-a", "kind": "temperature"},
        {"id": "t-002", "unit": "fridge-b", "kind": "temperature"},
        {"id": "s-001", "unit": "fridge-a", "kind": "shake"},
    ],
)
TEMPERATURE_SENSORS = {"t-001": "fridge-a", "t-002": "fridge-b"}
Record = TemperatureReading | ShakeReading | BagEvent


@dataclass(frozen=True)
class Call:
    """``observe(records, now)``, or ``tick(now)`` when ``records`` is None."""

    now: datetime
    records: tuple[Record, ...] | None

    def run(self, engine: RulesEngine) -> list[Transition]:
        return engine.tick(self.now) if self.records is None else engine.observe(list(self.records), self.now)


def play(calls: list[Call], engine: RulesEngine | None = None) -> list[Transition]:
    engine = engine or RulesEngine(SETTINGS.frozen_inventory())
    return [transition for call in calls for transition in call.run(engine)]


@st.composite
def streams(draw: st.DrawFn, celsius: st.SearchStrategy[float], bags: bool = True) -> list[Call]:
    """Calls over up to a few hours: uploads of 1-6 records, late deliveries, ticks."""
    calls: list[Call] = []
    ts = clock = T0
    held: list[Record] = []
    for _ in range(draw(st.integers(1, 40))):
        if draw(st.integers(0, 3)) == 0:
            clock = max(clock, ts) + timedelta(seconds=draw(st.integers(0, 1200)))
            calls.append(Call(clock, None))
            continue
        records: list[Record] = []
        for _ in range(draw(st.integers(1, 6))):
            ts += timedelta(seconds=draw(st.integers(0, 400)), milliseconds=draw(st.sampled_from((1, 999, 1000))))
            kind = draw(st.sampled_from(("temperature", "temperature", "shake", "bag") if bags else ("temperature",)))
            if kind == "temperature":
                sensor = draw(st.sampled_from(sorted(TEMPERATURE_SENSORS)))
                unit = TEMPERATURE_SENSORS[sensor]
                records.append(TemperatureReading(sensor, unit, "main-pharmacy", ts, draw(celsius)))
            elif kind == "shake":
                peak_g = draw(st.sampled_from((0.0, 0.2, 0.49, 0.5, 0.9)))
                records.append(ShakeReading("s-001", "fridge-a", "main-pharmacy", ts, peak_g))
            else:
                event: BagEventKind = draw(
                    st.sampled_from(("diluted", "infusion_started", "infusion_completed", "discarded"))
                )
                bag = draw(st.sampled_from(("B-1", "B-2")))
                unit = draw(st.sampled_from(("fridge-a", "fridge-b")))
                records.append(BagEvent(bag, event, ts, unit, "main-pharmacy", None, None, None))
        if held and draw(st.booleans()):
            records += held  # delivered late, after newer readings of the same sensors
            held = []
        if len(records) > 1 and draw(st.booleans()):
            records = draw(st.permutations(records))
        if draw(st.integers(0, 4)) == 0:
            held.append(records.pop())
        clock = max(clock, ts) + timedelta(seconds=draw(st.integers(0, 90)))
        if records:
            calls.append(Call(clock, tuple(records)))
        if draw(st.integers(0, 10)) == 0:
            ts += timedelta(hours=draw(st.integers(1, 6)))  # a long quiet stretch: bag timers fall due
    return calls


ANY_CELSIUS = st.one_of(st.sampled_from((-0.5, 0.0, 0.1, 1.99, 2.0, 8.0, 8.01, 9.6)), st.floats(-3.0, 12.0))
IN_RANGE = st.one_of(st.sampled_from((2.0, 8.0)), st.floats(2.0, 8.0))


@settings(max_examples=150, deadline=None)
@given(streams(IN_RANGE, bags=False))
def test_in_range_readings_never_alert(calls: list[Call]) -> None:
    """Readings within [2.0, 8.0] never open a temperature alert, in any order, with any ticks."""
    kinds = {transition.alert.kind for transition in play(calls)}
    assert kinds <= {"sensor_offline"}


@settings(max_examples=200, deadline=None)
@given(streams(ANY_CELSIUS))
def test_each_episode_opens_once_and_resolves_at_most_once(calls: list[Call]) -> None:
    """Every transition belongs to one episode: opened once, resolved at most once, never before it began."""
    opened: dict[str, Transition] = {}
    resolved: set[str] = set()
    for transition in play(calls):
        alert = transition.alert
        assert alert.updated_at >= alert.started_at
        if transition.change == "opened":
            assert alert.id not in opened, "an id opened twice"
            assert alert.state == "open" and alert.resolved_at is None
            opened[alert.id] = transition
        else:
            assert transition.change == "resolved"
            assert alert.id in opened and alert.id not in resolved
            first = opened[alert.id].alert
            assert (alert.kind, alert.subject, alert.started_at) == (first.kind, first.subject, first.started_at)
            assert alert.state == "resolved" and alert.resolved_at is not None
            assert alert.resolved_at >= alert.started_at
            assert alert.kind != "bag_used_after_expiry"
            resolved.add(alert.id)


@settings(max_examples=100, deadline=None)
@given(streams(ANY_CELSIUS), st.data())
def test_snapshot_restore_changes_nothing(calls: list[Call], data: st.DataObject) -> None:
    """Stopping at any call, persisting the snapshot as JSON and restoring yields the same future."""
    cut = data.draw(st.integers(0, len(calls)))
    straight = RulesEngine(SETTINGS.frozen_inventory())
    expected = play(calls, straight)
    stopped = RulesEngine(SETTINGS.frozen_inventory())
    before = play(calls[:cut], stopped)
    restored = RulesEngine.restore(SETTINGS.frozen_inventory(), json.loads(json.dumps(stopped.snapshot())))
    assert before + play(calls[cut:], restored) == expected
    assert restored.open_alerts() == straight.open_alerts()
    assert restored.snapshot() == straight.snapshot()


@settings(max_examples=100, deadline=None)
@given(streams(ANY_CELSIUS), st.randoms(use_true_random=False))
def test_one_upload_in_any_order(calls: list[Call], rng: object) -> None:
    """All records in one call give the same transitions whatever their order."""
    records = [record for call in calls if call.records is not None for record in call.records]
    ordered = sorted(records, key=lambda record: record.ts)
    shuffled = list(records)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    now = T0 + timedelta(days=2)
    assert play([Call(now, tuple(shuffled))]) == play([Call(now, tuple(ordered))])
