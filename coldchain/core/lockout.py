"""Failures in a row lock a key for a while: signing lockout per user, token throttling per address; pure.

``FailureLimiter`` is a small state machine over a ``now`` the caller passes in (no clock read
here). Each key (a user name, a client address) counts its failures in a row; a success resets
the count; the ``limit``-th failure in a row locks the key until ``now + lock_for``, and while
locked every attempt is refused, right or wrong. When the lock has passed the key starts again
from zero. With ``forget_after`` a failure older than that no longer counts (a typo a week ago is
not part of an attack today). The number of keys is bounded: when full, keys with nothing to
remember are dropped first, then the oldest.

- signatures (§11.300(d)): 5 failed signatures in a row lock that user's signing for 15 minutes;
- bearer tokens: 10 failed token checks in a row from one client address refuse that address
  (429) for 1 minute; failures more than 10 minutes old are forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

SIGNING_FAILURES = 5
SIGNING_LOCK = timedelta(minutes=15)
TOKEN_FAILURES = 10
TOKEN_LOCK = timedelta(minutes=1)
TOKEN_FORGET = timedelta(minutes=10)


@dataclass(slots=True)
class _Count:
    failures: int
    last_failure: datetime
    locked_until: datetime | None = None


class FailureLimiter:
    """Failures in a row per key; ``limit`` of them lock the key for ``lock_for``."""

    def __init__(
        self, limit: int, lock_for: timedelta, forget_after: timedelta | None = None, max_keys: int = 10_000
    ) -> None:
        if limit < 1 or lock_for <= timedelta(0):
            raise ValueError("limit must be at least 1 and lock_for positive")
        self.limit = limit
        self.lock_for = lock_for
        self.forget_after = forget_after
        self.max_keys = max_keys
        self._counts: dict[str, _Count] = {}

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._counts)

    def locked_until(self, key: str, now: datetime) -> datetime | None:
        """When the key's lock ends, or None when it is not locked at ``now``."""
        count = self._current(key, now)
        return None if count is None else count.locked_until

    def failures(self, key: str, now: datetime) -> int:
        """Failures in a row that still count at ``now`` (0 after a success or an expired lock)."""
        count = self._current(key, now)
        return 0 if count is None else count.failures

    def failed(self, key: str, now: datetime) -> datetime | None:
        """Count a failure; the lock's end when this failure locks the key, else None."""
        count = self._current(key, now)
        if count is not None and count.locked_until is not None:
            return None  # already locked: the caller refused without checking
        if count is None:
            self._make_room()
            count = self._counts[key] = _Count(0, now)
        count.failures += 1
        count.last_failure = now
        if count.failures >= self.limit:
            count.locked_until = now + self.lock_for
            return count.locked_until
        return None

    def succeeded(self, key: str) -> None:
        """A success resets the key's count (callers never report success while it is locked)."""
        self._counts.pop(key, None)

    def _current(self, key: str, now: datetime) -> _Count | None:
        count = self._counts.get(key)
        if count is None:
            return None
        if count.locked_until is not None:
            if now < count.locked_until:
                return count
            del self._counts[key]  # the lock has passed: start from zero
            return None
        if self.forget_after is not None and now - count.last_failure >= self.forget_after:
            del self._counts[key]
            return None
        return count

    def _make_room(self) -> None:
        if len(self._counts) < self.max_keys:
            return
        unlocked = [key for key, count in self._counts.items() if count.locked_until is None]
        victims = unlocked or list(self._counts)
        oldest = min(victims, key=lambda key: self._counts[key].last_failure)
        del self._counts[oldest]
