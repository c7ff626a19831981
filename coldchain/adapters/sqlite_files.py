"""Opening the SQLite files coldchain relies on for durability (spool, snapshot, outbox, audit log, store)."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
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


class DiskFull(Exception):
    """A state file could not be written: the disk is full, over quota or failing (an I/O error).

    What was being written is not durable; the caller must not acknowledge what depends on it.
    """

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(f"DISK FULL: cannot write {path}: {cause}")
        self.path = path


_FULL_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS))
_FULL_WORDS = ("full", "disk i/o error", "readonly", "read-only", "unable to open")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write failed for want of space or a working disk (not a bug of ours)."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(word in str(exc).lower() for word in _FULL_WORDS)
    return False


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection: ``BEGIN IMMEDIATE``, ``COMMIT`` when the block
    ends, ``ROLLBACK`` (if still open) when it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Translate a full or failing disk while writing ``path`` into ``DiskFull``; other errors pass."""
    try:
        yield
    except (sqlite3.OperationalError, OSError) as exc:
        if is_disk_full(exc):
            raise DiskFull(path, exc) from exc
        raise


def move_aside(path: Path, now: datetime) -> Path:
    """Rename an unreadable state file (and its ``-wal``/``-shm``) out of the way, keeping it; the new name."""
    aside = path.with_name(f"{path.name}.unreadable-{now.strftime('%Y%m%dT%H%M%SZ')}")
    for suffix in ("", "-wal", "-shm", "-journal"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(aside.with_name(aside.name + suffix))
    return aside
