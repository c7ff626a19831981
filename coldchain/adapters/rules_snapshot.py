"""The rules worker's durable state: a base snapshot and a change log in a SQLite file (WAL, synchronous=FULL).

Table ``snapshot`` holds one full snapshot (``RulesEngine.snapshot``'s JSON, the format files have
always had, so a file written before change logs restores as it is); table ``changes`` holds one
row per checkpoint with only what changed since the previous one (``core/rules_changes.py``). A
checkpoint is one transaction, so one durable commit, and none when nothing changed. Once the log
outgrows the snapshot (or ``COMPACT_ROWS`` rows), the next checkpoint writes a fresh full snapshot
and empties the log in the same transaction. ``load`` folds the log onto the snapshot.

Saved after the transitions it reflects were published and stored, and before the MQTT messages
that caused them are acked. After a ``kill -9`` the worker restores the last snapshot and log and
the broker redelivers everything acked after it, so no reading is judged twice into a new episode
and none is skipped.

A snapshot file that cannot be read (not SQLite, corrupt, not JSON) never stops the service: it is
moved aside (kept, renamed ``*.unreadable-<time>``), a fresh file takes its place, and ``reset``
says what happened so the worker raises ``state_reset`` and rebuilds from the store.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.sqlite_files import immediate, move_aside, open_durable, writing
from coldchain.core.rules import migrate
from coldchain.core.rules_changes import apply_changes

log = logging.getLogger("coldchain.rules")

COMPACT_ROWS = 3600
"""Most change records kept before the log is compacted into a fresh snapshot (an hour of 1 s checkpoints)."""
COMPACT_MIN_BYTES = 1 << 20
"""The log may grow to this many bytes even when the snapshot is smaller (a small site compacts rarely)."""


class RulesState:
    """Load the engine's state; save full snapshots and change records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reset: str | None = None
        """Why the snapshot was unreadable and where it was moved (None when it was fine)."""
        self.base_bytes = 0
        """Size of the stored full snapshot (0: none yet)."""
        self.log_bytes = 0
        self.log_rows = 0
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self._db = self._fresh(exc)

    def _open(self) -> sqlite3.Connection:
        db = open_durable(self.path)
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL, body TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY, saved_at REAL, body TEXT)")
            base = db.execute("SELECT length(body) FROM snapshot WHERE id = 1").fetchone()
            rows, size = db.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM changes").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        self.base_bytes = 0 if base is None else int(base[0])
        self.log_rows, self.log_bytes = int(rows), int(size)
        return db

    def _fresh(self, cause: Exception) -> sqlite3.Connection:
        aside = move_aside(self.path, datetime.now(UTC))
        self.reset = f"{self.path} unreadable ({cause}); moved to {aside.name}"
        log.error("rules snapshot %s; starting from a fresh one", self.reset)
        return self._open()

    def load(self) -> dict[str, Any] | None:
        """The state last saved (the snapshot with the change log applied, migrated to the current
        version), or None on a first start or after moving an unreadable file aside."""
        try:
            row = self._db.execute("SELECT body FROM snapshot WHERE id = 1").fetchone()
            if row is None:
                return None
            records = [json.loads(body) for (body,) in self._db.execute("SELECT body FROM changes ORDER BY seq")]
            return apply_changes(migrate(dict(json.loads(row[0]))), records)
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError) as exc:
            self.discard(exc)
            return None

    @property
    def needs_snapshot(self) -> bool:
        """Whether the next checkpoint should be a full snapshot: none yet, or the log outgrew it."""
        return (
            self.base_bytes == 0
            or self.log_rows >= COMPACT_ROWS
            or self.log_bytes > max(self.base_bytes, COMPACT_MIN_BYTES)
        )

    def discard(self, cause: Exception) -> None:
        """Move the snapshot aside (kept) and start a fresh one; ``reset`` says why."""
        self._db.close()
        self._db = self._fresh(cause)

    def save(self, snapshot: dict[str, Any]) -> int:
        """Replace the snapshot and empty the change log, in one durable transaction (fsynced before
        returning); the bytes written. Raises DiskFull when it cannot."""
        body = json.dumps(snapshot, separators=(",", ":"))
        with writing(self.path), immediate(self._db):
            self._db.execute(
                "INSERT INTO snapshot (id, saved_at, body) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at, body = excluded.body",
                (time.time(), body),
            )
            self._db.execute("DELETE FROM changes")
        self.base_bytes, self.log_rows, self.log_bytes = len(body), 0, 0
        return len(body)

    def append(self, record: dict[str, Any]) -> int:
        """Add one change record durably (one fsynced commit); the bytes written. Raises DiskFull when it cannot."""
        body = json.dumps(record, separators=(",", ":"))
        with writing(self.path):
            self._db.execute("INSERT INTO changes (saved_at, body) VALUES (?, ?)", (time.time(), body))
        self.log_rows += 1
        self.log_bytes += len(body)
        return len(body)

    def close(self) -> None:
        self._db.close()
