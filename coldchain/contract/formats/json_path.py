"""Any JSON: ``field`` is a dotted path to the value (``a.b.0.c``: object keys and array indexes);
``ts`` a dotted path to its time (RFC 3339 with an offset, or epoch seconds), empty for the arrival
time. The value is °C unless ``temperature_unit = "fahrenheit"``; for a shake sensor it is ``peak_g``."""

from __future__ import annotations

from datetime import datetime

from coldchain.contract.formats.base import DeviceMapping, Item, arrival, dig, load_json, to_celsius

DEFAULT_FIELD = "celsius"


def decode(topic: str, payload: bytes, received_at: datetime, mapping: DeviceMapping) -> list[Item]:
    """The value and time found at the configured paths."""
    document = load_json(payload)
    value = dig(document, mapping.field)
    ts = dig(document, mapping.ts) if mapping.ts else arrival(received_at)
    if mapping.kind == "shake":
        return [{"ts": ts, "peak_g": value}]
    return [{"ts": ts, "celsius": to_celsius(value, mapping.fahrenheit)}]
