"""The SQLite adapter of the storage port: one file, no server, for a pharmacy with a few fridges.

It stores the same points as InfluxDB (``points.py``) with the same semantics, so the rest of
coldchain cannot tell the two apart (``tests/test_store_contract.py`` runs one suite on both):

- A series is a measurement plus its tag set; a point's identity is its series and its time in
  milliseconds. Writing a point again *merges* its fields into the stored ones (new values win,
  others stay), as InfluxDB does, so redelivery is idempotent.
- ``read_range`` yields ``time`` (aware UTC), the tags and the fields of each point, None left out,
  oldest first (ties in series-key order), in chunks, so memory stays flat over any range.
- A record that cannot be stored at all (a NaN or infinite number, which InfluxDB refuses too)
  comes back in ``WriteResult.refused``; the rest of the batch is stored.

Schema: ``series(id, measurement, tags)`` holds each tag set once (``tags`` is canonical JSON:
sorted keys, compact), and ``points(series, time_ms, measurement, fields)`` one row per point with
its fields as a JSON object, keyed by (series, time_ms) and indexed by (measurement, time_ms). The
view ``point_rows`` joins them for people reading the file with ``sqlite3``.

Durability: WAL with ``synchronous=FULL``, so a write that returned is on disk even after a power
cut. With ``NORMAL`` a power cut may lose the last commits, yet ingest acknowledges MQTT messages
once ``write`` returns and the broker would never redeliver them; one fsync per batch (ingest
batches for up to 200 ms) costs little at a small site's rates.

One connection shared by all threads behind a lock; a streamed ``read_range`` takes the lock per
chunk only, so a slow reader never holds up ingest.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.sqlite_files import immediate, is_disk_full, open_durable
from coldchain.adapters.store.points import Point, to_point
from coldchain.adapters.store.port import Refused, StoreMisconfigured, StoreUnavailable, WriteResult
from coldchain.core.records import Record
from coldchain.core.times import from_millis, to_millis

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    UNIQUE (measurement, tags)
);
CREATE TABLE IF NOT EXISTS points (
    series INTEGER NOT NULL REFERENCES series (id),
    time_ms INTEGER NOT NULL,
    measurement TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (series, time_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_by_time ON points (measurement, time_ms);
CREATE VIEW IF NOT EXISTS point_rows AS
    SELECT p.measurement, p.time_ms, s.tags, p.fields FROM points p JOIN series s ON s.id = p.series;
"""

# Same series and time: fields merge, the new values winning (InfluxDB's rule for duplicate points).
_UPSERT = (
    "INSERT INTO points (series, time_ms, measurement, fields) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (series, time_ms) DO UPDATE SET fields = CASE WHEN points.fields = excluded.fields "
    "THEN points.fields ELSE json_patch(points.fields, excluded.fields) END"
)


def _canonical(tags: Mapping[str, str]) -> str:
    """The series key: the tags as JSON with sorted keys (ASCII, so any text survives SQLite)."""
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


def _fields_json(point: Point) -> str:
    """The fields as a JSON object; ValueError for NaN or infinity (JSON has neither)."""
    return json.dumps(dict(point.fields), separators=(",", ":"), allow_nan=False)


class SqliteStore:
    """``Store`` in one SQLite file (WAL). Safe to share between threads."""

    chunk_size = 5_000
    """Rows per chunk of a streamed ``read_range``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._series: dict[tuple[str, str], int] = {}

    # -- plumbing -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """The connection, opened (and the schema created) on first use. Call with the lock held."""
        if self._db is not None:
            return self._db
        try:
            db = open_durable(self.path, timeout=10.0)
        except sqlite3.DatabaseError as exc:
            raise StoreMisconfigured(f"SQLite store {self.path} unusable: {exc}") from exc
        except (OSError, sqlite3.Error) as exc:
            raise StoreMisconfigured(f"cannot open SQLite store {self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreMisconfigured(f"SQLite store {self.path} unusable: {exc}") from exc
        self._db = db
        return db

    def _series_ids(self, db: sqlite3.Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Ids of these (measurement, tags) series, creating the missing ones in the open transaction."""
        found = {key: self._series[key] for key in keys if key in self._series}
        for key in keys - found.keys():
            db.execute("INSERT OR IGNORE INTO series (measurement, tags) VALUES (?, ?)", key)
            (found[key],) = db.execute("SELECT id FROM series WHERE measurement = ? AND tags = ?", key).fetchone()
        return found

    # -- Store ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the file and its schema if needed. Raises StoreMisconfigured if it cannot."""
        with self._lock:
            self._connect()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the file answers a query."""
        with self._lock:
            try:
                self._connect().execute("SELECT 1 FROM series LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def write(self, records: Sequence[Record]) -> WriteResult:
        """Store ``records`` in one transaction; ones that cannot be stored come back refused."""
        if not records:
            return WriteResult(stored=0)
        rows: list[tuple[str, str, int, str]] = []
        refused: list[Refused] = []
        for record in records:
            try:
                point = to_point(record)
                rows.append((point.measurement, _canonical(point.tag_dict()), point.time_ms, _fields_json(point)))
            except (TypeError, ValueError) as exc:
                refused.append(Refused(record, f"unstorable record: {exc}"))
        with self._lock:
            db = self._connect()
            try:
                with immediate(db):
                    ids = self._series_ids(db, {(measurement, tags) for measurement, tags, _, _ in rows})
                    db.executemany(
                        _UPSERT,
                        [(ids[(m, tags)], time_ms, m, fields) for m, tags, time_ms, fields in rows],
                    )
            except sqlite3.Error as exc:
                # a full or failing disk is transient for us: spooled (or held unacked) until space returns
                prefix = "DISK FULL: " if is_disk_full(exc) else ""
                raise StoreUnavailable(f"{prefix}SQLite store {self.path}: write failed: {exc}") from exc
            self._series.update(ids)  # only once committed: a rolled-back series id must not be reused
        return WriteResult(stored=len(rows), refused=refused)

    def read_range(
        self, measurement: str, start: datetime, end: datetime, tags: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Rows with start <= time < end, oldest first, fetched ``chunk_size`` at a time."""
        start_ms, end_ms = to_millis(start), to_millis(end)
        series_filter = ""
        series_ids: list[int] = []
        if tags:
            wanted = dict(tags)
            for series_id, tag_json in self._query("SELECT id, tags FROM series WHERE measurement = ?", (measurement,)):
                stored = json.loads(tag_json)
                if all(stored.get(key) == value for key, value in wanted.items()):
                    series_ids.append(series_id)
            if not series_ids:
                return
            series_filter = f" AND p.series IN ({','.join('?' * len(series_ids))})"
        after: tuple[int, str] | None = None
        while True:
            cursor_filter, cursor_args = "", []
            if after is not None:
                # keyset pagination: resume after the last (time, series key) delivered
                cursor_filter = " AND p.time_ms >= ? AND (p.time_ms > ? OR s.tags > ?)"
                cursor_args = [after[0], after[0], after[1]]
            chunk = self._query(
                "SELECT p.time_ms, s.tags, p.fields FROM points p JOIN series s ON s.id = p.series "
                f"WHERE p.measurement = ? AND p.time_ms >= ? AND p.time_ms < ?{series_filter}{cursor_filter} "
                "ORDER BY p.time_ms, s.tags LIMIT ?",
                (measurement, start_ms, end_ms, *series_ids, *cursor_args, self.chunk_size),
            )
            for time_ms, tag_json, fields_json in chunk:
                yield _row(time_ms, tag_json, fields_json)
            if len(chunk) < self.chunk_size:
                return
            after = (chunk[-1][0], chunk[-1][1])

    def latest(self, measurement: str, by: str) -> dict[str, dict[str, Any]]:
        """The newest row of ``measurement`` for each value of tag ``by``, with that tag in the row."""
        newest: dict[str, tuple[int, dict[str, Any]]] = {}
        rows = self._query(
            "SELECT p.time_ms, s.tags, p.fields FROM series s JOIN points p ON p.series = s.id "
            "WHERE s.measurement = ? AND p.time_ms = (SELECT max(time_ms) FROM points WHERE series = s.id)",
            (measurement,),
        )
        for time_ms, tag_json, fields_json in rows:
            row = _row(time_ms, tag_json, fields_json)
            value = row.get(by)
            if isinstance(value, str) and value and (value not in newest or newest[value][0] < time_ms):
                newest[value] = (time_ms, row)
        return {value: row for value, (_, row) in newest.items()}

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            self._series.clear()

    # -- helpers --------------------------------------------------------------------------------

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connect().execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: query failed: {exc}") from exc


def _row(time_ms: int, tag_json: str, fields_json: str) -> dict[str, Any]:
    row: dict[str, Any] = {"time": from_millis(time_ms)}
    row.update(json.loads(tag_json))
    row.update(json.loads(fields_json))
    return row
