"""Records as InfluxDB line protocol, millisecond precision: pure functions, no I/O.

Schema (one measurement per record type, tags in key order, timestamps in epoch milliseconds):

- ``temperature,sensor=…,site=…,unit=… celsius=4.0,seq=1031i,battery_pct=87.0 <ts>``
- ``shake,sensor=…,site=…,unit=… peak_g=0.7,seq=12i <ts>``
- ``bag_event,bag=…,site=…,unit=… event="diluted",product="…",lot="…",by="…" <ts>``
- ``rejected,reason=… topic="…",detail="…",payload="…" <received_at>``
- ``alert,kind=…,severity=…,site=…,subject=…,unit=… id="…",state="open",… <updated_at>``
- ``notification,channel=…,kind=…,outcome=…,severity=…,site=…,unit=… alert_id="…",target="…",purpose="…",``
  ``tier=1i,attempt=2i,error="…" <at>``

Optional fields (None) and empty tags are left out. Float fields are written as ``repr(float(x))``
(``4.0``, ``1e+16``) and integer fields with the ``i`` suffix, whatever Python type the caller
passed, so a field's type never depends on the value (an int ``celsius`` is still ``4.0``, never
``4i``, which would conflict with the float field for good).

Text is escaped so that one point is one line and InfluxDB 1.x reads back what was written, except
what line protocol or InfluxQL cannot carry (the first two normalised as telegraf does):

- a line feed or carriage return is stored as the two characters ``\\n`` or ``\\r``;
- trailing backslashes of a tag value are dropped (1.x cannot parse a tag value ending in one);
- U+0000 is dropped from tag values (InfluxQL cannot express it, so no query could select it).

``encode`` dispatches on the record's type through ``ENCODERS``; a new record type needs one
function decorated with ``@encoder(ItsType)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

from coldchain.alert import Alert, format_time
from coldchain.records import (
    AuditEvent,
    BagEvent,
    BagStatus,
    NotificationAttempt,
    Record,
    Rejection,
    ShakeReading,
    TemperatureReading,
    to_millis,
)

PAYLOAD_LIMIT = 1024
"""Bytes of a rejected message's payload kept in measurement ``rejected``."""

ENCODERS: dict[type, Callable[[Any], str]] = {}
"""Line encoder of each record type."""

_R = TypeVar("_R")

# Tag values: comma, equals and space are escaped; a backslash stays literal because InfluxDB 1.x
# only unescapes "\,", "\=" and "\ " in tags (so "\\" would be stored as two backslashes).
_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\0": None})
# String field values: backslash and double quote are escaped; 1.x unescapes both.
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\\\n", "\r": "\\\\r"})
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})


def escape_measurement(name: str) -> str:
    """A measurement name as line protocol (comma and space escaped)."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(value: str) -> str:
    """A tag key or value as line protocol; "" when nothing representable is left (omit the tag)."""
    if "," in value or "=" in value or " " in value or "\n" in value or "\r" in value or "\0" in value:
        value = value.translate(_TAG_ESCAPES)
    if value.endswith("\\"):
        value = value.rstrip("\\")
    return value


def stored_tag_value(value: str) -> str:
    """The value InfluxDB keeps for a tag written through ``escape_tag`` (to filter on it)."""
    return value.replace("\n", "\\n").replace("\r", "\\r").replace("\0", "").rstrip("\\")


def escape_string(value: str) -> str:
    """A string field value as line protocol, with its double quotes."""
    if '"' in value or "\\" in value or "\n" in value or "\r" in value:
        value = value.translate(_STRING_ESCAPES)
    return f'"{value}"'


@lru_cache(maxsize=16384)
def series_key(measurement: str, tags: tuple[tuple[str, str | None], ...]) -> str:
    """``measurement,k=v,…`` with tags sorted by key and empty or None values left out.

    Cached: a fleet has a few thousand series, and each one's key is escaped once.
    """
    parts = [escape_measurement(measurement)]
    for key, value in sorted(tags):
        if value:
            escaped = escape_tag(value)
            if escaped:
                parts.append(f"{escape_tag(key)}={escaped}")
    return ",".join(parts)


def encoder(record_type: type[_R]) -> Callable[[Callable[[_R], str]], Callable[[_R], str]]:
    """Register the decorated function as the line encoder of ``record_type``."""

    def register(function: Callable[[_R], str]) -> Callable[[_R], str]:
        ENCODERS[record_type] = function
        return function

    return register


def encode(record: Record) -> str:
    """One record as one line of line protocol, without a trailing newline."""
    try:
        function = ENCODERS[type(record)]
    except KeyError:
        raise TypeError(f"no line protocol encoder for {type(record).__name__}") from None
    return function(record)


def encode_batch(records: Iterable[Record]) -> bytes:
    """Records as a newline-separated UTF-8 body for ``/write``."""
    text = "\n".join(map(encode, records))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from a JSON "\ud800" escape) become "?"
        return text.encode("utf-8", "replace")


@encoder(TemperatureReading)
def encode_temperature(r: TemperatureReading) -> str:
    """A temperature reading: float ``celsius``, optional int ``seq`` and float ``battery_pct``."""
    fields = f"celsius={float(r.celsius)!r}"
    if r.seq is not None:
        fields += f",seq={int(r.seq)}i"
    if r.battery_pct is not None:
        fields += f",battery_pct={float(r.battery_pct)!r}"
    key = series_key("temperature", (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)))
    return f"{key} {fields} {to_millis(r.ts)}"


@encoder(ShakeReading)
def encode_shake(r: ShakeReading) -> str:
    """A shake reading: float ``peak_g``, optional int ``seq``."""
    fields = f"peak_g={float(r.peak_g)!r}"
    if r.seq is not None:
        fields += f",seq={int(r.seq)}i"
    key = series_key("shake", (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)))
    return f"{key} {fields} {to_millis(r.ts)}"


@encoder(BagEvent)
def encode_bag_event(r: BagEvent) -> str:
    """A bag event: string fields ``event``, ``product``, ``lot``, ``by`` (None left out)."""
    fields = f"event={escape_string(r.event)}"
    if r.product is not None:
        fields += f",product={escape_string(r.product)}"
    if r.lot is not None:
        fields += f",lot={escape_string(r.lot)}"
    if r.by is not None:
        fields += f",by={escape_string(r.by)}"
    key = series_key("bag_event", (("bag", r.bag), ("site", r.site), ("unit", r.unit)))
    return f"{key} {fields} {to_millis(r.ts)}"


@encoder(Rejection)
def encode_rejection(r: Rejection) -> str:
    """A rejected message: its topic, the reason in words and the first 1024 bytes of its payload."""
    payload = r.payload[:PAYLOAD_LIMIT].decode("utf-8", errors="replace")
    fields = f"topic={escape_string(r.topic)},detail={escape_string(r.detail)},payload={escape_string(payload)}"
    return f"{series_key('rejected', (('reason', str(r.reason)),))} {fields} {to_millis(r.received_at)}"


@encoder(Alert)
def encode_alert(a: Alert) -> str:
    """An alert state: one point per transition, at its ``updated_at``; times as RFC 3339 strings."""
    fields = [
        f"id={escape_string(a.id)}",
        f"state={escape_string(a.state)}",
        f"started_at={escape_string(format_time(a.started_at))}",
        f"updated_at={escape_string(format_time(a.updated_at))}",
        f"message={escape_string(a.message)}",
        f"affected_bags={escape_string(','.join(a.affected_bags))}",
    ]
    if a.resolved_at is not None:
        fields.append(f"resolved_at={escape_string(format_time(a.resolved_at))}")
    if a.value is not None:
        fields.append(f"value={float(a.value)!r}")
    if a.acknowledged_at is not None:
        fields.append(f"acknowledged_at={escape_string(format_time(a.acknowledged_at))}")
    for name in ("sensor", "bag", "acknowledged_by", "note", "disposition"):
        value = getattr(a, name)
        if value is not None:
            fields.append(f"{name}={escape_string(value)}")
    tags = (("kind", a.kind), ("severity", a.severity), ("site", a.site), ("subject", a.subject), ("unit", a.unit))
    return f"{series_key('alert', tags)} {','.join(fields)} {to_millis(a.updated_at)}"


@encoder(NotificationAttempt)
def encode_notification(n: NotificationAttempt) -> str:
    """A delivery attempt: ids and the target as strings (not tags: unbounded), ``error`` only when set."""
    fields = [
        f"alert_id={escape_string(n.alert_id)}",
        f"target={escape_string(n.target)}",
        f"purpose={escape_string(n.purpose)}",
        f"tier={int(n.tier)}i",
        f"attempt={int(n.attempt)}i",
    ]
    if n.error is not None:
        fields.append(f"error={escape_string(n.error)}")
    tags = (
        ("channel", n.channel),
        ("kind", n.kind),
        ("outcome", n.outcome),
        ("severity", n.severity),
        ("site", n.site),
        ("unit", n.unit),
    )
    return f"{series_key('notification', tags)} {','.join(fields)} {to_millis(n.at)}"


@encoder(BagStatus)
def encode_bag_status(b: BagStatus) -> str:
    """A bag's timer at its deadline: ``state`` running or done, ``diluted_at`` as RFC 3339."""
    key = series_key("bag_timer", (("bag", b.bag), ("site", b.site), ("unit", b.unit)))
    fields = f"state={escape_string(b.state)},diluted_at={escape_string(format_time(b.diluted_at))}"
    return f"{key} {fields} {to_millis(b.deadline)}"


@encoder(AuditEvent)
def encode_audit(e: AuditEvent) -> str:
    """An audit event: tag ``action``; int ``seq``; strings actor, subject, details, prev_hash, hash."""
    fields = (
        f"seq={int(e.seq)}i,actor={escape_string(e.actor)},subject={escape_string(e.subject)},"
        f"details={escape_string(e.details)},prev_hash={escape_string(e.prev_hash)},hash={escape_string(e.hash)}"
    )
    return f"{series_key('audit', (('action', e.action),))} {fields} {to_millis(e.at)}"
