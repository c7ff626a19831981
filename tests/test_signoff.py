"""Acknowledgements and signed dispositions on an alert (core/signoff.py): history kept, nothing overwritten."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from coldchain.core.alert import Alert
from coldchain.core.signature import Signer
from coldchain.core.signoff import Acknowledgement, DispositionConflict, UnsignedDisposition, acknowledge
from tests.samples import freezing_alert

T0 = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)
JANE = Signer("j.doe", "Jane Doe, PharmD")
ALEX = Signer("a.smith", "Alex Smith, RPh")


def open_alert() -> Alert:
    return freezing_alert("f" * 20, started_at=T0, updated_at=T0, value=-1.5, message="freezing", affected_bags=())


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ack(
    alert: Alert,
    by: str,
    when: datetime,
    note: str | None,
    disposition: str | None,
    *,
    signer: Signer | None = None,
    supersedes: str | None = None,
) -> Alert:
    return acknowledge(alert, Acknowledgement(alert.id, by, note, disposition, signer, supersedes), when)


def test_a_signed_disposition_records_signer_time_and_meaning() -> None:
    """The signature holds name, full name, time and 'disposition: quarantined'; payload carries signed_*."""
    alert = ack(open_alert(), "j.doe", at(1), "moved to fridge B", "quarantined", signer=JANE)
    assert alert.state == "acknowledged" and alert.disposition == "quarantined"
    assert alert.signature is not None
    assert (alert.signature.name, alert.signature.full_name, alert.signature.at) == ("j.doe", "Jane Doe, PharmD", at(1))
    payload = alert.to_payload()
    assert payload["signed_by"] == "j.doe" and payload["signed_by_full_name"] == "Jane Doe, PharmD"
    assert payload["signed_at"] == "2026-11-30T02:11:00Z"
    assert payload["signature_meaning"] == "disposition: quarantined"
    assert Alert.from_payload(payload) == alert  # the snapshot keeps it all


def test_the_first_note_is_never_overwritten_and_history_keeps_every_ack() -> None:
    """A second acknowledgement appends to history; acknowledged_by/at and note stay the first one's."""
    first = ack(open_alert(), "k.tech", at(1), "seen, checking", None)
    second = ack(first, "j.doe", at(5), "all vials moved", "quarantined", signer=JANE)
    assert (second.acknowledged_by, second.acknowledged_at, second.note) == ("k.tech", at(1), "seen, checking")
    assert [(e.by, e.note, e.disposition) for e in second.history] == [
        ("k.tech", "seen, checking", None),
        ("j.doe", "all vials moved", "quarantined"),
    ]
    assert [e["note"] for e in second.to_payload()["history"]] == ["seen, checking", "all vials moved"]


def test_a_changed_disposition_names_the_earlier_signature() -> None:
    """quarantined -> released needs supersedes = the quarantine's signature id; both stay in history."""
    quarantined = ack(open_alert(), "j.doe", at(1), "hold", "quarantined", signer=JANE)
    assert quarantined.signature is not None
    first_id = quarantined.signature.id
    released = ack(
        quarantined, "a.smith", at(60), "stability data ok", "released", signer=ALEX, supersedes=first_id
    )
    assert released.disposition == "released" and released.signature is not None
    assert released.signature.supersedes == first_id and released.signature.id != first_id
    assert released.note == "hold"
    signatures = [e.signature for e in released.history if e.signature is not None]
    assert [(s.name, s.meaning) for s in signatures] == [
        ("j.doe", "disposition: quarantined"),
        ("a.smith", "disposition: released"),
    ]


QUARANTINED = ack(open_alert(), "j.doe", at(1), "hold", "quarantined", signer=JANE)


@pytest.mark.parametrize(
    ("alert", "disposition", "supersedes", "says"),
    [
        (QUARANTINED, "released", None, "a change must name"),  # silently replacing a signed decision
        (QUARANTINED, "released", "f" * 20 + "-s9", "is not the signed"),  # naming some other signature
        (open_alert(), "released", "f" * 20 + "-s1", "no signed disposition"),  # nothing to supersede
        (QUARANTINED, None, "f" * 20 + "-s1", "send a disposition"),  # supersedes without a new decision
    ],
)
def test_conflicting_changes_are_refused(
    alert: Alert, disposition: str | None, supersedes: str | None, says: str
) -> None:
    """A disposition change that does not name the current signature is a DispositionConflict."""
    with pytest.raises(DispositionConflict, match=says):
        ack(alert, "a.smith", at(2), "x", disposition, signer=ALEX, supersedes=supersedes)


def test_an_unsigned_disposition_is_refused() -> None:
    """A disposition without a signer never reaches the record."""
    with pytest.raises(UnsignedDisposition):
        ack(open_alert(), "j.doe", at(1), "x", "discarded")


def test_an_ack_without_disposition_keeps_the_signed_one() -> None:
    """A later plain acknowledgement keeps the disposition and its signature."""
    later = ack(QUARANTINED, "k.tech", at(30), "still in fridge B", None)
    assert later.disposition == "quarantined" and later.signature == QUARANTINED.signature


def test_old_payloads_without_signatures_still_load() -> None:
    """An alert payload from before signatures (no history, no signature) restores with empty ones."""
    payload = replace(open_alert(), acknowledged_by="j.doe", disposition="released").to_payload()
    for key in ("signature", "history", "signed_by", "signed_at", "signature_meaning", "signed_by_full_name"):
        payload.pop(key)
    restored = Alert.from_payload(payload)
    assert restored.signature is None and restored.history == () and restored.disposition == "released"
