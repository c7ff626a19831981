"""Opening the SQLite files coldchain relies on for durability (spool, snapshot, outbox, audit log, store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_durable(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection whose committed writes survive a crash or a power cut: WAL, ``synchronous=FULL``,
    autocommit. The parent directory is created. Usable from any thread; callers serialise with a lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db
