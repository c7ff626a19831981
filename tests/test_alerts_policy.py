"""Who hears about an alert and when (alerts.plan): routes, tiers, shifts, escalation, repeats."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from coldchain.config import NotifyConfig, OncallConfig, Shift
from coldchain.core.alert import Alert
from coldchain.core.policy import Notice, Policy, Sent, plan, route_targets, shift_covers

# Monday 30 Nov 2026, 02:10 UTC = 03:10 in Berlin: night
NIGHT = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)
DAY = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # 11:00 Berlin, Monday

FREEZING = Alert(
    "a1", "freezing", "t-001", "open", "critical", "main", "fridge-a", "t-001", None, NIGHT, NIGHT, None, -1.0, "m"
)
OFFLINE = replace(FREEZING, id="a2", kind="sensor_offline", severity="warning")

POLICY = Policy(
    NotifyConfig(
        targets=[
            {"name": n, "url": f"json://127.0.0.1/{n}"} for n in ("mail", "slack", "ward", "day1", "night1", "boss")
        ],
        routes=[
            {"severity": ["critical"], "targets": ["slack"]},
            {"kind": ["sensor_offline"], "unit": ["fridge-a"], "targets": ["ward"]},
        ],
        default_targets=["mail"],
    ),
    OncallConfig(
        tiers=[
            {
                "name": "pharmacist on duty",
                "targets": ["day1"],
                "timezone": "Europe/Berlin",
                "shifts": [{"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00", "end": "18:00"}],
            },
            {
                "name": "night pharmacist",
                "targets": ["night1"],
                "timezone": "Europe/Berlin",
                "shifts": [{"start": "18:00", "end": "08:00"}],
            },
            {"name": "head of pharmacy", "targets": ["boss"]},  # always on call
        ],
        escalate_after="15m",
        repeat_interval="30m",
    ),
)


def sent(notices: list[Notice], at: datetime) -> list[Sent]:
    return [Sent(n.target, n.purpose, n.tier, at) for n in notices]


def names(notices: list[Notice]) -> list[tuple[str, str]]:
    return [(n.target, n.purpose) for n in notices]


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        (FREEZING, ["slack"]),  # critical: first route
        (OFFLINE, ["ward"]),  # warning offline in fridge-a: second route
        (replace(OFFLINE, unit="fridge-b"), ["mail"]),  # nothing matches: the default route
    ],
)
def test_routes(alert: Alert, expected: list[str]) -> None:
    """The first matching route wins; nothing matching falls to the default route."""
    assert route_targets(alert, POLICY.notify.routes, POLICY.notify.default_targets) == expected


@pytest.mark.parametrize(
    ("shift", "moment", "covers"),
    [
        (Shift(days=["Mon"], start="08:00", end="18:00"), DAY, True),  # 11:00 Monday Berlin
        (Shift(days=["Mon"], start="08:00", end="18:00"), NIGHT, False),  # 03:10 Monday Berlin
        (Shift(days=["Sun"], start="18:00", end="08:00"), NIGHT, True),  # overnight from Sunday
        (Shift(days=["Mon"], start="18:00", end="08:00"), NIGHT, False),  # Monday's night starts that evening
        (
            Shift(days=["Mon"], start="08:00", end="18:00"),
            datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
            True,
        ),  # 08:00 sharp
        (
            Shift(days=["Mon"], start="08:00", end="18:00"),
            datetime(2026, 11, 30, 17, 0, tzinfo=UTC),
            False,
        ),  # 18:00 ends
    ],
)
def test_shifts_in_their_time_zone(shift: Shift, moment: datetime, covers: bool) -> None:
    """Shifts are weekly, in the tier's time zone, start inclusive, end exclusive, overnight allowed."""
    assert shift_covers(shift, ZoneInfo("Europe/Berlin"), moment) is covers


def test_critical_at_night_pages_the_on_shift_tier_and_escalates() -> None:
    """At night tier 1 is off shift: the page falls back to the default route at once, tier 2 follows."""
    first = plan(FREEZING, [], NIGHT, POLICY)
    assert names(first) == [("slack", "opened"), ("mail", "page-fallback")]
    assert "no shift" in first[1].reason
    history = sent(first, NIGHT)
    assert plan(FREEZING, history, NIGHT + timedelta(minutes=14), POLICY) == []
    second = plan(FREEZING, history, NIGHT + timedelta(minutes=15), POLICY)
    assert names(second) == [("night1", "page-tier-2")]
    assert "escalated to tier 2" in second[0].reason


def test_daytime_escalation_and_repeats() -> None:
    """Tier 1 at once; tier 2 after 15 min (off shift by day: skipped), tier 3 after 30; repeats every 30."""
    history: list[Sent] = []
    timeline = []
    for minute in (0, 15, 30, 31, 60):
        now = DAY + timedelta(minutes=minute)
        notices = plan(FREEZING, history, now, POLICY)
        history += sent(notices, now)
        timeline.append((minute, names(notices)))
    assert timeline == [
        (0, [("slack", "opened"), ("day1", "page-tier-1")]),
        (15, []),  # tier 2 is the night pharmacist: not on shift at 11:15
        (30, [("boss", "page-tier-3"), ("day1", "repeat-1")]),
        (31, []),
        (60, [("day1", "repeat-2"), ("boss", "repeat-1")]),  # repeats count from each target's first page
    ]


def test_nothing_is_planned_twice() -> None:
    """Planning again with the same history (a restart, a redelivered transition) sends nothing new."""
    first = plan(FREEZING, [], DAY, POLICY)
    history = sent(first, DAY)
    assert plan(FREEZING, history, DAY, POLICY) == []
    assert plan(FREEZING, history, DAY + timedelta(minutes=5), POLICY) == []


def test_ack_and_resolve_reach_everyone_notified_and_stop_paging() -> None:
    """Acknowledged: everyone notified hears it and no page follows; resolved: everyone hears it."""
    history = sent(plan(FREEZING, [], DAY, POLICY), DAY)
    acked = replace(FREEZING, state="acknowledged", acknowledged_by="j.doe")
    later = DAY + timedelta(hours=2)
    ack_notices = plan(acked, history, later, POLICY)
    assert names(ack_notices) == [("slack", "acknowledged"), ("day1", "acknowledged")]
    assert "by j.doe" in ack_notices[0].reason
    history += sent(ack_notices, later)
    assert plan(acked, history, later + timedelta(hours=1), POLICY) == []
    resolved = replace(acked, state="resolved", resolved_at=later)
    assert names(plan(resolved, history, later, POLICY)) == [("slack", "resolved"), ("day1", "resolved")]


def test_warning_is_never_paged() -> None:
    """A warning goes to its route only, however long it stays open."""
    history = sent(plan(OFFLINE, [], DAY, POLICY), DAY)
    assert [s.target for s in history] == ["ward"]
    assert plan(OFFLINE, history, DAY + timedelta(hours=5), POLICY) == []


def test_alert_first_seen_resolved_is_still_sent() -> None:
    """A buffered upload revealing a finished excursion still reaches its route and tier 1."""
    resolved = replace(FREEZING, state="resolved", resolved_at=DAY)
    assert names(plan(resolved, [], DAY, POLICY)) == [("slack", "resolved"), ("day1", "resolved")]


def test_without_tiers_critical_goes_to_its_route() -> None:
    """No on-call tiers configured: critical alerts still reach their route, without paging."""
    policy = Policy(POLICY.notify, OncallConfig())
    assert names(plan(FREEZING, [], NIGHT, policy)) == [("slack", "opened")]
