"""The storage port: what every store adapter (InfluxDB now, SQLite later) offers the rest of coldchain.

``write`` either stores the batch (possibly refusing some records for good, which come back in
``WriteResult.refused`` with the server's reason) or raises ``StoreUnavailable`` having stored
nothing that a retry would duplicate wrongly. Writes are idempotent: the same record written
twice is one point, because a record's identity is its series and its event time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeAlias

from coldchain.core.alert import Alert
from coldchain.core.records import (
    AuditEvent,
    BagEvent,
    BagStatus,
    NotificationAttempt,
    Rejection,
    SensorAvailability,
    ShakeReading,
    TemperatureReading,
)

Record: TypeAlias = (
    TemperatureReading
    | ShakeReading
    | BagEvent
    | Rejection
    | Alert
    | NotificationAttempt
    | BagStatus
    | AuditEvent
    | SensorAvailability
)
"""Everything the store holds: readings, bag events and rejections from ingest, alert states
(``coldchain.core.alert.Alert``) from the rules worker, notification attempts from the notifier."""


class StoreError(Exception):
    """Base of every storage failure."""


class StoreUnavailable(StoreError):
    """Transient: connection refused or lost, timeout, 5xx, 429. Retry later, after ``retry_after`` if set."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreMisconfigured(StoreError):
    """Permanent for every request: bad credentials (401/403) or a missing database. Retrying will not help
    until an operator acts; callers treat it like unavailability but log it as a configuration problem."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A record the store will never accept, with the server's reason."""

    record: Record
    reason: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of a write that reached the store."""

    stored: int
    refused: list[Refused] = field(default_factory=list)


class Store(Protocol):
    """The storage port."""

    def prepare(self) -> None:
        """Make the store ready to write (e.g. create the database). Raises StoreUnavailable."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...

    def write(self, records: Sequence[Record]) -> WriteResult:
        """Store a batch; raises StoreUnavailable on transient failure."""
        ...

    def read_range(
        self, measurement: str, start: datetime, end: datetime, tags: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Rows of ``measurement`` with start <= time < end, oldest first, each a dict with ``time``
        (aware UTC datetime), its tags and its fields; ``tags`` filters by exact tag values."""
        ...

    def latest(self, measurement: str, by: str) -> dict[str, dict[str, Any]]:
        """The newest row of ``measurement`` for each value of tag ``by`` (e.g. last reading per sensor)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
