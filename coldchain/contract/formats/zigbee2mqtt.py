"""Zigbee2MQTT: ``zigbee2mqtt/<friendly name>`` carries the device's state as one JSON object.

Temperature probes publish ``temperature`` (°C) and ``battery`` (%); ``field`` picks another key
(``local_temperature``, ``device_temperature``). Shake: a vibration sensor such as the Aqara DJT11LM
publishes ``"vibration": true`` or ``"action": "vibration" | "tilt" | "drop"``
(zigbee-herdsman-converters ``DJT11LM_vibration``); that is a hit at the unit's agitation
threshold, and any other message of the sensor a reading of 0 g. The time is ``last_seen`` (ISO 8601,
or epoch milliseconds) when Zigbee2MQTT's ``last_seen`` option is on, else the arrival.

``<topic>/availability`` (``{"state": "online" | "offline"}``, or the legacy bare ``online`` /
``offline``) is the device's availability, which Zigbee2MQTT decides from its own pings.
"""

from __future__ import annotations

from datetime import datetime

from coldchain.contract.formats.base import (
    Availability,
    DecodeError,
    DeviceMapping,
    Item,
    arrival,
    is_number,
    load_json,
    load_object,
    to_celsius,
)
from coldchain.core.records import RejectReason

DEFAULT_FIELD = "temperature"
AVAILABILITY = "/availability"
SHAKE_ACTIONS = frozenset({"vibration", "tilt", "drop"})


def decode(topic: str, payload: bytes, received_at: datetime, mapping: DeviceMapping) -> list[Item] | Availability:
    """The message's reading (or the device's availability)."""
    if topic == mapping.topic + AVAILABILITY:
        return availability(payload)
    state = load_object(payload, "a Zigbee2MQTT message")
    item: Item = {"ts": _time(state.get("last_seen"), received_at)}
    if mapping.kind == "shake":
        action = state.get("action")
        hit = state.get("vibration") is True or (isinstance(action, str) and action in SHAKE_ACTIONS)
        item["peak_g"] = mapping.agitation_g if hit else 0.0
        return [item]
    if mapping.field not in state:
        raise DecodeError(RejectReason.INVALID_SCHEMA, f"{mapping.field}: missing")
    item["celsius"] = to_celsius(state[mapping.field], mapping.fahrenheit)
    battery = state.get("battery")
    if isinstance(battery, str):  # Zigbee2MQTT before 1.x sent "100.00"; the reading must not fail on it
        try:
            battery = float(battery)
        except ValueError:
            battery = None
    if battery is not None:
        item["battery_pct"] = battery
    return [item]


def _time(last_seen: object, received_at: datetime) -> object:
    if last_seen is None:
        return arrival(received_at)
    if is_number(last_seen):
        return float(last_seen) / 1000.0  # type: ignore[arg-type]  # the "epoch" option: milliseconds
    return last_seen


def availability(payload: bytes) -> Availability:
    """``{"state": "online"}`` (Zigbee2MQTT ≥ 1.32) or the legacy bare ``online``."""
    text = payload.strip()
    if text in (b"online", b"offline"):
        return Availability(text == b"online")
    document = load_json(payload)
    state = document.get("state") if isinstance(document, dict) else None
    if state not in ("online", "offline"):
        raise DecodeError(RejectReason.INVALID_SCHEMA, 'availability must be {"state": "online" | "offline"}')
    return Availability(state == "online")
