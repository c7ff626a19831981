"""Records to and from plain JSON-able dicts, for the spool and for dead letters.

Times travel as integer epoch milliseconds (the precision they are stored at), payload bytes as
latin-1 text so any byte survives the round trip.
"""

from __future__ import annotations

import json
from typing import Any

from coldchain.alert import Alert
from coldchain.records import (
    BagEvent,
    NotificationAttempt,
    Record,
    Rejection,
    RejectReason,
    ShakeReading,
    TemperatureReading,
    from_millis,
    to_millis,
)


def record_to_dict(record: Record) -> dict[str, Any]:
    """A JSON-able dict with a ``type`` key naming the record type."""
    match record:
        case TemperatureReading():
            return {
                "type": "temperature",
                "sensor": record.sensor,
                "unit": record.unit,
                "site": record.site,
                "ts": to_millis(record.ts),
                "celsius": record.celsius,
                "seq": record.seq,
                "battery_pct": record.battery_pct,
            }
        case ShakeReading():
            return {
                "type": "shake",
                "sensor": record.sensor,
                "unit": record.unit,
                "site": record.site,
                "ts": to_millis(record.ts),
                "peak_g": record.peak_g,
                "seq": record.seq,
            }
        case BagEvent():
            return {
                "type": "bag_event",
                "bag": record.bag,
                "event": record.event,
                "ts": to_millis(record.ts),
                "unit": record.unit,
                "site": record.site,
                "product": record.product,
                "lot": record.lot,
                "by": record.by,
            }
        case Alert():
            return {"type": "alert", **record.to_payload()}
        case Rejection():
            return {
                "type": "rejected",
                "reason": record.reason.value,
                "topic": record.topic,
                "detail": record.detail,
                "payload": record.payload.decode("latin-1"),
                "received_at": to_millis(record.received_at),
            }
        case NotificationAttempt():
            return {
                "type": "notification",
                "alert_id": record.alert_id,
                "kind": record.kind,
                "severity": record.severity,
                "site": record.site,
                "unit": record.unit,
                "target": record.target,
                "channel": record.channel,
                "purpose": record.purpose,
                "tier": record.tier,
                "outcome": record.outcome,
                "error": record.error,
                "attempt": record.attempt,
                "at": to_millis(record.at),
            }
    raise TypeError(f"not a record: {record!r}")


def record_from_dict(data: dict[str, Any]) -> Record:
    """The record a ``record_to_dict`` dict describes."""
    kind = data["type"]
    if kind == "temperature":
        return TemperatureReading(
            data["sensor"],
            data["unit"],
            data["site"],
            from_millis(data["ts"]),
            data["celsius"],
            data["seq"],
            data["battery_pct"],
        )
    if kind == "shake":
        return ShakeReading(
            data["sensor"], data["unit"], data["site"], from_millis(data["ts"]), data["peak_g"], data["seq"]
        )
    if kind == "bag_event":
        return BagEvent(
            data["bag"],
            data["event"],
            from_millis(data["ts"]),
            data["unit"],
            data["site"],
            data["product"],
            data["lot"],
            data["by"],
        )
    if kind == "alert":
        return Alert.from_payload(data)
    if kind == "rejected":
        return Rejection(
            RejectReason(data["reason"]),
            data["topic"],
            data["detail"],
            data["payload"].encode("latin-1"),
            from_millis(data["received_at"]),
        )
    if kind == "notification":
        return NotificationAttempt(
            data["alert_id"],
            data["kind"],
            data["severity"],
            data["site"],
            data["unit"],
            data["target"],
            data["channel"],
            data["purpose"],
            data["tier"],
            data["outcome"],
            data["error"],
            data["attempt"],
            from_millis(data["at"]),
        )
    raise ValueError(f"unknown record type {kind!r}")


def dumps(records: list[Record]) -> bytes:
    """A batch of records as compact JSON bytes."""
    return json.dumps([record_to_dict(r) for r in records], separators=(",", ":")).encode()


def loads(blob: bytes) -> list[Record]:
    """The batch ``dumps`` wrote."""
    return [record_from_dict(item) for item in json.loads(blob)]
