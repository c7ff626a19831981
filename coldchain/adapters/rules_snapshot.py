"""The rules worker's durable snapshot: one JSON document in a SQLite file (WAL, synchronous=FULL).

Saved after the transitions it reflects were published and stored, and before the MQTT messages
that caused them are acked. After a ``kill -9`` the worker restores the last snapshot and the
broker redelivers everything acked after it, so no reading is judged twice into a new episode
and none is skipped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from coldchain.adapters.sqlite_files import open_durable


class RulesState:
    """Load and save the engine snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL, body TEXT)"
        )

    def load(self) -> dict[str, Any] | None:
        """The last snapshot saved, or None on a first start."""
        row = self._db.execute("SELECT body FROM snapshot WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save(self, snapshot: dict[str, Any]) -> None:
        """Replace the snapshot durably (fsynced before returning)."""
        body = json.dumps(snapshot, separators=(",", ":"))
        self._db.execute(
            "INSERT INTO snapshot (id, saved_at, body) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at, body = excluded.body",
            (time.time(), body),
        )

    def close(self) -> None:
        self._db.close()
