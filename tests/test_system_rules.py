"""System alerts (core/system_rules.py through the engine) and the grouping of sensor_offline under a broker outage.

Table-driven: each case is a script of facts at moments (seconds from T0) and the transitions it must
produce, one line each with why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coldchain.config import Settings
from coldchain.core.alert import Alert
from coldchain.core.policy import Sent, grouped_under
from coldchain.core.rules import RulesEngine, migrate
from coldchain.core.signoff import Acknowledgement
from coldchain.core.system_rules import (
    DiskSpace,
    Fact,
    FutureTimestamps,
    Link,
    Outage,
    RoleHealth,
    StateReset,
    SystemLimits,
    topic_safe,
)

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
LIMITS = SystemLimits(broker_after=timedelta(minutes=2), store_after=timedelta(minutes=10), skew_burst=3)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def engine() -> RulesEngine:
    settings = Settings.model_validate(
        {
            "units": [{"id": "fridge-a", "site": "main", "name": "Fridge A", "offline_after": "20s"}],
            "sensors": [{"id": "t-001", "unit": "fridge-a", "kind": "temperature"}],
        }
    )
    return RulesEngine(settings.frozen_inventory(), LIMITS)


BROKER_DOWN = Link("broker_unreachable", "coldchain", False, "mqtt://127.0.0.1:1883")
BROKER_UP = Link("broker_unreachable", "coldchain", True)
STORE_DOWN = Link("store_unreachable", "influx", False)
STORE_UP = Link("store_unreachable", "influx", True)
GB = 10**9

Script = list[tuple[float, list[Fact] | None]]
"""(seconds after T0, facts reported then; None: a clock tick only)."""


def run(script: Script) -> list[tuple[str, str, str, str]]:
    """(change, kind, subject, started_at offset) of every system transition the script causes."""
    rules = engine()
    rules.observe([], T0)  # the engine's first now: sensors' silence starts here
    out = []
    for seconds, facts in script:
        transitions = rules.system(facts, at(seconds)) if facts is not None else rules.tick(at(seconds))
        for t in transitions:
            if t.alert.kind == "sensor_offline":
                continue
            started = int((t.alert.started_at - T0).total_seconds())
            out.append((t.change, t.alert.kind, t.alert.subject, f"+{started}s"))
    return out


CASES: list[tuple[str, Script, list[tuple[str, str, str, str]]]] = [
    # a broker blip shorter than outage_alert_after raises nothing
    ("broker blip", [(0, [BROKER_DOWN]), (60, [BROKER_DOWN]), (90, [BROKER_UP])], []),
    # down for 2 minutes: opens, started at the first fact that showed it, resolves when up
    (
        "broker outage",
        [(0, [BROKER_DOWN]), (119, [BROKER_DOWN]), (120, [BROKER_DOWN]), (200, [BROKER_UP])],
        [("opened", "broker_unreachable", "coldchain", "+0s"), ("resolved", "broker_unreachable", "coldchain", "+0s")],
    ),
    # the clock alone opens it (a tick, no new fact)
    (
        "broker outage by tick",
        [(0, [BROKER_DOWN]), (130, None)],
        [("opened", "broker_unreachable", "coldchain", "+0s")],
    ),
    # the store gets 10 minutes, not 2
    ("store 5 min", [(0, [STORE_DOWN]), (300, [STORE_DOWN]), (400, [STORE_UP])], []),
    (
        "store 10 min",
        [(0, [STORE_DOWN]), (600, [STORE_DOWN]), (700, [STORE_UP])],
        [("opened", "store_unreachable", "influx", "+0s"), ("resolved", "store_unreachable", "influx", "+0s")],
    ),
    # disk under its minimum opens at once; the path is made topic-safe
    (
        "disk low",
        [
            (0, [DiskSpace("/var/lib/cc", GB // 10, 100 * GB, GB // 2)]),
            (5, [DiskSpace("/var/lib/cc", GB, 100 * GB, GB // 2)]),
        ],
        [("opened", "disk_low", "%2Fvar%2Flib%2Fcc", "+0s"), ("resolved", "disk_low", "%2Fvar%2Flib%2Fcc", "+0s")],
    ),
    # enough space: nothing
    ("disk fine", [(0, [DiskSpace("/var", 10 * GB, 100 * GB, GB // 2)])], []),
    # a failing role opens role_failed once, however often it is reported, and resolves when healthy
    (
        "role failed",
        [
            (0, [RoleHealth("ingest", False, "boom")]),
            (1, [RoleHealth("ingest", False, "boom")]),
            (2, [RoleHealth("ingest", True)]),
        ],
        [("opened", "role_failed", "ingest", "+0s"), ("resolved", "role_failed", "ingest", "+0s")],
    ),
    # a state reset opens at once (and only an acknowledgement resolves it: see below)
    (
        "state reset",
        [(0, [StateReset("rules snapshot", "all of it")])],
        [("opened", "state_reset", "rules-snapshot", "+0s")],
    ),
    # two ts_in_future rejections are noise; the third within a minute is a skew
    ("skew below burst", [(0, [FutureTimestamps(1)]), (10, [FutureTimestamps(1)])], []),
    (
        "skew burst then calm",
        [(0, [FutureTimestamps(1)]), (10, [FutureTimestamps(2)]), (20, None), (611, None)],
        [("opened", "clock_skew", "ts_in_future", "+10s"), ("resolved", "clock_skew", "ts_in_future", "+10s")],
    ),
    # spread over more than the window: no burst
    ("skew spread out", [(0, [FutureTimestamps(1)]), (61, [FutureTimestamps(1)]), (122, [FutureTimestamps(1)])], []),
]


@pytest.mark.parametrize(("name", "script", "expected"), CASES, ids=[case[0] for case in CASES])
def test_system_alerts(name: str, script: Script, expected: list[tuple[str, str, str, str]]) -> None:
    """Facts about coldchain itself open and resolve system alerts as the table says."""
    assert run(script) == expected


def test_system_alerts_are_critical_or_warning_as_the_contract_says() -> None:
    """broker/store/role/state alerts are critical, disk_low and clock_skew warnings; all at site coldchain."""
    rules = engine()
    facts: list[Fact] = [
        BROKER_DOWN,
        STORE_DOWN,
        DiskSpace("/x", 1, 10, 5),
        RoleHealth("rules", False, "x"),
        StateReset("outbox", "y"),
        FutureTimestamps(5),
    ]
    rules.system(facts, T0)
    transitions = rules.tick(T0 + timedelta(hours=1))
    severities = {t.alert.kind: t.alert.severity for t in transitions}
    severities.update({a.kind: a.severity for a in rules.open_alerts()})
    assert severities == {
        "broker_unreachable": "critical",
        "store_unreachable": "critical",
        "role_failed": "critical",
        "state_reset": "critical",
        "disk_low": "warning",
        "clock_skew": "warning",
    }
    assert {a.site for a in rules.open_alerts()} == {"coldchain"}


def test_state_reset_resolves_when_acknowledged_and_may_open_again() -> None:
    """An acknowledgement resolves state_reset (nothing else clears it); a later reset opens a new one."""
    rules = engine()
    [opened] = rules.system([StateReset("spool", "records")], T0)
    transition = rules.acknowledge(Acknowledgement(opened.alert.id, "j.doe", "checked"), at(5))
    assert transition is not None and transition.change == "resolved"
    [again] = rules.system([StateReset("spool", "records")], at(10))
    assert again.change == "opened" and again.alert.id != opened.alert.id


def test_system_state_survives_a_snapshot() -> None:
    """A broker outage in progress keeps its start across a restore: the alert opens on time, same id."""
    rules = engine()
    rules.system([BROKER_DOWN], T0)
    restored = RulesEngine.restore(rules.inventory, rules.snapshot(), LIMITS)
    [opened] = restored.tick(at(120))
    assert opened.alert.kind == "broker_unreachable" and opened.alert.started_at == T0
    assert restored.broker_outages() == (Outage("coldchain", T0, None),)


def test_a_version_1_snapshot_is_migrated_not_dropped() -> None:
    """A snapshot saved before system alerts (version 1) restores its bag timers and open alerts."""
    rules = engine()
    rules.observe([], T0)
    rules.tick(at(30))  # t-001 goes offline
    snapshot = rules.snapshot()
    old: dict[str, Any] = {key: value for key, value in snapshot.items() if key != "system"}
    old["version"] = 1
    restored = RulesEngine.restore(rules.inventory, old, LIMITS)
    assert [a.kind for a in restored.open_alerts()] == ["sensor_offline"]
    assert migrate(old)["version"] == 2


def test_an_unknown_snapshot_version_is_refused() -> None:
    """A snapshot from a newer coldchain is not guessed at."""
    with pytest.raises(ValueError, match="version 99"):
        migrate({"version": 99})


def test_topic_safe() -> None:
    """Subjects never carry MQTT topic separators or wildcards."""
    assert topic_safe("/a+b#c%") == "%2Fa%2Bb%23c%25"


def offline(state: str = "open", started: float = 0, resolved: float | None = None) -> Alert:
    return Alert(
        id="x",
        kind="sensor_offline",
        subject="t-001",
        state=state,  # type: ignore[arg-type]
        severity="warning",
        site="main",
        unit="fridge-a",
        sensor="t-001",
        bag=None,
        started_at=at(started),
        updated_at=at(resolved if resolved is not None else started + 20),
        resolved_at=at(resolved) if resolved is not None else None,
        value=None,
        message="",
    )


SENT = [Sent("pager", "opened", 0, at(1))]
DOWN = [Outage("coldchain", at(5), None)]
BACK = [Outage("coldchain", at(5), at(300))]

GROUPING: list[tuple[str, Alert, list[Sent], list[Outage], float, bool, bool]] = [
    # (why, alert, history, outages, now, was_grouped, grouped?)
    ("no outage: paged as usual", offline(), [], [], 30, False, False),
    ("broker down: grouped under it", offline(), [], DOWN, 30, False, True),
    ("broker back within the grace: still grouped (readings on their way)", offline(), [], BACK, 400, False, True),
    ("broker back long ago, sensor still silent: its own alert", offline(), [], BACK, 500, False, False),
    ("already notified before the outage: not hidden now", offline(), SENT, DOWN, 30, False, False),
    (
        "resolved after being grouped: its resolution is quiet too",
        offline("resolved", 0, 900),
        [],
        BACK,
        900,
        True,
        True,
    ),
    (
        "resolved, never grouped nor notified, no outage: first notice",
        offline("resolved", 0, 900),
        [],
        [],
        900,
        False,
        False,
    ),
]


@pytest.mark.parametrize(
    ("why", "alert", "history", "outages", "now", "was_grouped", "grouped"), GROUPING, ids=[g[0] for g in GROUPING]
)
def test_sensor_offline_grouped_under_broker_outage(
    why: str, alert: Alert, history: list[Sent], outages: list[Outage], now: float, was_grouped: bool, grouped: bool
) -> None:
    """sensor_offline alerts a broker outage explains are grouped under it, with a reason; others are not."""
    reason = grouped_under(alert, history, outages, at(now), was_grouped=was_grouped)
    assert (reason is not None) == grouped
    if reason is not None:
        assert "broker" in reason


def test_only_sensor_offline_is_grouped() -> None:
    """A freezing alert during a broker outage is still paged: only silence is explained by the outage."""
    freezing = Alert(**{**{f: getattr(offline(), f) for f in Alert.__slots__}, "kind": "freezing"})  # type: ignore[arg-type]
    assert grouped_under(freezing, [], DOWN, at(30)) is None
