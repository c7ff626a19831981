"""Shelly, by the topic's shape:

* Gen1 ``shellies/<id>/sensor/temperature``: a bare number in the unit the device is set to
  (``temperature_unit``); no time, so the arrival.
* Gen2+ ``<id>/events/rpc``: a JSON-RPC notification, ``NotifyStatus`` or ``NotifyFullStatus``,
  with ``params.ts`` (epoch seconds) and the component ``params["temperature:0"]`` (``field`` picks
  another), whose ``tC`` is the value. Other notifications on that topic (``NotifyEvent``, a status
  change without the component) carry no reading and are rejected with ``invalid_schema``.
* Gen2+ ``<id>/status/temperature:0`` (generic status updates): the component's status object,
  ``tC``; no time, so the arrival.
"""

from __future__ import annotations

from datetime import datetime

from coldchain.contract.formats.base import (
    DecodeError,
    DeviceMapping,
    Item,
    arrival,
    bare_number,
    load_object,
    to_celsius,
)
from coldchain.core.records import RejectReason

DEFAULT_FIELD = "temperature:0"
NOTIFICATIONS = ("NotifyStatus", "NotifyFullStatus")


def decode(topic: str, payload: bytes, received_at: datetime, mapping: DeviceMapping) -> list[Item]:
    """The reading of a Gen1 value, a Gen2+ notification or a Gen2+ component status."""
    if topic.endswith("/events/rpc"):
        return [_notification(payload, mapping)]
    if "/status/" in topic:
        status = load_object(payload, "a Shelly component status")
        return [{"ts": arrival(received_at), "celsius": _celsius(status, "")}]
    return [{"ts": arrival(received_at), "celsius": to_celsius(bare_number(payload), mapping.fahrenheit)}]


def _notification(payload: bytes, mapping: DeviceMapping) -> Item:
    frame = load_object(payload, "a Shelly RPC notification")
    method = frame.get("method")
    if method not in NOTIFICATIONS:
        raise DecodeError(
            RejectReason.INVALID_SCHEMA, f"method {str(method)[:40]!r} carries no status (NotifyStatus expected)"
        )
    params = frame.get("params")
    if not isinstance(params, dict):
        raise DecodeError(RejectReason.INVALID_SCHEMA, "params: missing")
    component = params.get(mapping.field)
    if not isinstance(component, dict):
        raise DecodeError(RejectReason.INVALID_SCHEMA, f"params.{mapping.field}: missing")
    if "ts" not in params:
        raise DecodeError(RejectReason.INVALID_SCHEMA, "params.ts: missing")
    return {"ts": params["ts"], "celsius": _celsius(component, f"params.{mapping.field}.")}


def _celsius(component: dict[str, object], where: str) -> object:
    if "tC" not in component:
        raise DecodeError(RejectReason.INVALID_SCHEMA, f"{where}tC: missing")
    return component["tC"]
