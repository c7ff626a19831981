"""The durable spool: batches of records kept on disk (SQLite, WAL, synchronous=FULL) while the
store is unreachable, replayed oldest first when it returns.

A batch is durable once ``append`` returns; only then may the MQTT messages behind it be acked.
``append`` raises ``DiskFull`` when the disk cannot take it (the caller holds its acks).

A spool file that cannot be opened is moved aside (kept) and a fresh one started; ``reset`` says so.
A batch that cannot be replayed (``dead_letter``) moves whole into table ``dead_letter`` of the same
file, with the error, so it never blocks the batches behind it and nothing of it is deleted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from coldchain.adapters.sqlite_files import move_aside, open_durable, writing
from coldchain.adapters.store import codec as record_codec
from coldchain.core.records import Record

log = logging.getLogger("coldchain.store")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batch ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_at REAL NOT NULL,"
    " n INTEGER NOT NULL,"
    " body BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS dead_letter ("
    " id INTEGER PRIMARY KEY, created_at REAL NOT NULL, dead_at REAL NOT NULL, n INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, error TEXT NOT NULL, body BLOB NOT NULL);"
)


class SpoolFull(Exception):
    """The spool has reached its size cap; the caller must hold its messages unacknowledged."""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One batch as it was appended."""

    id: int
    created_at: float
    records: list[Record]


class Spool:
    """A FIFO of record batches in one SQLite file. Safe to share between threads."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self.reset: str | None = None
        """Why the spool file was unreadable and where it was moved (None when it was fine)."""
        try:
            self._db, row = self._open()
        except sqlite3.DatabaseError as exc:
            aside = move_aside(path, datetime.now(UTC))
            self.reset = f"{path} unreadable ({exc}); moved to {aside.name}"
            log.error("spool %s; starting a fresh one", self.reset)
            self._db, row = self._open()
        self._batches, self._records, self._bytes = row
        self._refused = False

    def _open(self) -> tuple[sqlite3.Connection, tuple[int, int, int]]:
        db = open_durable(self.path)
        try:
            db.executescript(_SCHEMA)
            row = db.execute("SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(body)), 0) FROM batch")
            counts = row.fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db, (int(counts[0]), int(counts[1]), int(counts[2]))

    @property
    def batches(self) -> int:
        """Batches waiting."""
        return int(self._batches)

    @property
    def depth(self) -> int:
        """Records waiting."""
        return int(self._records)

    @property
    def size_bytes(self) -> int:
        """Bytes of spooled data (what the cap measures)."""
        return int(self._bytes)

    @property
    def full(self) -> bool:
        """True from a refused append until a batch is removed (or when at the cap)."""
        return self._refused or self._bytes >= self.max_bytes

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest waiting batch was spooled; 0 when empty."""
        with self._lock:
            row = self._db.execute("SELECT min(created_at) FROM batch").fetchone()
        if row[0] is None:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - float(row[0]))

    def append(self, records: list[Record]) -> None:
        """Store a batch durably (fsynced) or raise SpoolFull."""
        body = record_codec.dumps(records)
        with self._lock:
            if self._bytes + len(body) > self.max_bytes:
                self._refused = True
                raise SpoolFull(
                    f"spool {self.path} holds {self._bytes} bytes; cap is {self.max_bytes}, batch needs {len(body)}"
                )
            with writing(self.path):
                self._db.execute(
                    "INSERT INTO batch (created_at, n, body) VALUES (?, ?, ?)", (time.time(), len(records), body)
                )
            self._batches += 1
            self._records += len(records)
            self._bytes += len(body)

    def oldest(self) -> SpooledBatch | None:
        """The batch to replay next, or None; raises what decoding a damaged batch raises."""
        with self._lock:
            row = self._db.execute("SELECT id, created_at, body FROM batch ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return SpooledBatch(int(row[0]), float(row[1]), record_codec.loads(row[2]))

    def oldest_id(self) -> int | None:
        """The id of the batch to replay next (readable or not), or None."""
        with self._lock:
            row = self._db.execute("SELECT min(id) FROM batch").fetchone()
        return None if row[0] is None else int(row[0])

    def dead_letter(self, batch_id: int, attempts: int, error: str) -> int:
        """Move a batch that cannot be replayed, whole, into ``dead_letter``; the records it held."""
        with self._lock, writing(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT created_at, n, body FROM batch WHERE id = ?", (batch_id,)
                ).fetchone()
                if row is None:
                    self._db.execute("ROLLBACK")
                    return 0
                self._db.execute(
                    "INSERT OR REPLACE INTO dead_letter (id, created_at, dead_at, n, attempts, error, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (batch_id, row[0], time.time(), row[1], attempts, error[:2000], row[2]),
                )
                self._db.execute("DELETE FROM batch WHERE id = ?", (batch_id,))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._refused = False
            self._batches -= 1
            self._records -= int(row[1])
            self._bytes -= len(row[2])
            return int(row[1])

    def dead_letters(self) -> list[tuple[int, int, str, bytes]]:
        """(batch id, records, error, body) of every dead-lettered batch, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, n, error, body FROM dead_letter ORDER BY id").fetchall()
        return [(int(r[0]), int(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def remove(self, batch_id: int) -> None:
        """Forget a batch once the store holds it."""
        with self._lock, writing(self.path):
            row = self._db.execute("DELETE FROM batch WHERE id = ? RETURNING n, length(body)", (batch_id,)).fetchone()
            if row is not None:
                self._refused = False
                self._batches -= 1
                self._records -= int(row[0])
                self._bytes -= int(row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()
