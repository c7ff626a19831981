"""The rollups waiting to be recomputed, kept durably: a late reading's correction survives a crash.

Ingest acknowledges a batch once it is durable and the rollup keeper has taken it; a reading that
marks an interval for recomputing (late, buffered, out of order) is not redelivered after a crash,
so the mark itself must be on disk before the acknowledgement. One SQLite file (WAL,
``synchronous=FULL``), one row per (sensor, width, start); rows go when their rollup is rewritten.
An unreadable file is moved aside (kept) and a fresh one started, with an error in the log: the
marks in it are lost, the rollups they stood for stay as they were until a reading touches them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from coldchain.adapters.sqlite_files import immediate, move_aside, open_durable, writing

log = logging.getLogger("coldchain.rollups")

Mark = tuple[str, str, int]
"""(sensor, width ``5m`` or ``1d``, start in epoch ms)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    sensor TEXT NOT NULL,
    width TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    PRIMARY KEY (sensor, width, start_ms)
) WITHOUT ROWID;
"""


class RollupMarks:
    """A durable set of marks. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = move_aside(path, datetime.now(UTC))
            log.error("rollup marks %s unreadable (%s); moved to %s, starting afresh", path, exc, aside.name)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = open_durable(self.path)
        try:
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM marks").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def load(self) -> list[Mark]:
        with self._lock:
            rows = self._db.execute("SELECT sensor, width, start_ms FROM marks").fetchall()
        return [(str(sensor), str(width), int(start)) for sensor, width, start in rows]

    def add(self, marks: Iterable[Mark]) -> None:
        """Keep ``marks`` durably (one transaction). Raises DiskFull when the disk cannot take them."""
        self._change("INSERT OR IGNORE INTO marks (sensor, width, start_ms) VALUES (?, ?, ?)", list(marks))

    def remove(self, marks: Iterable[Mark]) -> None:
        """Forget ``marks`` (their rollups were rewritten)."""
        self._change("DELETE FROM marks WHERE sensor = ? AND width = ? AND start_ms = ?", list(marks))

    def _change(self, sql: str, rows: list[Mark]) -> None:
        if not rows:
            return
        with self._lock, writing(self.path), immediate(self._db):
            self._db.executemany(sql, rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
