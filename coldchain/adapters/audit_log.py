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

import hashlib
import json
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.key_files import load_or_create, read_key
from coldchain.adapters.sqlite_files import open_durable, writing
from coldchain.config.rules import RulesConfig
from coldchain.core.audit_chain import event_from_row, next_event
from coldchain.core.records import AuditEvent
from coldchain.core.times import from_millis, to_millis


class AuditLog:
    """The local append-only log: chain head, de-duplication, and what still has to reach the store."""

    def __init__(self, path: Path, key: bytes | None = None) -> None:
        self.path = path
        self.key = key
        """The audit key every new event is MAC'd with (None: unkeyed, for tests of the chain alone)."""
        self._lock = threading.Lock()
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, actor TEXT NOT NULL,"
            " action TEXT NOT NULL, subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL,"
            " hash TEXT NOT NULL, dedupe_key TEXT UNIQUE, stored INTEGER NOT NULL DEFAULT 0,"
            " mac TEXT NOT NULL DEFAULT '')"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        if "mac" not in columns:  # a log from before audit MACs
            self._db.execute("ALTER TABLE events ADD COLUMN mac TEXT NOT NULL DEFAULT ''")
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
        with self._lock, writing(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if (
                    dedupe_key is not None
                    and self._db.execute("SELECT 1 FROM events WHERE dedupe_key = ?", (dedupe_key,)).fetchone()
                ):
                    self._db.execute("ROLLBACK")
                    return None
                event = next_event(self._head(), at, actor, action, subject, details, self.key)
                self._insert(event, dedupe_key, stored=False)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return event

    def _insert(self, event: AuditEvent, dedupe_key: str | None, stored: bool) -> None:
        self._db.execute(
            "INSERT INTO events (seq, at_ms, actor, action, subject, details, prev_hash, hash, dedupe_key, stored, mac)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                1 if stored else 0,
                event.mac,
            ),
        )

    def adopt(self, head: AuditEvent) -> None:
        """Continue the chain from ``head`` (the store's newest event) in an empty log: it is kept as stored,
        so the next event is ``head.seq + 1``. ValueError when the log is not empty."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._head() is not None:
                    raise ValueError("the audit log is not empty")
                self._insert(head, None, stored=True)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
        with self._lock, writing(self.path):
            self._db.executemany("UPDATE events SET stored = 1 WHERE seq = ?", [(seq,) for seq in seqs])

    def events(self) -> Iterator[AuditEvent]:
        """Every event, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq").fetchall()
        return (_event(row) for row in rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = "seq, at_ms, actor, action, subject, details, prev_hash, hash, mac"


def _event(row: tuple[Any, ...]) -> AuditEvent:
    names = ("seq", "at_ms", "actor", "action", "subject", "details", "prev_hash", "hash", "mac")
    fields = dict(zip(names, row, strict=True))
    return event_from_row({**fields, "time": from_millis(int(row[1]))})


AUDIT_KEY_FILE = "coldchain-audit.key"
MIN_AUDIT_KEY_BYTES = 16


def audit_key_path(rules: RulesConfig) -> Path:
    """``rules.audit_key_file``, or ``coldchain-audit.key`` in the state directory."""
    return rules.audit_key_file if rules.audit_key_file is not None else rules.state_dir / AUDIT_KEY_FILE


def load_audit_key(rules: RulesConfig, create: bool = True) -> bytes | None:
    """The key that MACs audit events: the configured file, or one created once in the state directory
    (``create``; else None when there is none). ValueError when it is unreadable or too short."""
    path = audit_key_path(rules)
    what = "audit MAC key"
    try:
        if rules.audit_key_file is not None or not create:
            key = read_key(path, what)
        else:
            key = load_or_create(path, lambda: secrets.token_hex(32).encode() + b"\n", what)
    except FileNotFoundError:
        if rules.audit_key_file is not None:
            raise ValueError(f"rules.audit_key_file {path} does not exist") from None
        return None
    except OSError as exc:
        raise ValueError(f"cannot read the audit key {path}: {exc.strerror}") from exc
    key = key.rstrip(b"\r\n")
    if len(key) < MIN_AUDIT_KEY_BYTES:
        raise ValueError(f"the audit key {path} has {len(key)} bytes; it needs at least {MIN_AUDIT_KEY_BYTES}")
    return key


def settings_digest(settings: Any) -> str:
    """SHA-256 of the effective settings as canonical JSON; secrets are masked, so they never count."""
    data = settings.model_dump(mode="json")  # SecretStr values dump as "**********"
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
