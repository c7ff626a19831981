"""The audit trail's hash chain: every operator action as an append-only, hash-chained ``AuditEvent``; pure.

- ``chain_hash`` is SHA-256 (hex) over the canonical JSON of an event's fields and its
  predecessor's hash, so editing, removing or reordering any event breaks the chain from there on;
- ``next_event`` links a new event to the head (seq + 1, the head's hash, a time strictly after
  the head's, so no two events of one log share a point in the store);
- ``verify_chain`` walks events in seq order and names the first break;
- ``event_mac`` keys an event's hash with the audit key (HMAC-SHA256, ``<key id>:<hex>``) and
  ``verify_macs`` checks them: whoever can rewrite the store can recompute every hash, but not a MAC.
  Because each hash covers every event before it, one valid MAC proves the chain up to it; so the
  newest event must carry a MAC under a known key, and every MAC under a known key must hold.

Text is normalised before hashing to what the store keeps: control characters in ``actor``,
``action`` and ``subject`` become visible escapes (``\\n``), lone surrogates become U+FFFD, and
``details`` is canonical JSON (sorted keys, no spaces, non-ASCII kept, control characters escaped).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coldchain.core.records import AuditEvent
from coldchain.core.times import format_time, from_millis, parse_time, to_millis

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event (seq 1)."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` as the store keeps it: control characters escaped (``\\n``, ``\\x00``), surrogates as U+FFFD."""
    text = _SURROGATE.sub("\ufffd", text)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: json.dumps(m.group())[1:-1], text)
    return text


def canonical_details(details: Mapping[str, Any]) -> str:
    """The canonical JSON of ``details``: sorted keys, no spaces, non-ASCII kept, control characters escaped."""
    text = json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return clean_text(text)


def chain_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, details: str) -> str:
    """SHA-256 hex over the canonical JSON of the event's fields (``at`` in epoch ms) and ``prev_hash``."""
    body = {
        "action": action,
        "actor": actor,
        "at": to_millis(at),
        "details": details,
        "prev_hash": prev_hash,
        "seq": seq,
        "subject": subject,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_id(key: bytes) -> str:
    """The public name of an audit key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(b"coldchain-audit-key\x00" + key).hexdigest()[:16]


def event_mac(key: bytes, event_hash: str) -> str:
    """``<key id>:<HMAC-SHA256 hex>`` of an event's hash under ``key``."""
    mac = hmac.new(key, b"coldchain-audit\x00" + event_hash.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{key_id(key)}:{mac}"


def next_event(
    head: AuditEvent | None,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    key: bytes | None = None,
) -> AuditEvent:
    """The event that follows ``head`` (None: the first, seq 1), at ``at`` or 1 ms after the head if not later;
    MAC'd under ``key`` when given."""
    millis = to_millis(at)
    if head is not None:
        millis = max(millis, to_millis(head.at) + 1)
    seq = 1 if head is None else head.seq + 1
    prev = GENESIS if head is None else head.hash
    when = from_millis(millis)
    actor, action, subject = clean_text(actor), clean_text(action), clean_text(subject)
    text = canonical_details(details)
    digest = chain_hash(prev, seq, when, actor, action, subject, text)
    mac = event_mac(key, digest) if key is not None else ""
    return AuditEvent(seq, when, actor, action, subject, text, prev, digest, mac)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place the chain does not hold: the seq expected there and why."""

    seq: int
    reason: str
    event: AuditEvent | None = None
    """The event found at the break (None when it is missing at the end)."""

    def __str__(self) -> str:
        where = f"seq {self.seq}"
        if self.event is not None:
            where += f" ({self.event.action} by {self.event.actor} at {format_time(self.event.at)})"
        return f"{where}: {self.reason}"


def verify_chain(events: Iterable[AuditEvent], from_genesis: bool = True) -> ChainBreak | None:
    """The first break of ``events`` (in the order given, which should be seq order), or None.

    A break is a seq that is not the predecessor's + 1 (missing, duplicated or out of order), a
    ``prev_hash`` that is not the predecessor's ``hash`` (an event before it was edited or removed),
    or a ``hash`` that does not match the event's own content (the event was edited). With
    ``from_genesis`` the chain must start at seq 1 with the genesis hash; without, the first event's
    ``prev_hash`` is taken on trust (a slice of a longer chain).
    """
    previous: AuditEvent | None = None
    for event in events:
        if previous is None:
            if from_genesis and event.seq != 1:
                return ChainBreak(1, f"the chain does not start at seq 1 (first event is seq {event.seq})", event)
            if from_genesis and event.prev_hash != GENESIS:
                return ChainBreak(event.seq, "prev_hash of the first event is not the genesis hash", event)
        else:
            expected = previous.seq + 1
            if event.seq == previous.seq:
                return ChainBreak(event.seq, f"seq {event.seq} appears twice", event)
            if event.seq > expected:
                missing = f"seq {expected}" if event.seq == expected + 1 else f"seqs {expected}..{event.seq - 1}"
                return ChainBreak(
                    expected, f"{missing} missing or out of order (seq {event.seq} follows seq {previous.seq})", event
                )
            if event.seq < expected:
                return ChainBreak(event.seq, f"out of order: seq {event.seq} follows seq {previous.seq}", event)
            if event.prev_hash != previous.hash:
                return ChainBreak(
                    event.seq,
                    f"prev_hash does not match the hash of seq {previous.seq} (seq {previous.seq} was edited, "
                    "or an event between them removed)",
                    event,
                )
        recomputed = chain_hash(
            event.prev_hash, event.seq, event.at, event.actor, event.action, event.subject, event.details
        )
        if recomputed != event.hash:
            return ChainBreak(event.seq, "hash does not match the event's content (the event was edited)", event)
        previous = event
    return None


def verify_macs(events: Sequence[AuditEvent], keys: Iterable[bytes]) -> ChainBreak | None:
    """The first event whose MAC does not hold (``events`` in seq order, their hash chain already verified).

    A MAC under one of ``keys`` must match; an empty MAC is accepted only before the first MAC'd event
    (recorded before audit MACs); a MAC under another key is accepted when a later event's MAC holds
    (it proves everything before it), so the newest event must carry a MAC under one of ``keys``."""
    known = {key_id(key): key for key in keys}
    seen_mac = False
    for event in events:
        if not event.mac:
            if seen_mac:
                return ChainBreak(event.seq, "the event carries no MAC (it was written without the audit key)", event)
            continue
        seen_mac = True
        ident, _, _ = event.mac.partition(":")
        key = known.get(ident)
        if key is not None and not hmac.compare_digest(event.mac, event_mac(key, event.hash)):
            return ChainBreak(
                event.seq, "MAC does not match (the event was rewritten by someone without the audit key)", event
            )
    if events:
        head = events[-1]
        ident = head.mac.partition(":")[0]
        if ident not in known:
            why = "carries no MAC" if not head.mac else f"is MAC'd under key {ident}, which is not available"
            return ChainBreak(head.seq, f"the newest event {why}: nothing proves the chain", head)
    return None


@dataclass(frozen=True, slots=True)
class Anchor:
    """A head of the chain recorded elsewhere (the local log, the retained MQTT head, an export's manifest)."""

    source: str
    seq: int
    hash: str


def check_anchor(events: Sequence[AuditEvent], anchor: Anchor) -> str | None:
    """Why ``events`` (in seq order) do not hold ``anchor``'s head unchanged, naming the first missing or
    altered event; None when they do."""
    if anchor.seq <= 0:
        return None
    by_seq = {event.seq: event for event in events}
    found = by_seq.get(anchor.seq)
    if found is None:
        newest = events[-1].seq if events else 0
        if newest < anchor.seq:
            return (
                f"{anchor.source} anchors seq {anchor.seq}, but the chain ends at seq {newest}: seq {newest + 1}"
                f"{'..' + str(anchor.seq) if anchor.seq > newest + 1 else ''} missing (the trail was truncated)"
            )
        return f"{anchor.source} anchors seq {anchor.seq}, which is missing from the chain"
    if found.hash != anchor.hash:
        return (
            f"{anchor.source} anchors seq {anchor.seq} with hash {anchor.hash[:16]}…, but the chain's seq"
            f" {anchor.seq} has {found.hash[:16]}… (the trail was rewritten at or before seq {anchor.seq})"
        )
    return None


def event_from_row(row: Mapping[str, Any]) -> AuditEvent:
    """An ``AuditEvent`` from any row that carries its fields: a store row of measurement ``audit``
    (``time`` a datetime), a row of an export's ``audit.csv`` (``time`` RFC 3339 text) or of the local log."""
    at = row["time"]
    return AuditEvent(
        seq=int(row["seq"]),
        at=at if isinstance(at, datetime) else parse_time(str(at)),
        actor=str(row.get("actor", "")),
        action=str(row.get("action", "")),
        subject=str(row.get("subject", "")),
        details=str(row.get("details", "")),
        prev_hash=str(row.get("prev_hash", "")),
        hash=str(row.get("hash", "")),
        mac=str(row.get("mac") or ""),
        chain=str(row.get("chain") or ""),
    )
