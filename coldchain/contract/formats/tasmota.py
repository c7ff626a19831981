"""Tasmota: ``tele/<topic>/SENSOR`` every ``TelePeriod``, one JSON object per device.

``{"Time": "2021-04-26T10:01:34", "DS18B20": {"Id": "020692454681", "Temperature": 16.1},
"TempUnit": "C"}``: the value is the ``Temperature`` of the object ``field`` names (``DS18B20-2``,
``SHT3X``, …), or of the first object that holds one. ``TempUnit`` ``F`` is converted (the payload
says its unit, so ``temperature_unit`` is not needed). ``Time`` is the device's local time without
an offset, read in the sensor's ``timezone``; in the hour a DST change repeats, the earlier reading
of the two is taken.
"""

from __future__ import annotations

from datetime import datetime

from coldchain.contract.formats.base import DecodeError, DeviceMapping, Item, load_object, local_time, to_celsius
from coldchain.core.records import RejectReason

DEFAULT_FIELD = ""


def decode(topic: str, payload: bytes, received_at: datetime, mapping: DeviceMapping) -> list[Item]:
    """The reading of the chosen sensor object."""
    telemetry = load_object(payload, "a Tasmota SENSOR message")
    if mapping.field:
        chosen = telemetry.get(mapping.field)
        if not isinstance(chosen, dict) or "Temperature" not in chosen:
            raise DecodeError(RejectReason.INVALID_SCHEMA, f"{mapping.field}.Temperature: missing")
    else:
        found = [value for value in telemetry.values() if isinstance(value, dict) and "Temperature" in value]
        if not found:
            raise DecodeError(RejectReason.INVALID_SCHEMA, "no sensor object with a Temperature")
        chosen = found[0]
    unit = telemetry.get("TempUnit", "F" if mapping.fahrenheit else "C")
    if unit not in ("C", "F"):
        raise DecodeError(RejectReason.INVALID_SCHEMA, f"TempUnit must be C or F (got {str(unit)[:20]!r})")
    if "Time" not in telemetry:
        raise DecodeError(RejectReason.INVALID_SCHEMA, "Time: missing")
    return [
        {
            "ts": local_time(telemetry["Time"], mapping.timezone),
            "celsius": to_celsius(chosen["Temperature"], unit == "F"),
        }
    ]
