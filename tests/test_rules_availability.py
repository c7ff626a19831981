"""A device's own offline report (Zigbee2MQTT availability) in the pure rules engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coldchain.config import Settings
from coldchain.core.records import SensorAvailability, TemperatureReading
from coldchain.core.rules import RulesEngine

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def engine() -> RulesEngine:
    settings = Settings(
        units=[{"id": "fridge-a", "site": "main-pharmacy"}],
        sensors=[
            {"id": "z-t", "unit": "fridge-a", "kind": "temperature", "format": "zigbee2mqtt", "topic": "z/probe"},
            {"id": "z-s", "unit": "fridge-a", "kind": "shake", "format": "zigbee2mqtt", "topic": "z/shake"},
        ],
    )
    return RulesEngine(settings.frozen_inventory())


def reading(at: datetime) -> TemperatureReading:
    return TemperatureReading("z-t", "fridge-a", "main-pharmacy", at, 4.0)


def offline(sensor: str, at: datetime, online: bool = False) -> SensorAvailability:
    return SensorAvailability(sensor, "fridge-a", "main-pharmacy", at, online)


# (records per call: (now in minutes, records), expected (kind, state, started, updated) per transition)
CASES = [
    # offline opens at once, long before offline_after (15 min), at the report's arrival
    ([(1, [reading(T0)]), (2, [offline("z-t", T0 + timedelta(minutes=2))])], [("sensor_offline", "open", 2, 2)]),
    # works for shake sensors too
    ([(2, [offline("z-s", T0 + timedelta(minutes=2))])], [("sensor_offline", "open", 2, 2)]),
    # a second offline report while offline changes nothing
    (
        [(2, [offline("z-t", T0 + timedelta(minutes=2))]), (3, [offline("z-t", T0 + timedelta(minutes=3))])],
        [("sensor_offline", "open", 2, 2)],
    ),
    # online alone changes nothing; the next reading resolves at its arrival
    (
        [
            (2, [offline("z-t", T0 + timedelta(minutes=2))]),
            (4, [offline("z-t", T0 + timedelta(minutes=4), online=True)]),
            (6, [reading(T0 + timedelta(minutes=6))]),
        ],
        [("sensor_offline", "open", 2, 2), ("sensor_offline", "resolved", 2, 6)],
    ),
    # an online report on its own opens nothing
    ([(2, [offline("z-t", T0 + timedelta(minutes=2), online=True)])], []),
]


@pytest.mark.parametrize(("calls", "expected"), CASES)
def test_reported_offline(calls: list[tuple[int, list[object]]], expected: list[tuple[str, str, int, int]]) -> None:
    """A gateway's offline report opens sensor_offline at once; the next reading resolves it."""
    rules = engine()
    seen = []
    for minute, records in calls:
        for transition in rules.observe(records, T0 + timedelta(minutes=minute)):  # type: ignore[arg-type]
            alert = transition.alert
            seen.append(
                (
                    alert.kind,
                    alert.state,
                    int((alert.started_at - T0) / timedelta(minutes=1)),
                    int((alert.updated_at - T0) / timedelta(minutes=1)),
                )
            )
    assert seen == expected


def test_reported_offline_survives_a_snapshot() -> None:
    """An offline reported by the gateway is restored from the snapshot and not opened a second time."""
    rules = engine()
    rules.observe([offline("z-t", T0)], T0)
    restored = RulesEngine.restore(rules.inventory, rules.snapshot())
    assert [a.kind for a in restored.open_alerts()] == ["sensor_offline"]
    assert restored.observe([offline("z-t", T0 + timedelta(minutes=1))], T0 + timedelta(minutes=1)) == []
    assert [t.alert.subject for t in restored.tick(T0 + timedelta(hours=1))] == ["z-s"]  # only the silent one


def test_a_sensor_back_online_with_a_short_offline_after_goes_silent_on_time_among_long_ones() -> None:
    """The tick skips scanning for silence until one can fall due; a sensor back online lowers that moment."""
    settings = Settings(
        units=[
            {"id": "fridge-a", "site": "main-pharmacy"},
            {"id": "fridge-b", "site": "main-pharmacy", "offline_after": "30s"},
        ],
        sensors=[
            {"id": "t-a", "unit": "fridge-a", "kind": "temperature"},
            {"id": "t-b", "unit": "fridge-b", "kind": "temperature"},
        ],
    )
    rules = RulesEngine(settings.frozen_inventory())
    a = TemperatureReading("t-a", "fridge-a", "main-pharmacy", T0, 4.0)
    rules.observe([a], T0)
    (opened,) = rules.tick(T0 + timedelta(seconds=30))  # t-b never heard: offline after its 30 s
    assert (opened.alert.sensor, opened.change) == ("t-b", "opened")
    back = T0 + timedelta(seconds=40)
    b = TemperatureReading("t-b", "fridge-b", "main-pharmacy", back, 4.0)
    assert [t.change for t in rules.observe([b], back)] == ["resolved"]
    for second in range(41, 70):  # t-a (15 min) keeps the scan's bound far away; t-b must still be seen
        assert rules.tick(T0 + timedelta(seconds=second)) == []
    (again,) = rules.tick(T0 + timedelta(seconds=70))
    assert (again.alert.sensor, again.alert.started_at, again.alert.updated_at) == (
        "t-b",
        back,
        back + timedelta(seconds=30),
    )
