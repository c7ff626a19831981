"""Who may do what (CONTRACT §5, 21 CFR Part 11 §11.10(d), (g)): roles, actions and the table between them; pure.

Each ``[[api.users]]`` entry has one role. ``allowed(role, action)`` is the whole authorization
policy; the HTTP edge names the action of each call and answers 403 when the caller's role is not
in its row. A user without a role is a pharmacist (what every user could do before roles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["viewer", "staff", "pharmacist", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "staff", "pharmacist", "auditor", "admin")
DEFAULT_ROLE: Role = "pharmacist"

Action = Literal[
    "read", "bag_event", "acknowledge", "sign_disposition", "read_review", "sign_review", "export", "verify_audit"
]

ALLOWED: dict[Action, frozenset[Role]] = {
    # GET /api/units, GET /api/alerts
    "read": frozenset(ROLES),
    # POST /api/bags/<id>/events
    "bag_event": frozenset({"staff", "pharmacist", "admin"}),
    # POST /api/alerts/<id>/ack without a disposition
    "acknowledge": frozenset({"staff", "pharmacist", "admin"}),
    # the same with a disposition: an electronic signature
    "sign_disposition": frozenset({"pharmacist", "admin"}),
    # GET /api/units/<unit>/review, GET /review: what the daily review covers
    "read_review": frozenset({"staff", "pharmacist", "auditor", "admin"}),
    # POST /api/units/<unit>/reviews: signing the daily review, an electronic signature
    "sign_review": frozenset({"staff", "pharmacist", "admin"}),
    # GET /api/exports
    "export": frozenset({"auditor", "admin"}),
    # GET /api/audit/verify
    "verify_audit": frozenset({"pharmacist", "auditor", "admin"}),
}

SIGNING_ROLES: frozenset[Role] = ALLOWED["sign_disposition"]
"""Roles whose users need a signing password (``check-config`` warns about those without one)."""

REVIEW_SIGNERS: frozenset[Role] = ALLOWED["sign_review"]
"""Roles that sign the daily review (``check-config`` warns about those without a signing password where a site
expects reviews)."""


def with_article(role: Role) -> str:
    """``a pharmacist``, ``an admin``: a role in a sentence."""
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}"


def allowed(role: Role, action: Action) -> bool:
    """Whether a user with ``role`` may do ``action``."""
    return role in ALLOWED[action]


@dataclass(frozen=True, slots=True)
class Caller:
    """The person behind a request: the token's user, never a name sent in a body."""

    name: str
    full_name: str
    role: Role
    can_sign: bool
    """The user has a signing password configured."""

    @property
    def printed_name(self) -> str:
        """The name printed on what this user signs (the user name when no full name is configured)."""
        return self.full_name or self.name
