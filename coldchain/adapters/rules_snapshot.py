"""The rules worker's durable snapshot: one JSON document in a SQLite file (WAL, synchronous=FULL).

Saved after the transitions it reflects were published and stored, and before the MQTT messages
that caused them are acked. After a ``kill -9`` the worker restores the last snapshot and the
broker redelivers everything acked after it, so no reading is judged twice into a new episode
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

from coldchain.adapters.sqlite_files import move_aside, open_durable, writing

log = logging.getLogger("coldchain.rules")


class RulesState:
    """Load and save the engine snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reset: str | None = None
        """Why the snapshot was unreadable and where it was moved (None when it was fine)."""
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
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _fresh(self, cause: Exception) -> sqlite3.Connection:
        aside = move_aside(self.path, datetime.now(UTC))
        self.reset = f"{self.path} unreadable ({cause}); moved to {aside.name}"
        log.error("rules snapshot %s; starting from a fresh one", self.reset)
        return self._open()

    def load(self) -> dict[str, Any] | None:
        """The last snapshot saved, or None on a first start or after moving an unreadable one aside."""
        try:
            row = self._db.execute("SELECT body FROM snapshot WHERE id = 1").fetchone()
            return None if row is None else dict(json.loads(row[0]))
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            self.discard(exc)
            return None

    def discard(self, cause: Exception) -> None:
        """Move the snapshot aside (kept) and start a fresh one; ``reset`` says why."""
        self._db.close()
        self._db = self._fresh(cause)

    def save(self, snapshot: dict[str, Any]) -> None:
        """Replace the snapshot durably (fsynced before returning); raises DiskFull when it cannot."""
        body = json.dumps(snapshot, separators=(",", ":"))
        with writing(self.path):
            self._db.execute(
                "INSERT INTO snapshot (id, saved_at, body) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at, body = excluded.body",
                (time.time(), body),
            )

    def close(self) -> None:
        self._db.close()
