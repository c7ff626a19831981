"""Electronic signatures on alerts (21 CFR Part 11 §11.50) and the acknowledgement history; pure values.

A ``Signature`` is what a signed record holds: the signer's user name and printed full name, the
time, and the meaning (``disposition: quarantined``). Its ``id`` (``<alert id>-s<n>``) is how a later
signed change names the one it replaces (``supersedes``). Every acknowledgement of an alert, signed
or not, is an ``AckEntry`` in the alert's ``history``, oldest first; ``core/signoff.py`` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coldchain.core.times import format_time, parse_time

DISPOSITIONS = ("quarantined", "released", "discarded")


def meaning_of(disposition: str) -> str:
    """The meaning of the signature that sets ``disposition`` (``disposition: quarantined``)."""
    return f"disposition: {disposition}"


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signs: the user name and the printed name (§11.50(a)(1))."""

    name: str
    full_name: str


@dataclass(frozen=True, slots=True)
class Signature:
    """One electronic signature: signer, time, meaning, and the signature it replaces."""

    id: str
    name: str
    full_name: str
    at: datetime
    meaning: str
    supersedes: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "signed_by": self.name,
            "full_name": self.full_name,
            "signed_at": format_time(self.at),
            "meaning": self.meaning,
            "supersedes": self.supersedes,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Signature:
        return cls(
            id=data["id"],
            name=data["signed_by"],
            full_name=data["full_name"],
            at=parse_time(data["signed_at"]),
            meaning=data["meaning"],
            supersedes=data.get("supersedes"),
        )


@dataclass(frozen=True, slots=True)
class AckEntry:
    """One acknowledgement of an alert: who, when, the note, and the disposition with its signature."""

    by: str
    at: datetime
    note: str | None
    disposition: str | None
    signature: Signature | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "at": format_time(self.at),
            "note": self.note,
            "disposition": self.disposition,
            "signature": self.signature.to_payload() if self.signature is not None else None,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> AckEntry:
        signature = data.get("signature")
        return cls(
            by=data["by"],
            at=parse_time(data["at"]),
            note=data.get("note"),
            disposition=data.get("disposition"),
            signature=Signature.from_payload(signature) if signature else None,
        )
