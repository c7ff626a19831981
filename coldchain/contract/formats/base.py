"""What every device decoder shares: the sensor's mapping, the decoder's result, and small helpers.

A decoder turns one message of its device's own format into the contract's intermediate values —
dicts shaped like the contract payloads (``{"ts", "celsius", "battery_pct"}`` or ``{"ts",
"peak_g"}``) — which ``MessageParser`` then validates exactly as a contract payload, so the same
rejection reasons apply: the decoder only finds the values, it does not judge them. A number that
is NaN stays NaN (``not_finite``), a value that is not a number stays what it is
(``invalid_schema``), a timestamp is handed on as the payload wrote it (RFC 3339 or epoch seconds)
or as the arrival time where the format has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from coldchain.core.records import RejectReason

Item = dict[str, object]
"""One contract-shaped payload object, before validation."""


@dataclass(frozen=True, slots=True)
class DeviceMapping:
    """A sensor's mapping, as configured (``[[sensors]]`` ``format``, ``topic``, ``field``, …), resolved."""

    sensor: str
    kind: Literal["temperature", "shake"]
    format: str
    topic: str
    field: str
    """The value to take; already the format's default where the configuration left it empty."""
    ts: str
    timezone: tzinfo
    fahrenheit: bool
    agitation_g: float
    """The unit's agitation threshold: a device that reports only "it moved" reports this peak."""


@dataclass(frozen=True, slots=True)
class Availability:
    """A device's own online/offline report (Zigbee2MQTT ``<topic>/availability``)."""

    online: bool


class DecodeError(Exception):
    """The message cannot be mapped: its reason (one of the contract's) and what was wrong."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def load_json(payload: bytes) -> Any:
    """The parsed payload, or ``invalid_json``."""
    try:
        return json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise DecodeError(RejectReason.INVALID_JSON, f"not JSON: {exc}"[:300]) from None


def load_object(payload: bytes, what: str) -> dict[str, Any]:
    """The payload as a JSON object, or ``invalid_json`` / ``invalid_schema``."""
    document = load_json(payload)
    if not isinstance(document, dict):
        raise DecodeError(RejectReason.INVALID_SCHEMA, f"{what} must be a JSON object")
    return document


def bare_number(payload: bytes) -> object:
    """A payload that is one number as text (ESPHome, Shelly Gen1): the float, NaN included
    (``nan`` is what ESPHome sends for a sensor without a state); ``invalid_schema`` otherwise."""
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        return float(text)
    except ValueError:
        raise DecodeError(
            RejectReason.INVALID_SCHEMA, f"payload must be a number as text (got {text[:40]!r})"
        ) from None


def dig(document: object, path: str) -> object:
    """The value at a dotted path (``a.b.0.c``: keys of objects, indexes of arrays), or ``invalid_schema``."""
    value = document
    walked: list[str] = []
    for step in path.split("."):
        walked.append(step)
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise DecodeError(RejectReason.INVALID_SCHEMA, f"{'.'.join(walked)}: missing")
    return value


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def to_celsius(value: object, fahrenheit: bool) -> object:
    """Fahrenheit converted where the value is a number; anything else is left for validation to refuse."""
    if fahrenheit and is_number(value):
        return (float(value) - 32.0) * 5.0 / 9.0  # type: ignore[arg-type]
    return value


def arrival(received_at: datetime) -> str:
    """The arrival time as the reading's ``ts``, for formats that carry none."""
    return received_at.isoformat()


def local_time(value: object, zone: tzinfo) -> object:
    """A time written without an offset (Tasmota's ``Time``) read in ``zone``; times with an offset and
    anything that is not a time are left for validation."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        return value
    return parsed.replace(tzinfo=zone).isoformat()
