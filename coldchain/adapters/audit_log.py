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
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.sqlite_files import open_durable, writing
from coldchain.core.audit_chain import event_from_row, next_event
from coldchain.core.records import AuditEvent
from coldchain.core.times import from_millis, to_millis


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
        with self._lock, writing(self.path):
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
                if self._db.in_transaction:
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


_COLUMNS = "seq, at_ms, actor, action, subject, details, prev_hash, hash"


def _event(row: tuple[Any, ...]) -> AuditEvent:
    fields = dict(zip(("seq", "at_ms", "actor", "action", "subject", "details", "prev_hash", "hash"), row, strict=True))
    return event_from_row({**fields, "time": from_millis(int(row[1]))})


def settings_digest(settings: Any) -> str:
    """SHA-256 of the effective settings as canonical JSON; secrets are masked, so they never count."""
    data = settings.model_dump(mode="json")  # SecretStr values dump as "**********"
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- command line -----------------------------------------------------------------------------------




