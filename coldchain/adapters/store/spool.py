"""The durable spool: batches of records kept on disk (SQLite, WAL, synchronous=FULL) while the
store is unreachable, replayed oldest first when it returns.

A batch is durable once ``append`` returns; only then may the MQTT messages behind it be acked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coldchain.adapters.sqlite_files import open_durable
from coldchain.adapters.store import codec as record_codec
from coldchain.core.records import Record


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
        self._db = open_durable(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batch ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " created_at REAL NOT NULL,"
            " n INTEGER NOT NULL,"
            " body BLOB NOT NULL)"
        )
        row = self._db.execute("SELECT count(*), coalesce(sum(n), 0), coalesce(sum(length(body)), 0) FROM batch")
        self._batches, self._records, self._bytes = row.fetchone()
        self._refused = False

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
            self._db.execute(
                "INSERT INTO batch (created_at, n, body) VALUES (?, ?, ?)", (time.time(), len(records), body)
            )
            self._batches += 1
            self._records += len(records)
            self._bytes += len(body)

    def oldest(self) -> SpooledBatch | None:
        """The batch to replay next, or None."""
        with self._lock:
            row = self._db.execute("SELECT id, created_at, body FROM batch ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return SpooledBatch(int(row[0]), float(row[1]), record_codec.loads(row[2]))

    def remove(self, batch_id: int) -> None:
        """Forget a batch once the store holds it."""
        with self._lock:
            row = self._db.execute("DELETE FROM batch WHERE id = ? RETURNING n, length(body)", (batch_id,)).fetchone()
            if row is not None:
                self._refused = False
                self._batches -= 1
                self._records -= int(row[0])
                self._bytes -= int(row[1])

    def close(self) -> None:
        with self._lock:
            self._db.close()
