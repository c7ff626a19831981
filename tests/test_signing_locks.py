"""The signing_locked alert (roles/signing_locks.py): opened at a lockout, resolved by the clock, routed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coldchain.config import NotifyConfig, OncallConfig
from coldchain.core.policy import Policy, plan
from coldchain.roles.signing_locks import SigningLocks

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
UNTIL = T0 + timedelta(minutes=15)


def test_a_lockout_opens_one_alert_that_resolves_when_the_lock_ends() -> None:
    """Open at the lockout (warning, subject the user), nothing due before the end, resolved at the end."""
    locks = SigningLocks()
    (opened,) = locks.lock("j.doe", UNTIL, T0)
    assert (opened.change, opened.alert.kind, opened.alert.subject, opened.alert.severity) == (
        "opened",
        "signing_locked",
        "j.doe",
        "warning",
    )
    assert locks.lock("j.doe", UNTIL + timedelta(minutes=1), T0 + timedelta(minutes=1)) == []  # one alert per lock
    assert locks.due(UNTIL) == []  # the lock was extended by a second lockout
    (resolved,) = locks.due(UNTIL + timedelta(minutes=1))
    assert resolved.alert.state == "resolved" and resolved.alert.resolved_at == UNTIL + timedelta(minutes=1)
    assert resolved.alert.id == opened.alert.id and locks.open_alerts() == []


def test_open_locks_survive_a_restart_through_the_snapshot() -> None:
    """The snapshot brings the open alert and its end back, so it still resolves after a restart."""
    locks = SigningLocks()
    locks.lock("j.doe", UNTIL, T0)
    restored = SigningLocks(locks.snapshot())
    assert restored.open_alerts() == locks.open_alerts()
    assert [t.alert.state for t in restored.due(UNTIL)] == ["resolved"]


def test_the_alert_goes_to_the_route_for_signing_locked() -> None:
    """A route on kind signing_locked sends the alert to the admins' target when it opens."""
    policy = Policy(
        NotifyConfig(
            targets=[{"name": n, "url": f"json://127.0.0.1/{n}"} for n in ("admins", "ward")],
            routes=[{"kind": ["signing_locked"], "targets": ["admins"]}],
            default_targets=["ward"],
        ),
        OncallConfig(),
    )
    (opened,) = SigningLocks().lock("j.doe", UNTIL, T0)
    assert [(n.target, n.purpose) for n in plan(opened.alert, [], T0, policy)] == [("admins", "opened")]
