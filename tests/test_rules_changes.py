"""Change records (``core/rules_changes.py``): a base snapshot plus the records taken since restores the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.core.records import TemperatureReading
from coldchain.core.rules import RulesEngine
from coldchain.core.rules_changes import apply_changes, is_empty, merge_changes
from coldchain.core.sensor_rules import NEVER
from coldchain.core.signoff import Acknowledgement
from coldchain.core.system_rules import Link, StateReset
from coldchain.core.times import parse_time
from tests.test_rules_properties import ANY_CELSIUS, SETTINGS, T0, Call, streams


def _json(data: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(data)))


def _normal(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with its lists in a fixed order (the engine keeps dicts in insertion order)."""
    return {
        **snapshot,
        "alerts": sorted(snapshot["alerts"], key=lambda alert: alert["id"]),
        "bags": sorted(snapshot["bags"], key=lambda bag: bag["bag"]),
    }


def _run(engine: RulesEngine, call: Call, data: st.DataObject) -> None:
    """One call of the stream, sometimes followed by an acknowledgement or a fact about the broker."""
    call.run(engine)
    extra = data.draw(st.integers(0, 6))
    if extra == 0 and engine.open_alerts():
        alert = data.draw(st.sampled_from(engine.open_alerts()))
        engine.acknowledge(Acknowledgement(alert.id, "nurse", "moved stock"), call.now)
    elif extra == 1:
        facts = (
            Link("broker_unreachable", "rules", False, "refused"),
            Link("broker_unreachable", "rules", True),
            StateReset("snapshot", "nothing"),
        )
        engine.system([data.draw(st.sampled_from(facts))], call.now)


def _recorded(
    calls: list[Call], data: st.DataObject, now_of: Callable[[Call], datetime | None]
) -> tuple[RulesEngine, dict[str, Any], list[dict[str, Any]]]:
    """A fresh engine after ``calls``, its base snapshot, and the change record taken after each call at ``now_of``."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    base = _json(engine.snapshot())
    engine.mark_saved()
    records = []
    for call in calls:
        _run(engine, call, data)
        records.append(_json(engine.changes(now_of(call))))
    return engine, base, records


@settings(max_examples=150, deadline=None)
@given(streams(ANY_CELSIUS), st.data())
def test_base_plus_exact_changes_restores_the_whole_state(calls: list[Call], data: st.DataObject) -> None:
    """For any stream, a base at any call plus the exact change records taken after each later call restore it."""
    cut = data.draw(st.integers(0, len(calls)))
    engine = RulesEngine(SETTINGS.frozen_inventory())
    for call in calls[:cut]:
        _run(engine, call, data)
    base = _json(engine.snapshot())
    engine.mark_saved()
    records = []
    for call in calls[cut:]:
        _run(engine, call, data)
        if data.draw(st.booleans()):
            records.append(_json(engine.changes()))
    records.append(_json(engine.changes()))
    restored = RulesEngine.restore(SETTINGS.frozen_inventory(), base, changes=records)
    assert _normal(restored.snapshot()) == _normal(engine.snapshot())


@settings(max_examples=150, deadline=None)
@given(streams(ANY_CELSIUS), st.data())
def test_coarse_changes_keep_episodes_exact_and_last_seen_within_a_grain(
    calls: list[Call], data: st.DataObject
) -> None:
    """Checkpoint records (coarse last-seen) restore every episode, alert and bag exactly; last-seen lags < a grain."""
    engine, base, records = _recorded(calls, data, lambda call: call.now)
    restored = RulesEngine.restore(SETTINGS.frozen_inventory(), base, changes=records).snapshot()
    full = engine.snapshot()
    grain = SETTINGS.units[0].offline_after / 10
    for sensor, state in full["sensors"].items():
        back = restored["sensors"][sensor]
        for key in ("last", "heard"):
            true = parse_time(state[key]) if state[key] else NEVER
            kept = parse_time(back[key]) if back[key] else NEVER
            assert kept <= true and true - kept < grain, (sensor, key, kept, true)
        strip = {"last", "heard"}
        assert {k: v for k, v in back.items() if k not in strip} == {k: v for k, v in state.items() if k not in strip}
    for key in ("alerts", "bags", "system"):
        assert sorted(map(json.dumps, restored[key])) == sorted(map(json.dumps, full[key])), key


@settings(max_examples=100, deadline=None)
@given(streams(ANY_CELSIUS), st.data())
def test_merged_records_equal_the_records_applied_in_turn(calls: list[Call], data: st.DataObject) -> None:
    """A record that could not be saved, merged into the next, restores what the two did in turn."""
    _, base, records = _recorded(calls, data, lambda call: call.now if data.draw(st.booleans()) else None)
    merged: dict[str, Any] = {}
    for record in records:
        merged = merge_changes(merged, record)
    assert apply_changes(base, [merged]) == apply_changes(base, records)


def test_nothing_changing_gives_an_empty_record() -> None:
    """Readings in range within a grain of the persisted last-seen leave nothing to persist."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    engine.observe([TemperatureReading("t-001", "fridge-a", "main-pharmacy", T0, 5.0)], T0)
    engine.mark_saved()
    for minute in range(1, 5):  # 20 s apart up to 80 s: within a grain (15 min / 10 = 90 s)
        at = T0 + timedelta(seconds=20 * minute)
        engine.observe([TemperatureReading("t-001", "fridge-a", "main-pharmacy", at, 5.0)], at)
        assert is_empty(engine.changes(at)), minute
    late = T0 + timedelta(seconds=95)
    engine.observe([TemperatureReading("t-001", "fridge-a", "main-pharmacy", late, 5.0)], late)
    assert engine.changes(late)["seen"] == {"t-001": [int(late.timestamp() * 1000)] * 2}
