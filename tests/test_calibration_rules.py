"""Calibration alerts by the clock: calibration_due and calibration_expired at their exact local boundaries."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from coldchain.config import Settings
from coldchain.core.alert import Alert, Transition, alert_id
from coldchain.core.calibration_rules import CALIBRATION_KINDS, expires_at, warns_at
from coldchain.core.rules import RulesEngine
from coldchain.core.signoff import Acknowledgement

MS = timedelta(milliseconds=1)
DUE = "2027-04-10"
"""The last day the certificate covers; Berlin changed to CEST (+02:00) on 2027-03-28, inside the warning."""
EXPIRES = datetime(2027, 4, 10, 22, tzinfo=UTC)
"""2027-04-11 00:00 CEST: the first moment out of calibration."""
WARNS = datetime(2027, 3, 11, 23, tzinfo=UTC)
"""2027-03-12 00:00 CET: local midnight 30 days earlier (30 days less one hour of UTC, across the change)."""


def settings(due: str | None = DUE, zone: str = "Europe/Berlin", **rules: Any) -> Settings:
    sensor: dict[str, Any] = {"id": "t-001", "unit": "fridge-a", "kind": "temperature"}
    if due is not None:
        sensor |= {"calibration_due": due, "calibration_certificate": "CERT-2026-0142"}
    return Settings(
        sites=[{"id": "main-pharmacy", "timezone": zone}],
        units=[{"id": "fridge-a", "site": "main-pharmacy", "name": "Infusion fridge A"}],
        sensors=[sensor],
        rules=rules,
    )


def engine_for(config: Settings) -> RulesEngine:
    return RulesEngine(config.frozen_inventory(), calibration_warn_before=config.rules.calibration_warn_before)


def calibration(transitions: list[Transition]) -> list[tuple[str, str, datetime, datetime | None]]:
    """(kind, change, started_at, resolved_at) of the calibration transitions only (silence opens offline alerts)."""
    return [
        (t.alert.kind, t.change, t.alert.started_at, t.alert.resolved_at)
        for t in transitions
        if t.alert.kind in CALIBRATION_KINDS
    ]


def open_kinds(engine: RulesEngine) -> list[str]:
    return [a.kind for a in engine.open_alerts() if a.kind in CALIBRATION_KINDS]


# (zone, due, warn_before, warns at (UTC), expires at (UTC)) — why
BOUNDARIES = [
    ("Europe/Berlin", date(2027, 4, 10), timedelta(days=30), WARNS, EXPIRES),  # warning in CET, expiry in CEST
    ("Europe/Berlin", date(2027, 10, 31), timedelta(days=30), datetime(2027, 10, 1, 22, tzinfo=UTC),
     datetime(2027, 10, 31, 23, tzinfo=UTC)),  # the other way: warning in CEST, expiry in CET
    ("America/New_York", date(2027, 3, 14), timedelta(days=7), datetime(2027, 3, 8, 5, tzinfo=UTC),
     datetime(2027, 3, 15, 4, tzinfo=UTC)),  # New York springs forward on 2027-03-14
    ("Europe/Berlin", date(2027, 4, 10), timedelta(hours=36), datetime(2027, 4, 9, 10, tzinfo=UTC),
     EXPIRES),  # not whole days: 36 wall-clock hours before local midnight, 12:00 two days before
    ("UTC", date(2027, 4, 10), timedelta(days=30), datetime(2027, 3, 12, tzinfo=UTC),
     datetime(2027, 4, 11, tzinfo=UTC)),  # the default zone
]  # fmt: skip


@pytest.mark.parametrize(("zone", "due", "before", "warn", "expire"), BOUNDARIES)
def test_boundaries_are_local_midnights(
    zone: str, due: date, before: timedelta, warn: datetime, expire: datetime
) -> None:
    """The certificate covers its due date to local midnight; the warning opens before it by the wall clock."""
    assert expires_at(due, zone) == int(expire.timestamp() * 1000)
    assert warns_at(due, zone, before) == int(warn.timestamp() * 1000)


# (now, calibration alerts open after one tick of a fresh engine) — why
FIRST_TICK = [
    (WARNS - MS, []),  # one ms before the warning: nothing
    (WARNS, ["calibration_due"]),  # the warning opens at local midnight, 30 days ahead
    (EXPIRES - MS, ["calibration_due"]),  # the last ms of the due date is still in calibration
    (EXPIRES, ["calibration_expired"]),  # the first ms of the next local day is not; the warning gave way
    (EXPIRES + timedelta(days=400), ["calibration_expired"]),  # long expired: it stays open
]


@pytest.mark.parametrize(("now", "kinds"), FIRST_TICK)
def test_first_tick(now: datetime, kinds: list[str]) -> None:
    """A fresh engine's first tick opens exactly what holds at ``now``."""
    engine = engine_for(settings())
    engine.tick(now)
    assert open_kinds(engine) == kinds


def test_the_clock_walks_through_both_boundaries() -> None:
    """Ticks one ms apart at each boundary: due opens at the warning, gives way to expired at the expiry."""
    engine = engine_for(settings())
    steps = [WARNS - MS, WARNS, WARNS + MS, EXPIRES - MS, EXPIRES, EXPIRES + MS]
    seen = [calibration(engine.tick(now)) for now in steps]
    assert seen == [
        [],
        [("calibration_due", "opened", WARNS, None)],
        [],
        [],
        [("calibration_expired", "opened", EXPIRES, None), ("calibration_due", "resolved", WARNS, EXPIRES)],
        [],
    ]
    (expired,) = [a for a in engine.open_alerts() if a.kind in CALIBRATION_KINDS]
    assert (expired.severity, expired.subject, expired.sensor, expired.unit) == (
        "critical",
        "t-001",
        "t-001",
        "fridge-a",
    )
    assert "CERT-2026-0142" in expired.message and "2027-04-10" in expired.message


def test_down_across_the_expiry_opens_with_true_times() -> None:
    """Ticked at the warning, then not until days after the expiry: expired starts at the expiry, due ends there."""
    engine = engine_for(settings())
    engine.tick(WARNS + timedelta(days=1))
    got = calibration(engine.tick(EXPIRES + timedelta(days=3)))
    assert got == [
        ("calibration_expired", "opened", EXPIRES, None),
        ("calibration_due", "resolved", WARNS, EXPIRES),
    ]


def _restarted(engine: RulesEngine, config: Settings) -> RulesEngine:
    snapshot = json.loads(json.dumps(engine.snapshot()))
    return RulesEngine.restore(
        config.frozen_inventory(), snapshot, calibration_warn_before=config.rules.calibration_warn_before
    )


def test_a_restart_keeps_the_alert_and_its_id() -> None:
    """After a restart with the same configuration the open alert is the same episode, not opened again."""
    engine = engine_for(settings())
    engine.tick(EXPIRES + timedelta(hours=1))
    (before,) = [a.id for a in engine.open_alerts() if a.kind == "calibration_expired"]
    assert before == alert_id("calibration_expired", "t-001", EXPIRES)
    again = _restarted(engine, settings())
    assert calibration(again.tick(EXPIRES + timedelta(hours=2))) == []
    assert [a.id for a in again.open_alerts() if a.kind in CALIBRATION_KINDS] == [before]


# (new due date or None, the restart's now, calibration transitions of its first tick) — why
LATER = EXPIRES + timedelta(days=2)
NEW_CERTIFICATE = [
    ("2028-04-10", [("calibration_expired", "resolved", EXPIRES, LATER)]),  # far ahead: resolved, nothing new
    (
        "2027-05-01",  # recalibrated, but the new date is within 30 days: a new warning episode
        [
            ("calibration_due", "opened", datetime(2027, 4, 1, 22, tzinfo=UTC), None),
            ("calibration_expired", "resolved", EXPIRES, LATER),
        ],
    ),
    (None, [("calibration_expired", "resolved", EXPIRES, LATER)]),  # no longer tracked
]


@pytest.mark.parametrize(("due", "expected"), NEW_CERTIFICATE)
def test_a_new_due_date_resolves_on_restart(due: str | None, expected: list[object]) -> None:
    """A restart with a later due date (or none) resolves the expired alert at the restart's now."""
    engine = engine_for(settings())
    engine.tick(EXPIRES + timedelta(days=1))
    restarted = _restarted(engine, settings(due))
    assert calibration(restarted.tick(LATER)) == expected


def test_a_new_due_date_resolves_the_warning() -> None:
    """A warning open when the certificate is renewed resolves at the restart."""
    engine = engine_for(settings())
    engine.tick(WARNS + timedelta(days=2))
    restarted = _restarted(engine, settings("2028-04-10"))
    now = WARNS + timedelta(days=3)
    assert calibration(restarted.tick(now)) == [("calibration_due", "resolved", WARNS, now)]


def test_warn_before_is_configurable() -> None:
    """rules.calibration_warn_before = 7d opens the warning a week ahead, at local midnight."""
    engine = engine_for(settings(calibration_warn_before="7d"))
    week = datetime(2027, 4, 3, 22, tzinfo=UTC)  # 2027-04-04 00:00 CEST
    assert calibration(engine.tick(week - MS)) == []
    assert calibration(engine.tick(week)) == [("calibration_due", "opened", week, None)]


def test_adopted_alerts_are_not_resolved_by_an_acknowledgement() -> None:
    """After a state reset, an adopted calibration alert stays open when acknowledged (its rule still holds)."""
    engine = engine_for(settings())
    engine.tick(EXPIRES + MS)
    (alert,) = [a for a in engine.open_alerts() if a.kind == "calibration_expired"]
    fresh = engine_for(settings())
    assert fresh.adopt([Alert.from_payload(alert.to_payload())]) == 1
    ordered = Acknowledgement(alert.id, "j.doe", "ordered a new probe")
    transition = fresh.acknowledge(ordered, EXPIRES + timedelta(hours=1))
    assert transition is not None and transition.change == "updated"
    assert calibration(fresh.tick(EXPIRES + timedelta(hours=2))) == []
