"""Device formats: one small decoder per payload format that off-the-shelf devices already speak.

``decoder(name)`` is the decoder of a ``[[sensors]]`` ``format``; ``default_field`` its ``field``
where the configuration leaves it empty. The formats' names, and the topics a sensor of each claims,
are the configuration's (``coldchain.config.inventory``), which checks them and cannot import this
package; a test keeps the two lists equal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from coldchain.contract.formats import esphome, json_path, shelly, tasmota, ttn, zigbee2mqtt
from coldchain.contract.formats.base import Availability, DecodeError, DeviceMapping, Item

Decoder = Callable[[str, bytes, datetime, DeviceMapping], "list[Item] | Availability"]

DECODERS: dict[str, Decoder] = {
    "zigbee2mqtt": zigbee2mqtt.decode,
    "tasmota": tasmota.decode,
    "shelly": shelly.decode,
    "esphome": esphome.decode,
    "ttn": ttn.decode,
    "json": json_path.decode,
}

_DEFAULT_FIELDS: dict[str, str] = {
    "zigbee2mqtt": zigbee2mqtt.DEFAULT_FIELD,
    "tasmota": tasmota.DEFAULT_FIELD,
    "shelly": shelly.DEFAULT_FIELD,
    "esphome": esphome.DEFAULT_FIELD,
    "ttn": ttn.DEFAULT_FIELD,
    "json": json_path.DEFAULT_FIELD,
}


def decoder(name: str) -> Decoder:
    """The decoder of format ``name`` (KeyError for ``coldchain`` or an unknown name)."""
    return DECODERS[name]


def default_field(name: str, kind: str) -> str:
    """The ``field`` a sensor of this format and kind reads when the configuration leaves it empty."""
    if name == "json" and kind == "shake":
        return "peak_g"
    return _DEFAULT_FIELDS[name]


__all__ = ["DECODERS", "Availability", "DecodeError", "Decoder", "DeviceMapping", "Item", "decoder", "default_field"]
