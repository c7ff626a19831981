"""Failures in a row lock a key (core/lockout.py): signing lockout and token throttling, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from coldchain.core.lockout import SIGNING_FAILURES, SIGNING_LOCK, FailureLimiter

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def signing() -> FailureLimiter:
    return FailureLimiter(SIGNING_FAILURES, SIGNING_LOCK)


def test_five_failures_in_a_row_lock_for_fifteen_minutes() -> None:
    """The 5th failure locks the key for 15 minutes; the 4th does not."""
    limiter = signing()
    for n in range(4):
        assert limiter.failed("j.doe", T0 + timedelta(seconds=n)) is None
    assert limiter.locked_until("j.doe", T0 + timedelta(seconds=4)) is None
    until = limiter.failed("j.doe", T0 + timedelta(seconds=4))
    assert until == T0 + timedelta(seconds=4) + timedelta(minutes=15)
    assert limiter.locked_until("j.doe", until - timedelta(milliseconds=1)) == until


def test_the_lock_expires_and_counting_starts_again() -> None:
    """At the lock's end the key is free with zero failures; five more lock it again."""
    limiter = signing()
    for _ in range(5):
        until = limiter.failed("j.doe", T0)
    assert until is not None
    assert limiter.locked_until("j.doe", until) is None
    assert limiter.failures("j.doe", until) == 0
    for n in range(4):
        assert limiter.failed("j.doe", until + timedelta(seconds=n)) is None
    assert limiter.failed("j.doe", until + timedelta(seconds=5)) is not None


def test_a_success_resets_the_count() -> None:
    """Four failures, a success, four failures: never locked (failures must be in a row)."""
    limiter = signing()
    for _ in range(4):
        limiter.failed("j.doe", T0)
    limiter.succeeded("j.doe")
    for _ in range(4):
        assert limiter.failed("j.doe", T0) is None
    assert limiter.locked_until("j.doe", T0) is None


def test_keys_are_independent() -> None:
    """One user's failures never lock another user."""
    limiter = signing()
    for _ in range(5):
        limiter.failed("mallory", T0)
    assert limiter.locked_until("mallory", T0) is not None
    assert limiter.locked_until("j.doe", T0) is None


def test_failures_while_locked_do_not_extend_the_lock() -> None:
    """Attempts during the lock are refused by the caller and do not push its end further."""
    limiter = signing()
    for _ in range(5):
        until = limiter.failed("j.doe", T0)
    assert limiter.failed("j.doe", T0 + timedelta(minutes=10)) is None
    assert limiter.locked_until("j.doe", T0 + timedelta(minutes=10)) == until


def test_old_failures_are_forgotten_with_forget_after() -> None:
    """With forget_after, a failure older than that no longer counts towards the lock."""
    limiter = FailureLimiter(3, timedelta(minutes=1), forget_after=timedelta(minutes=10))
    limiter.failed("10.0.0.9", T0)
    limiter.failed("10.0.0.9", T0 + timedelta(minutes=1))
    assert limiter.failures("10.0.0.9", T0 + timedelta(minutes=11)) == 0
    assert limiter.failed("10.0.0.9", T0 + timedelta(minutes=11)) is None


def test_the_number_of_keys_is_bounded_and_locked_keys_survive() -> None:
    """A flood of addresses cannot grow memory without bound, nor evict a lock."""
    limiter = FailureLimiter(2, timedelta(minutes=1), max_keys=10)
    limiter.failed("attacker", T0)
    limiter.failed("attacker", T0)
    for n in range(100):
        limiter.failed(f"10.0.0.{n}", T0 + timedelta(seconds=n))
    assert len(limiter) <= 10
    assert limiter.locked_until("attacker", T0 + timedelta(seconds=30)) is not None


@given(st.lists(st.booleans(), max_size=40))
def test_locked_exactly_when_limit_failures_in_a_row(outcomes: list[bool]) -> None:
    """For any sequence of failures (False) and successes (True) at one instant, the key is locked
    exactly when the sequence reached 5 failures in a row (no success can happen while locked)."""
    limiter = signing()
    run = 0
    locked = False
    for ok in outcomes:
        if locked:
            assert limiter.locked_until("u", T0) is not None
            continue
        if ok:
            limiter.succeeded("u")
            run = 0
        else:
            run += 1
            locked = limiter.failed("u", T0) is not None
            assert locked == (run == SIGNING_FAILURES)
