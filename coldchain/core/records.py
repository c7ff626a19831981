"""The validated records coldchain stores and judges: our own frozen value objects.

Timestamps are timezone-aware UTC datetimes truncated to the millisecond, the precision at which
they are stored, so a redelivered reading maps to the same point and overwrites itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, TypeAlias

from coldchain.core.alert import Alert
from coldchain.core.rollups import Rollup

BagEventKind = Literal["diluted", "infusion_started", "infusion_completed", "discarded"]
MAX_FUTURE = timedelta(minutes=5)
"""How far ahead of our clock a record's event time may be (CONTRACT §3)."""
MAX_AGE = timedelta(days=30)
"""How far behind our clock a record's event time may be (CONTRACT §3)."""

BAG_EVENT_KINDS: tuple[BagEventKind, ...] = ("diluted", "infusion_started", "infusion_completed", "discarded")


@dataclass(frozen=True, slots=True)
class TemperatureReading:
    """One temperature sample of a sensor, placed in its unit and site."""

    sensor: str
    unit: str
    site: str
    ts: datetime
    celsius: float
    seq: int | None = None
    battery_pct: float | None = None


@dataclass(frozen=True, slots=True)
class ShakeReading:
    """Peak dynamic acceleration (gravity removed) seen by a shake sensor."""

    sensor: str
    unit: str
    site: str
    ts: datetime
    peak_g: float
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class SensorAvailability:
    """A device's own report that it went offline or came back (Zigbee2MQTT ``<topic>/availability``).

    ``ts`` is the arrival time: the report is about now, and the device gives no time of its own."""

    sensor: str
    unit: str
    site: str
    ts: datetime
    online: bool


@dataclass(frozen=True, slots=True)
class BagEvent:
    """A step in a diluted infusion bag's life."""

    bag: str
    event: BagEventKind
    ts: datetime
    unit: str | None
    site: str | None
    product: str | None
    lot: str | None
    by: str | None
    source: str | None = None
    """Who published it, as authenticated: ``api:<user>``, ``scanner:<id>``, or ``mqtt`` (unattributed)."""


@dataclass(frozen=True, slots=True)
class BagStatus:
    """A diluted bag's timer as dashboards read it (measurement ``bag_timer``), written by the rules
    worker on each bag event. The point's time is the deadline, so "most urgent first" is time order;
    stopping the timer rewrites the same point with ``state = "done"``."""

    bag: str
    unit: str
    site: str
    diluted_at: datetime
    deadline: datetime
    state: Literal["running", "done"]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One link of the append-only, hash-chained audit trail (measurement ``audit``).

    ``hash`` is SHA-256 over ``prev_hash`` and the canonical JSON of the other fields, so editing or
    removing any event breaks every hash after it."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: str
    """Canonical JSON (sorted keys) of what was done."""
    prev_hash: str
    hash: str
    mac: str = ""
    """``<key id>:<HMAC-SHA256 hex of hash>`` under the audit key, which the store's credentials do not give;
    empty for events recorded before audit MACs."""
    chain: str = ""
    """Which chain the event links into: empty for the one rules worker's; a rules partition's
    ``rules.client_id`` (each partition keeps its own chain). Not part of ``hash``: it names the chain."""


class RejectReason(StrEnum):
    """Why a message (or a record the store refused) was not stored as data."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_JSON = "invalid_json"
    INVALID_SCHEMA = "invalid_schema"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_SENSOR = "unknown_sensor"
    WRONG_KIND = "wrong_kind"
    UNKNOWN_UNIT = "unknown_unit"
    STORE_REJECTED = "store_rejected"
    CONFLICTING_READING = "conflicting_reading"
    INVALID_SEQUENCE = "invalid_sequence"
    UNKNOWN_SCANNER = "unknown_scanner"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that was refused, with the reason; stored in measurement ``rejected``."""

    reason: RejectReason
    topic: str
    detail: str
    payload: bytes
    received_at: datetime


NotificationOutcome = Literal["sent", "failed", "gave_up"]


@dataclass(frozen=True, slots=True)
class NotificationAttempt:
    """One attempt to deliver one notice of an alert to one target; stored in measurement ``notification``.

    ``channel`` is the kind of channel (``email``, ``webhook``, ``slack``, ``sms``, ``log``, …) derived
    from the target's apprise URL scheme; ``attempt`` counts from 1 for each notice. ``at`` is unique
    per notifier (bumped by a millisecond when two attempts fall in the same one), so no attempt
    overwrites another in the store.
    """

    alert_id: str
    kind: str
    severity: str
    site: str
    unit: str
    target: str
    channel: str
    purpose: str
    tier: int
    outcome: NotificationOutcome
    error: str | None
    attempt: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Review:
    """A signed daily review of a unit (measurement ``review``, ``core/review.py``): who, when, the note, the
    window and the site's local date it covers, and the figures shown (canonical JSON), never typed."""

    unit: str
    site: str
    at: datetime
    by: str
    full_name: str
    meaning: str
    note: str
    local_date: str
    window_from: datetime
    window_to: datetime
    figures: str
    signature_id: str


Reading = TemperatureReading | ShakeReading


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
    | Review
    | Rollup
)
"""Everything the store holds: readings, bag events and rejections from ingest, alert states
(``coldchain.core.alert.Alert``) from the rules worker, notification attempts from the notifier."""


RECORD_TYPES: dict[str, type] = {
    "temperature": TemperatureReading,
    "shake": ShakeReading,
    "bag_event": BagEvent,
    "rejected": Rejection,
    "alert": Alert,
    "notification": NotificationAttempt,
    "bag_timer": BagStatus,
    "audit": AuditEvent,
    "availability": SensorAvailability,
    "review": Review,
    "rollup_5m": Rollup,
    "rollup_1d": Rollup,
}
"""Each record type by the name of the measurement it is stored in."""


_NAMES = {cls: name for name, cls in RECORD_TYPES.items() if cls is not Rollup}


def measurement_of(record: Record) -> str:
    """The measurement a record is stored in (a rollup's depends on its width)."""
    if type(record) is Rollup:
        return record.measurement
    return _NAMES[type(record)]
