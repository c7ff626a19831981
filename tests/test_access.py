"""Roles and what each may do (CONTRACT §5): the pure table of core/access.py."""

from __future__ import annotations

import pytest

from coldchain.core.access import ALLOWED, ROLES, Action, Role, allowed

# role, action, allowed -- one line per cell of the table
TABLE: list[tuple[Role, Action, bool]] = [
    ("viewer", "read", True),  # everyone may look
    ("staff", "read", True),
    ("pharmacist", "read", True),
    ("auditor", "read", True),
    ("admin", "read", True),
    ("viewer", "bag_event", False),  # a viewer changes nothing
    ("staff", "bag_event", True),  # technicians dilute and hang bags
    ("pharmacist", "bag_event", True),
    ("auditor", "bag_event", False),  # auditors read, never act
    ("admin", "bag_event", True),
    ("viewer", "acknowledge", False),
    ("staff", "acknowledge", True),  # staff may say "seen, on it"
    ("pharmacist", "acknowledge", True),
    ("auditor", "acknowledge", False),
    ("admin", "acknowledge", True),
    ("viewer", "sign_disposition", False),
    ("staff", "sign_disposition", False),  # a quality decision about stock is a pharmacist's
    ("pharmacist", "sign_disposition", True),
    ("auditor", "sign_disposition", False),
    ("admin", "sign_disposition", True),
    ("viewer", "read_review", False),  # the review's figures are for the people who sign or inspect them
    ("staff", "read_review", True),
    ("pharmacist", "read_review", True),
    ("auditor", "read_review", True),  # read-only
    ("admin", "read_review", True),
    ("viewer", "sign_review", False),
    ("staff", "sign_review", True),  # the CDC's daily min/max check is a technician's task
    ("pharmacist", "sign_review", True),
    ("auditor", "sign_review", False),  # auditors read, never act
    ("admin", "sign_review", True),
    ("viewer", "export", False),
    ("staff", "export", False),
    ("pharmacist", "export", False),  # exports are for inspections
    ("auditor", "export", True),
    ("admin", "export", True),
    ("viewer", "verify_audit", False),
    ("staff", "verify_audit", False),
    ("pharmacist", "verify_audit", True),
    ("auditor", "verify_audit", True),
    ("admin", "verify_audit", True),
]


@pytest.mark.parametrize(("role", "action", "expected"), TABLE)
def test_role_table(role: Role, action: Action, expected: bool) -> None:
    """Each role may do exactly what the contract's table allows."""
    assert allowed(role, action) is expected


def test_the_table_covers_every_role_and_action() -> None:
    """Every (role, action) pair has a line above: no cell of the policy is left untested."""
    assert {(role, action) for role, action, _ in TABLE} == {(r, a) for r in ROLES for a in ALLOWED}
