"""Records as points: the one schema every store adapter shares (pure functions, no I/O).

A point is what InfluxDB calls one: a measurement, tags (indexed, bounded values that name a
series), fields (the values) and a time in epoch milliseconds. ``to_point`` derives it from any
record through ``POINT_MAKERS``, one function per record type, so which attribute is a tag, which a
field, and of which type, is decided here once: line protocol (``lineprotocol.py``, for InfluxDB)
and the SQLite store both encode these points, and rows read back from either look the same.

- Tag values are text; a None or empty tag is left out (InfluxDB keeps no empty tags).
- Field values are ``float``, ``int``, ``str`` or ``bool``; a None field is left out. Floats are
  converted with ``float()`` and integers with ``int()`` whatever the caller passed, so a field's
  type never depends on the value (``celsius`` 4 is still the float 4.0).
- Times inside fields (an alert's ``started_at``) are RFC 3339 strings; the point's own time is
  the record's event time (``ts``, ``updated_at``, ``at``, a bag's deadline).

A new record type needs one function decorated with ``@point_maker(ItsType)``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from coldchain.core.alert import Alert
from coldchain.core.records import (
    AuditEvent,
    BagEvent,
    BagStatus,
    NotificationAttempt,
    Record,
    Rejection,
    Review,
    SensorAvailability,
    ShakeReading,
    TemperatureReading,
)
from coldchain.core.rollups import Rollup
from coldchain.core.times import format_time, to_millis

PAYLOAD_LIMIT = 64 * 1024
"""Bytes of a rejected message's payload kept in measurement ``rejected``: the whole of any message
the contract accepts (``MAX_PAYLOAD_BYTES``); a larger one is kept up to this limit."""

FieldValue: TypeAlias = float | int | str | bool
Tags: TypeAlias = tuple[tuple[str, str | None], ...]
Fields: TypeAlias = tuple[tuple[str, FieldValue], ...]


@dataclass(frozen=True, slots=True)
class Point:
    """One record as stored: ``tags`` may hold None or "" (left out by every encoder), ``fields`` never None."""

    measurement: str
    tags: Tags
    fields: Fields
    time_ms: int

    def tag_dict(self) -> dict[str, str]:
        """The tags that are stored: None and empty values left out."""
        return {key: value for key, value in self.tags if value}


POINT_MAKERS: dict[type, Callable[[Any], Point]] = {}
"""The point maker of each record type."""

_R = TypeVar("_R")


def point_maker(record_type: type[_R]) -> Callable[[Callable[[_R], Point]], Callable[[_R], Point]]:
    """Register the decorated function as the point maker of ``record_type``."""

    def register(function: Callable[[_R], Point]) -> Callable[[_R], Point]:
        POINT_MAKERS[record_type] = function
        return function

    return register


def to_point(record: Record) -> Point:
    """The point a record is stored as; TypeError for a type without a maker."""
    try:
        function = POINT_MAKERS[type(record)]
    except KeyError:
        raise TypeError(f"no point maker for {type(record).__name__}") from None
    return function(record)


def _present(*pairs: tuple[str, FieldValue | None]) -> Fields:
    return tuple((name, value) for name, value in pairs if value is not None)


@point_maker(TemperatureReading)
def temperature_point(r: TemperatureReading) -> Point:
    """Tags sensor, site, unit; float ``celsius``, optional int ``seq`` and float ``battery_pct``."""
    return Point(
        "temperature",
        (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)),
        _present(
            ("celsius", float(r.celsius)),
            ("seq", None if r.seq is None else int(r.seq)),
            ("battery_pct", None if r.battery_pct is None else float(r.battery_pct)),
        ),
        to_millis(r.ts),
    )


@point_maker(ShakeReading)
def shake_point(r: ShakeReading) -> Point:
    """Tags sensor, site, unit; float ``peak_g``, optional int ``seq``."""
    return Point(
        "shake",
        (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)),
        _present(("peak_g", float(r.peak_g)), ("seq", None if r.seq is None else int(r.seq))),
        to_millis(r.ts),
    )


@point_maker(BagEvent)
def bag_event_point(r: BagEvent) -> Point:
    """Tags bag, site, unit; string fields ``event``, ``product``, ``lot``, ``by``, ``source``."""
    return Point(
        "bag_event",
        (("bag", r.bag), ("site", r.site), ("unit", r.unit)),
        _present(
            ("event", r.event), ("product", r.product), ("lot", r.lot), ("by", r.by), ("source", r.source)
        ),
        to_millis(r.ts),
    )


@point_maker(SensorAvailability)
def availability_point(r: SensorAvailability) -> Point:
    """Tags sensor, site, unit; string ``state`` (``online`` | ``offline``), at arrival."""
    return Point(
        "availability",
        (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)),
        (("state", "online" if r.online else "offline"),),
        to_millis(r.ts),
    )


@point_maker(Rejection)
def rejection_point(r: Rejection) -> Point:
    """Tag reason; its topic, the reason in words and the payload (up to 64 KiB), at arrival.

    A payload that is not UTF-8 is kept as ``b64:`` + its base64, so it can be replayed byte for byte."""
    payload = payload_text(r.payload[:PAYLOAD_LIMIT])
    return Point(
        "rejected",
        (("reason", str(r.reason)),),
        (("topic", r.topic), ("detail", r.detail), ("payload", payload)),
        to_millis(r.received_at),
    )


def payload_text(payload: bytes) -> str:
    """A payload as stored text: itself when it is UTF-8 (and does not start with ``b64:``), else ``b64:`` + base64."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(payload).decode("ascii")
    return "b64:" + base64.b64encode(payload).decode("ascii") if text.startswith("b64:") else text


def payload_bytes(text: str) -> bytes:
    """The payload bytes of a stored ``payload`` field (``payload_text`` undone)."""
    if text.startswith("b64:"):
        return base64.b64decode(text[4:])
    return text.encode("utf-8")


@point_maker(Alert)
def alert_point(a: Alert) -> Point:
    """One point per transition at its ``updated_at``; times as RFC 3339 strings, bags comma-joined."""
    return Point(
        "alert",
        (("kind", a.kind), ("severity", a.severity), ("site", a.site), ("subject", a.subject), ("unit", a.unit)),
        _present(
            ("id", a.id),
            ("state", a.state),
            ("started_at", format_time(a.started_at)),
            ("updated_at", format_time(a.updated_at)),
            ("message", a.message),
            ("affected_bags", ",".join(a.affected_bags)),
            ("resolved_at", None if a.resolved_at is None else format_time(a.resolved_at)),
            ("value", None if a.value is None else float(a.value)),
            ("acknowledged_at", None if a.acknowledged_at is None else format_time(a.acknowledged_at)),
            ("sensor", a.sensor),
            ("bag", a.bag),
            ("acknowledged_by", a.acknowledged_by),
            ("note", a.note),
            ("disposition", a.disposition),
            # the signature of the current disposition, and every acknowledgement as JSON (issue 17)
            ("signed_by", None if a.signature is None else a.signature.name),
            ("signed_at", None if a.signature is None else format_time(a.signature.at)),
            ("signature_meaning", None if a.signature is None else a.signature.meaning),
            ("history", _history_json(a)),
        ),
        to_millis(a.updated_at),
    )


def _history_json(a: Alert) -> str | None:
    if not a.history:
        return None
    return json.dumps([entry.to_payload() for entry in a.history], ensure_ascii=False, separators=(",", ":"))


@point_maker(NotificationAttempt)
def notification_point(n: NotificationAttempt) -> Point:
    """Ids and the target are fields (unbounded), ``error`` only when set."""
    return Point(
        "notification",
        (
            ("channel", n.channel),
            ("kind", n.kind),
            ("outcome", n.outcome),
            ("severity", n.severity),
            ("site", n.site),
            ("unit", n.unit),
        ),
        _present(
            ("alert_id", n.alert_id),
            ("target", n.target),
            ("purpose", n.purpose),
            ("tier", int(n.tier)),
            ("attempt", int(n.attempt)),
            ("error", n.error),
        ),
        to_millis(n.at),
    )


@point_maker(BagStatus)
def bag_status_point(b: BagStatus) -> Point:
    """A bag's timer at its deadline: ``state`` running or done, ``diluted_at`` as RFC 3339."""
    return Point(
        "bag_timer",
        (("bag", b.bag), ("site", b.site), ("unit", b.unit)),
        (("state", b.state), ("diluted_at", format_time(b.diluted_at))),
        to_millis(b.deadline),
    )


@point_maker(AuditEvent)
def audit_point(e: AuditEvent) -> Point:
    """Tag ``action`` (and ``chain`` for a rules partition's); int ``seq``; strings actor, subject, details,
    prev_hash, hash, mac (when set); at ``at``."""
    return Point(
        "audit",
        (("action", e.action), ("chain", e.chain or None)),
        (
            ("seq", int(e.seq)),
            ("actor", e.actor),
            ("subject", e.subject),
            ("details", e.details),
            ("prev_hash", e.prev_hash),
            ("hash", e.hash),
            *((("mac", e.mac),) if e.mac else ()),
        ),
        to_millis(e.at),
    )


@point_maker(Review)
def review_point(r: Review) -> Point:
    """Tags site, unit; strings by, full_name, meaning, note, local_date, window_from/to (RFC 3339), figures
    (JSON) and signature_id; at the signing time."""
    return Point(
        "review",
        (("site", r.site), ("unit", r.unit)),
        (
            ("by", r.by),
            ("full_name", r.full_name),
            ("meaning", r.meaning),
            ("note", r.note),
            ("local_date", r.local_date),
            ("window_from", format_time(r.window_from)),
            ("window_to", format_time(r.window_to)),
            ("figures", r.figures),
            ("signature_id", r.signature_id),
        ),
        to_millis(r.at),
    )


@point_maker(Rollup)
def rollup_point(r: Rollup) -> Point:
    """Measurement ``rollup_5m`` or ``rollup_1d`` at the interval's start; tags sensor, site, unit, kind;
    floats ``min``, ``max``, ``mean``, ``sum``; ints ``count`` and ``out_ms`` (time out of range)."""
    return Point(
        r.measurement,
        (("kind", r.kind), ("sensor", r.sensor), ("site", r.site), ("unit", r.unit)),
        (
            ("min", float(r.minimum)),
            ("max", float(r.maximum)),
            ("mean", float(r.mean)),
            ("sum", float(r.total)),
            ("count", int(r.count)),
            ("out_ms", int(r.out_ms)),
        ),
        to_millis(r.start),
    )
