"""ESPHome: ``<node>/sensor/<name>/state`` carries the value alone, as text (``4.50``; ``nan`` while
the sensor has no state, rejected as ``not_finite``), in the unit the sensor is configured for
(``temperature_unit``). No time: the arrival time is the reading's."""

from __future__ import annotations

from datetime import datetime

from coldchain.contract.formats.base import DeviceMapping, Item, arrival, bare_number, to_celsius

DEFAULT_FIELD = ""


def decode(topic: str, payload: bytes, received_at: datetime, mapping: DeviceMapping) -> list[Item]:
    """The reading, timed at arrival."""
    return [{"ts": arrival(received_at), "celsius": to_celsius(bare_number(payload), mapping.fahrenheit)}]
