"""The contract's payload models (CONTRACT §2): what a sensor, a scanner or the API sends, validated strictly."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MAX_PAYLOAD_BYTES = 64 * 1024

MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 4096
"""The MQTT Maximum Packet Size coldchain announces (and deploy's mosquitto enforces): the payload
limit plus room for the topic, the fixed header and properties. A bigger packet is refused by the
broker at the publisher; a payload between the two limits arrives and is rejected (and recorded)."""


_EPOCH_MIN = -62_135_596_800  # 0001-01-01


_EPOCH_MAX = 253_402_300_799  # 9999-12-31


def parse_timestamp(value: object) -> datetime:
    """RFC 3339 with an offset or ``Z``, or epoch seconds; returned in UTC, truncated to the ms."""
    if isinstance(value, bool):
        raise ValueError("ts must be an RFC 3339 string or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not _EPOCH_MIN <= value <= _EPOCH_MAX:
            raise ValueError("ts epoch seconds out of range")
        ts = datetime.fromtimestamp(0, tz=UTC) + timedelta(milliseconds=round(value * 1000))
        return ts
    if not isinstance(value, str):
        raise ValueError("ts must be an RFC 3339 string or epoch seconds")
    if len(value) < 20 or value[10] not in "Tt ":
        raise ValueError(f"ts {value[:40]!r} is not RFC 3339 (like 2026-11-30T02:10:00Z)")
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T", 1))
    except ValueError as exc:
        raise ValueError(f"ts {value[:40]!r} is not RFC 3339 (like 2026-11-30T02:10:00Z)") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"ts {value[:40]!r} has no offset; add Z or +hh:mm")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("ts out of range") from exc
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]


class _Payload(BaseModel):
    # strict: "4.7" is not a number; extra keys are ignored so new firmware fields do no harm
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class TemperaturePayload(_Payload):
    """``<prefix>/sensors/<id>/temperature``."""

    ts: Timestamp
    celsius: float = Field(ge=-100, le=100, allow_inf_nan=False)
    seq: int | None = Field(default=None, ge=0, le=2**63 - 1)
    battery_pct: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)


class ShakePayload(_Payload):
    """``<prefix>/sensors/<id>/shake``: peak dynamic acceleration in g, gravity removed."""

    ts: Timestamp
    peak_g: float = Field(ge=0, le=1000, allow_inf_nan=False)
    seq: int | None = Field(default=None, ge=0, le=2**63 - 1)


class BagEventPayload(_Payload):
    """``<prefix>/bags/<bag_id>/events`` and ``POST /api/bags/<bag_id>/events``."""

    ts: Timestamp
    event: Literal["diluted", "infusion_started", "infusion_completed", "discarded"]
    unit: str | None = Field(default=None, min_length=1, max_length=200)
    product: str | None = Field(default=None, min_length=1, max_length=200)
    lot: str | None = Field(default=None, max_length=200)
    by: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _unit_for_dilution(self) -> BagEventPayload:
        if self.event == "diluted" and self.unit is None:
            raise ValueError("a 'diluted' event needs 'unit'")
        return self
