"""Acknowledging an alert, with or without a signed disposition; pure (CONTRACT §5, 21 CFR Part 11).

``acknowledge`` returns the alert after one more acknowledgement; nothing recorded before is lost:

- the first acknowledgement's ``acknowledged_by``, ``acknowledged_at`` and ``note`` are never
  overwritten; every acknowledgement (the first too) is appended to ``history``;
- a disposition is always signed (``signer``); it becomes the alert's ``disposition`` and its
  ``signature``;
- once a disposition is signed, a new one must name that signature's id in ``supersedes``
  (``DispositionConflict`` otherwise), so nobody replaces a decision they have not seen;
- an acknowledgement without a disposition keeps the current disposition and signature.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from coldchain.core.alert import Alert
from coldchain.core.signature import DISPOSITIONS, AckEntry, Signature, Signer, meaning_of
from coldchain.core.times import format_time


class DispositionConflict(Exception):
    """A disposition change that does not name the signed disposition it replaces (HTTP 409)."""


class UnsignedDisposition(ValueError):
    """A disposition without a signer: the edges must verify a signature first."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """What someone asked of an alert: who, the note, and a disposition with its verified signer.

    The HTTP API, the acknowledge page and the rules worker pass this one value from the request to
    ``RulesEngine.acknowledge`` and ``acknowledge`` below.
    """

    alert_id: str
    by: str
    note: str | None = None
    disposition: str | None = None
    signer: Signer | None = None
    """Who signed the disposition (the edge verified the password); None for a plain acknowledgement."""
    supersedes: str | None = None
    """The id of the signed disposition this one replaces."""


def acknowledge(alert: Alert, ack: Acknowledgement, at: datetime) -> Alert:
    """The alert after ``ack`` at ``at`` (state ``acknowledged``; the caller keeps ``resolved``)."""
    by, note, disposition = ack.by, ack.note, ack.disposition
    signer, supersedes = ack.signer, ack.supersedes
    signature = None
    if disposition is None:
        if supersedes is not None:
            raise DispositionConflict("supersedes names a signed disposition to replace: send a disposition too")
    else:
        if disposition not in DISPOSITIONS:
            raise ValueError(f"unknown disposition {disposition!r}")
        if signer is None:
            raise UnsignedDisposition("a disposition must be signed")
        current = alert.signature
        if current is not None and supersedes != current.id:
            said = f"supersedes {supersedes!r} is not" if supersedes else "a change must name"
            raise DispositionConflict(
                f"{said} the signed disposition {alert.disposition!r} "
                f"({current.id}, signed by {current.full_name} at {format_time(current.at)}); "
                f'send "supersedes": "{current.id}" to replace it'
            )
        if current is None and supersedes is not None:
            raise DispositionConflict(f"supersedes {supersedes!r}: this alert has no signed disposition to replace")
        number = 1 + sum(1 for entry in alert.history if entry.signature is not None)
        signature = Signature(
            id=f"{alert.id}-s{number}",
            name=signer.name,
            full_name=signer.full_name,
            at=at,
            meaning=meaning_of(disposition),
            supersedes=supersedes,
        )
    entry = AckEntry(by, at, note, disposition, signature)
    first = alert.acknowledged_by is None
    return replace(
        alert,
        state="acknowledged",
        updated_at=max(at, alert.updated_at),
        acknowledged_by=by if first else alert.acknowledged_by,
        acknowledged_at=at if first else alert.acknowledged_at,
        note=note if first else alert.note,
        disposition=disposition if disposition is not None else alert.disposition,
        signature=signature if signature is not None else alert.signature,
        history=(*alert.history, entry),
    )
