"""The notification outbox: every planned notice, durable before anyone is paged (SQLite, WAL, synchronous=FULL).

The planner (``coldchain.alerts.plan``) decides what to send; ``add`` stores those notices, and the
notifier takes them out target by target with ``due``, marking each ``delivered``, ``failed``
(with the time of the next attempt) or ``gave_up``. Rows are never deleted: they are the alert's
``history`` that the planner consults, so a notice is planned once per (alert, target, purpose)
whatever its delivery state, across restarts and redelivered transitions.

Times are stored as epoch milliseconds (UTC). One connection guarded by one lock serves every
thread: each call is a single short statement.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from coldchain.adapters.sqlite_files import immediate, open_durable, writing
from coldchain.core.alert import Alert
from coldchain.core.policy import Notice, Sent
from coldchain.core.times import from_millis, to_millis

_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notice (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id        TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    purpose         TEXT    NOT NULL,
    tier            INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    alert           TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'gave_up')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    finished_at     INTEGER,
    last_error      TEXT,
    UNIQUE (alert_id, target, purpose)
);
CREATE INDEX IF NOT EXISTS notice_pending ON notice (target, next_attempt_at, id) WHERE state = 'pending';
"""


class OutboxError(Exception):
    """The outbox file cannot be used (wrong schema, unreadable)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notice waiting for delivery, as the notifier sees it."""

    id: int
    alert: Alert
    target: str
    purpose: str
    tier: int
    reason: str
    attempts: int
    """Attempts made so far (0 before the first)."""
    created_at: datetime
    """When the notice was planned (``now`` of ``add``); give-up is judged from here."""


class Outbox:
    """Planned notices and their delivery state in one SQLite file. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = open_durable(path)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"{path}: cannot use as the notification outbox: {exc}") from exc
        try:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, _SCHEMA_VERSION):
                raise OutboxError(f"{path}: outbox schema version {version}, this coldchain knows {_SCHEMA_VERSION}")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(f"{path}: cannot use as the notification outbox: {exc}") from exc
        except OutboxError:
            self._db.close()
            raise

    def add(self, notices: Sequence[Notice], now: datetime, *, delivered: bool = False) -> int:
        """Store the notices as pending, due at ``now``; those already stored are ignored. How many were new.

        ``delivered``: they were already sent (while this file could not be written): recorded as such.
        """
        if not notices:
            return 0
        created = to_millis(now)
        state, attempts, finished = ("delivered", 1, created) if delivered else ("pending", 0, None)
        rows = [
            (
                n.alert.id,
                n.target,
                n.purpose,
                n.tier,
                n.reason,
                json.dumps(n.alert.to_payload(), separators=(",", ":")),
                created,
                created,
                state,
                attempts,
                finished,
            )
            for n in notices
        ]
        with self._lock, writing(self.path):
            before = self._db.total_changes
            with immediate(self._db):
                self._db.executemany(
                    "INSERT OR IGNORE INTO notice"
                    " (alert_id, target, purpose, tier, reason, alert, created_at, next_attempt_at, state, attempts,"
                    " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            return self._db.total_changes - before

    def history(self, alert_id: str) -> list[Sent]:
        """Every notice ever planned for the alert (delivered, pending or given up), in planning order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT target, purpose, tier, created_at FROM notice WHERE alert_id = ? ORDER BY created_at, id",
                (alert_id,),
            ).fetchall()
        return [Sent(target, purpose, tier, from_millis(created)) for target, purpose, tier, created in rows]

    def due(self, target: str, now: datetime, limit: int = 50) -> list[OutboxEntry]:
        """Pending notices of ``target`` whose next attempt is at or before ``now``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, alert, target, purpose, tier, reason, attempts, created_at FROM notice"
                " WHERE state = 'pending' AND target = ? AND next_attempt_at <= ?"
                " ORDER BY id LIMIT ?",
                (target, to_millis(now), limit),
            ).fetchall()
        return [
            OutboxEntry(
                id=row_id,
                alert=Alert.from_payload(json.loads(alert)),
                target=row_target,
                purpose=purpose,
                tier=tier,
                reason=reason,
                attempts=attempts,
                created_at=from_millis(created),
            )
            for row_id, alert, row_target, purpose, tier, reason, attempts, created in rows
        ]

    def pending_targets(self) -> dict[str, int]:
        """Targets with pending notices, and how many each has."""
        with self._lock:
            rows = self._db.execute(
                "SELECT target, count(*) FROM notice WHERE state = 'pending' GROUP BY target"
            ).fetchall()
        return {target: int(count) for target, count in rows}

    def delivered(self, entry_id: int, at: datetime) -> None:
        """The notice reached its target at ``at``."""
        self._finish(entry_id, "delivered", at, None)

    def failed(self, entry_id: int, at: datetime, error: str, next_attempt_at: datetime) -> None:
        """An attempt at ``at`` failed with ``error``; try again at ``next_attempt_at``."""
        with self._lock, writing(self.path):
            self._db.execute(
                "UPDATE notice SET attempts = attempts + 1, last_attempt_at = ?, last_error = ?, next_attempt_at = ?"
                " WHERE id = ? AND state = 'pending'",
                (to_millis(at), error, to_millis(next_attempt_at), entry_id),
            )

    def gave_up(self, entry_id: int, at: datetime, error: str) -> None:
        """The last attempt, at ``at``, failed with ``error`` and no more will be made."""
        self._finish(entry_id, "gave_up", at, error)

    def _finish(self, entry_id: int, state: str, at: datetime, error: str | None) -> None:
        with self._lock, writing(self.path):
            self._db.execute(
                "UPDATE notice SET state = ?, attempts = attempts + 1, last_attempt_at = ?, finished_at = ?,"
                " last_error = coalesce(?, last_error) WHERE id = ? AND state = 'pending'",
                (state, to_millis(at), to_millis(at), error, entry_id),
            )

    def pending_count(self) -> int:
        """Notices not yet delivered nor given up."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM notice WHERE state = 'pending'").fetchone()[0])

    def close(self) -> None:
        """Close the file; the outbox object is unusable afterwards."""
        with self._lock:
            self._db.close()
