"""The Things Stack v3 uplinks: ``v3/<app>@<tenant>/devices/<device>/up``.

The value is ``uplink_message.decoded_payload.<field>`` (default ``temperature``; ``TempC_SHT`` or
``TempC_DS`` for a Dragino LHT65), as the application's payload formatter decoded it. Some formatters
emit numbers as strings (``"4.50"``): for this format only, a numeric string is read as its number.
The time is the first gateway's ``uplink_message.rx_metadata[0].time``, else
``uplink_message.received_at``, else the message's ``received_at`` (network server times).
"""

from __future__ import annotations

import math
from datetime import datetime

from coldchain.contract.formats.base import DecodeError, DeviceMapping, Item, dig, load_object, to_celsius
from coldchain.core.records import RejectReason

DEFAULT_FIELD = "temperature"


def decode(topic: str, payload: bytes, received_at: datetime, mapping: DeviceMapping) -> list[Item]:
    """The uplink's reading, at the gateway's time."""
    message = load_object(payload, "a The Things Stack uplink")
    uplink = message.get("uplink_message")
    if not isinstance(uplink, dict):
        raise DecodeError(RejectReason.INVALID_SCHEMA, "uplink_message: missing")
    value = dig(uplink, f"decoded_payload.{mapping.field}")
    return [{"ts": _time(message, uplink), "celsius": to_celsius(_number(value), mapping.fahrenheit)}]


def _number(value: object) -> object:
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return value  # left for validation: invalid_schema
        return number if math.isfinite(number) else value
    return value


def _time(message: dict[str, object], uplink: dict[str, object]) -> object:
    gateways = uplink.get("rx_metadata")
    if isinstance(gateways, list) and gateways and isinstance(gateways[0], dict) and "time" in gateways[0]:
        return gateways[0]["time"]
    for received in (uplink.get("received_at"), message.get("received_at")):
        if received is not None:
            return received
    raise DecodeError(RejectReason.INVALID_SCHEMA, "no rx_metadata[0].time or received_at")
