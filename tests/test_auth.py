"""The API's door (adapters/http/auth.py) with an injected clock: token throttling per address and its expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest

from coldchain.adapters.http.auth import Gatekeeper, Refusal
from coldchain.adapters.metrics import Metrics
from coldchain.config.api import ApiUser
from coldchain.core.access import Caller

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


USERS = [
    ApiUser(name="j.doe", full_name="Jane Doe, PharmD", token="token-of-j-doe"),
    ApiUser(name="k.tech", role="staff", token_sha256=hashlib.sha256(b"token-of-k-tech").hexdigest()),
]


@pytest.fixture
def gate() -> tuple[Gatekeeper, Clock]:
    clock = Clock()
    return Gatekeeper(USERS, Metrics(), clock), clock


def test_tokens_name_their_user_and_role_also_by_hash(gate: tuple[Gatekeeper, Clock]) -> None:
    """A token or a token_sha256 user is found with its role; a user without role is a pharmacist."""
    door, _ = gate
    assert door.caller("Bearer token-of-j-doe", "10.0.0.1") == Caller("j.doe", "Jane Doe, PharmD", "pharmacist", False)
    assert door.caller("Bearer token-of-k-tech", "10.0.0.1") == Caller("k.tech", "", "staff", False)
    assert door.caller("Bearer token-of-k-tec", "10.0.0.1") is None  # a prefix is not the token
    assert door.caller("Basic token-of-j-doe", "10.0.0.1") is None  # the right secret, the wrong scheme


def test_ten_failures_throttle_the_address_for_a_minute(gate: tuple[Gatekeeper, Clock]) -> None:
    """The 11th check from an address is 429 (even with a right token) until a minute has passed; others are not."""
    door, clock = gate
    for n in range(10):
        assert door.caller(f"Bearer wrong-{n}", "10.0.0.9") is None
    with pytest.raises(Refusal) as refused:
        door.caller("Bearer token-of-j-doe", "10.0.0.9")
    assert refused.value.status == HTTPStatus.TOO_MANY_REQUESTS
    assert dict(refused.value.headers)["Retry-After"] == "60"
    assert door.caller("Bearer token-of-j-doe", "10.0.0.8") is not None  # another address
    clock.now += timedelta(seconds=59)
    with pytest.raises(Refusal):
        door.caller("Bearer token-of-j-doe", "10.0.0.9")
    clock.now += timedelta(seconds=1)
    assert door.caller("Bearer token-of-j-doe", "10.0.0.9") is not None


def test_a_right_token_resets_the_count(gate: tuple[Gatekeeper, Clock]) -> None:
    """Nine failures, a success, nine failures: never throttled (typos are not an attack)."""
    door, _ = gate
    for _ in range(2):
        for n in range(9):
            door.caller(f"Bearer wrong-{n}", "10.0.0.7")
        assert door.caller("Bearer token-of-j-doe", "10.0.0.7") is not None


def test_a_role_outside_the_table_is_refused_with_the_reason(gate: tuple[Gatekeeper, Clock]) -> None:
    """authorize raises 403 naming the user, the role and what it may not do."""
    door, _ = gate
    staff = door.caller("Bearer token-of-k-tech", "10.0.0.1")
    assert staff is not None
    door.authorize(staff, "acknowledge", "acknowledge alerts")
    with pytest.raises(Refusal) as refused:
        door.authorize(staff, "export", "download audit exports")
    assert refused.value.status == HTTPStatus.FORBIDDEN
    assert refused.value.message == "k.tech is staff: a staff may not download audit exports"
