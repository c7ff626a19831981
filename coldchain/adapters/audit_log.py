"""The audit trail: every operator action as an append-only, hash-chained ``AuditEvent``.

Pure core (no I/O):

- ``chain_hash`` is SHA-256 (hex) over the canonical JSON of an event's fields and its
  predecessor's hash, so editing, removing or reordering any event breaks the chain from there on;
- ``next_event`` links a new event to the head (seq + 1, the head's hash, a time strictly after
  the head's, so no two events of one log share a point in the store);
- ``verify_chain`` walks events in seq order and names the first break.

``AuditLog`` is the rules worker's local append-only SQLite log (WAL, ``synchronous=FULL``). It owns
the chain head and de-duplication: a redelivered MQTT bag event or a replayed acknowledgement
carries the same ``dedupe_key`` and is never appended twice. Its events are copied to the store
(measurement ``audit``) through the durable writer; ``unstored``/``mark_stored`` track the copy,
so a crash between the two only delays it. ``coldchain audit verify`` reads the store's copy.

Text is normalised before hashing to what the store keeps: control characters in ``actor``,
``action`` and ``subject`` become visible escapes (``\\n``), lone surrogates become U+FFFD, and
``details`` is canonical JSON (sorted keys, no spaces, non-ASCII kept, control characters escaped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.sqlite_files import open_durable
from coldchain.core.records import AuditEvent
from coldchain.core.times import from_millis, to_millis

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event (seq 1)."""

AUDIT_MEASUREMENT = "audit"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


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


def next_event(
    head: AuditEvent | None, at: datetime, actor: str, action: str, subject: str, details: Mapping[str, Any]
) -> AuditEvent:
    """The event that follows ``head`` (None: the first, seq 1), at ``at`` or 1 ms after the head if not later."""
    millis = to_millis(at)
    if head is not None:
        millis = max(millis, to_millis(head.at) + 1)
    seq = 1 if head is None else head.seq + 1
    prev = GENESIS if head is None else head.hash
    when = from_millis(millis)
    actor, action, subject = clean_text(actor), clean_text(action), clean_text(subject)
    text = canonical_details(details)
    return AuditEvent(
        seq, when, actor, action, subject, text, prev, chain_hash(prev, seq, when, actor, action, subject, text)
    )


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
            where += f" ({self.event.action} by {self.event.actor} at {_iso(self.event.at)})"
        return f"{where}: {self.reason}"


def _iso(ts: datetime) -> str:
    from coldchain.core.times import format_time

    return format_time(ts)


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


def event_from_row(row: Mapping[str, Any]) -> AuditEvent:
    """An ``AuditEvent`` from a store row of measurement ``audit`` (``time``, tag ``action``, fields)."""
    return AuditEvent(
        seq=int(row["seq"]),
        at=row["time"],
        actor=str(row.get("actor", "")),
        action=str(row.get("action", "")),
        subject=str(row.get("subject", "")),
        details=str(row.get("details", "")),
        prev_hash=str(row.get("prev_hash", "")),
        hash=str(row.get("hash", "")),
    )


def read_chain(store: Any, until: datetime = _FAR_FUTURE) -> list[AuditEvent]:
    """Every audit event in ``store`` (a ``Store``) before ``until``, sorted by seq (then time)."""
    events = [event_from_row(row) for row in store.read_range(AUDIT_MEASUREMENT, _FAR_PAST, until)]
    events.sort(key=lambda e: (e.seq, e.at))
    return events


class AuditLog:
    """The local append-only log: chain head, de-duplication, and what still has to reach the store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,"
            " action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL,"
            " hash TEXT NOT NULL, dedupe_key TEXT UNIQUE, stored INTEGER NOT NULL DEFAULT 0)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS unstored ON events (seq) WHERE stored = 0")

    def append(
        self,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any],
        at: datetime,
        dedupe_key: str | None = None,
    ) -> AuditEvent | None:
        """Append the next event durably (one transaction); None if ``dedupe_key`` was appended before."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if (
                    dedupe_key is not None
                    and self._db.execute("SELECT 1 FROM events WHERE dedupe_key = ?", (dedupe_key,)).fetchone()
                ):
                    self._db.execute("ROLLBACK")
                    return None
                event = next_event(self._head(), at, actor, action, subject, details)
                self._db.execute(
                    "INSERT INTO events (seq, at_ms, actor, action, subject, details, prev_hash, hash, dedupe_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.seq,
                        to_millis(event.at),
                        event.actor,
                        event.action,
                        event.subject,
                        event.details,
                        event.prev_hash,
                        event.hash,
                        dedupe_key,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return event

    def _head(self) -> AuditEvent | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else _event(row)

    def head(self) -> AuditEvent | None:
        """The newest event, or None while the log is empty."""
        with self._lock:
            return self._head()

    def unstored(self) -> list[AuditEvent]:
        """Events not yet confirmed in the store, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM events WHERE stored = 0 ORDER BY seq").fetchall()
        return [_event(row) for row in rows]

    def mark_stored(self, seqs: Iterable[int]) -> None:
        """Record that these events are in the store."""
        with self._lock:
            self._db.executemany("UPDATE events SET stored = 1 WHERE seq = ?", [(seq,) for seq in seqs])

    def events(self) -> Iterator[AuditEvent]:
        """Every event, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq").fetchall()
        return (_event(row) for row in rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = "seq, at_ms, actor, action, subject, details, prev_hash, hash"


def _event(row: tuple[Any, ...]) -> AuditEvent:
    seq, at_ms, actor, action, subject, details, prev_hash, hash_ = row
    return AuditEvent(int(seq), from_millis(int(at_ms)), actor, action, subject, details, prev_hash, hash_)


def settings_digest(settings: Any) -> str:
    """SHA-256 of the effective settings as canonical JSON; secrets are masked, so they never count."""
    data = settings.model_dump(mode="json")  # SecretStr values dump as "**********"
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- command line -----------------------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the store's chain: exit 0 with the count and head hash, 1 naming the first break."""
    from coldchain.adapters.store.factory import open_store
    from coldchain.adapters.store.port import StoreError
    from coldchain.cli.main import _load

    settings = _load(args.config)
    store = open_store(settings)
    try:
        events = read_chain(store)
    except StoreError as exc:
        print(f"audit verify: cannot read the audit trail: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    problem = verify_chain(events)
    if problem is not None:
        print(f"audit chain BROKEN at {problem}", file=sys.stderr)
        print(f"({len(events)} events read; every event from seq {problem.seq} on is unproven)", file=sys.stderr)
        return 1
    if not events:
        print("audit chain OK: no events recorded yet")
        return 0
    head = events[-1]
    print(f"audit chain OK: {len(events)} events, seq 1..{head.seq}, last at {_iso(head.at)}")
    print(f"head hash {head.hash}")
    return 0


def add_audit_command(subparsers: Any) -> None:
    """``coldchain audit verify --config F``."""
    audit = subparsers.add_parser("audit", help="The audit trail: verify its hash chain.", description=__doc__)
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify",
        help="Walk the hash chain in the store and report the first break.",
        description="Read every audit event from the store, sort by seq and check each link.",
    )
    verify.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    verify.set_defaults(func=cmd_audit_verify)
