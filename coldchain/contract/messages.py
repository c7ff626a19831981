"""The MQTT contract: topic parsing, payload models and rejections.

``MessageParser.parse`` turns one MQTT message into either the records it carries or a single
``Rejection`` with a reason; it never raises on input, whatever the bytes or topic. A message is
accepted or rejected whole (an array upload with one bad element is rejected entirely).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from coldchain.config import Sensor, Settings, Unit
from coldchain.core.records import (
    MAX_AGE,
    MAX_FUTURE,
    BagEvent,
    BagEventKind,
    Rejection,
    RejectReason,
    ShakeReading,
    TemperatureReading,
)

MAX_PAYLOAD_BYTES = 64 * 1024
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


_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
_PHYSICAL_FIELDS = frozenset({"celsius", "peak_g", "battery_pct", "seq"})


class RejectedMessage(Exception):
    """Internal: carries the reason out of the validation steps."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _classify(exc: ValidationError, where: str) -> RejectedMessage:
    errors = exc.errors(include_url=False)
    reason = RejectReason.INVALID_SCHEMA
    if any(error["type"] == "finite_number" for error in errors):
        reason = RejectReason.NOT_FINITE
    elif all(
        error["type"] in _RANGE_ERRORS and error["loc"] and error["loc"][0] in _PHYSICAL_FIELDS for error in errors
    ):
        reason = RejectReason.OUT_OF_RANGE
    parts = []
    for error in errors[:5]:
        field = ".".join(str(p) for p in error["loc"]) or "payload"
        got = error.get("input")
        shown = f" (got {json.dumps(got)[:60]})" if isinstance(got, int | float | str | bool) or got is None else ""
        parts.append(f"{field}: {error['msg'].removeprefix('Value error, ')}{shown}")
    return RejectedMessage(reason, where + "; ".join(parts))


@dataclass(frozen=True, slots=True)
class _Route:
    kind: Literal["temperature", "shake", "bag"]
    ident: str


class MessageParser:
    """Validates messages against the contract and the inventory. Thread-safe; no IO."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.mqtt.topic_prefix
        units = {unit.id: unit for unit in settings.units}
        self._units: dict[str, Unit] = units
        self._sensors: dict[str, tuple[Sensor, Unit]] = {s.id: (s, units[s.unit]) for s in settings.sensors}

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topic filters that carry inbound data (alerts, published by us, are not among them)."""
        return (f"{self.prefix}/sensors/+/+", f"{self.prefix}/bags/+/events")

    def parse(
        self, topic: str, payload: bytes, received_at: datetime
    ) -> list[TemperatureReading | ShakeReading | BagEvent] | Rejection:
        """The message's records, or why it was rejected. Never raises."""
        try:
            return self._parse(topic, payload, received_at)
        except RejectedMessage as rejected:
            return Rejection(rejected.reason, topic, rejected.detail, bytes(payload[:1024]), received_at)
        except Exception as exc:  # noqa: BLE001 - a parser bug must reject, not stop ingest
            detail = f"internal error while parsing: {type(exc).__name__}: {exc}"
            return Rejection(RejectReason.INVALID_SCHEMA, topic, detail, bytes(payload[:1024]), received_at)

    def _route(self, topic: str) -> _Route:
        head = self.prefix + "/"
        levels = topic[len(head) :].split("/") if topic.startswith(head) else []
        if len(levels) == 3 and levels[1]:
            if levels[0] == "sensors" and levels[2] in ("temperature", "shake"):
                return _Route(levels[2], levels[1])  # type: ignore[arg-type]
            if levels[0] == "bags" and levels[2] == "events":
                return _Route("bag", levels[1])
        raise RejectedMessage(
            RejectReason.UNKNOWN_TOPIC,
            f"topic is not {self.prefix}/sensors/<id>/temperature|shake or {self.prefix}/bags/<id>/events",
        )

    def _parse(
        self, topic: str, payload: bytes, received_at: datetime
    ) -> list[TemperatureReading | ShakeReading | BagEvent]:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise RejectedMessage(
                RejectReason.PAYLOAD_TOO_LARGE, f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
            )
        route = self._route(topic)
        sensor_unit: tuple[Sensor, Unit] | None = None
        if route.kind != "bag":
            sensor_unit = self._sensors.get(route.ident)
            if sensor_unit is None:
                raise RejectedMessage(RejectReason.UNKNOWN_SENSOR, f"sensor {route.ident!r} is not in the inventory")
            if sensor_unit[0].kind != route.kind:
                raise RejectedMessage(
                    RejectReason.WRONG_KIND,
                    f"sensor {route.ident!r} is a {sensor_unit[0].kind} sensor, not {route.kind}",
                )
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise RejectedMessage(RejectReason.INVALID_JSON, f"not JSON: {exc}"[:300]) from None
        items: list[Any]
        if isinstance(document, dict):
            items = [document]
        elif isinstance(document, list) and document:
            items = document
        else:
            raise RejectedMessage(RejectReason.INVALID_SCHEMA, "payload must be a JSON object or a non-empty array")
        records: list[TemperatureReading | ShakeReading | BagEvent] = []
        for index, item in enumerate(items):
            where = f"item {index}: " if len(items) > 1 else ""
            if not isinstance(item, dict):
                raise RejectedMessage(RejectReason.INVALID_SCHEMA, f"{where}expected a JSON object")
            record = self._record(route, sensor_unit, item, where)
            self._check_time(record.ts, received_at, where)
            records.append(record)
        return records

    def _record(
        self, route: _Route, sensor_unit: tuple[Sensor, Unit] | None, item: dict[str, Any], where: str
    ) -> TemperatureReading | ShakeReading | BagEvent:
        try:
            if route.kind == "temperature" and sensor_unit is not None:
                t = TemperaturePayload.model_validate(item)
                unit = sensor_unit[1]
                return TemperatureReading(route.ident, unit.id, unit.site, t.ts, t.celsius, t.seq, t.battery_pct)
            if route.kind == "shake" and sensor_unit is not None:
                s = ShakePayload.model_validate(item)
                unit = sensor_unit[1]
                return ShakeReading(route.ident, unit.id, unit.site, s.ts, s.peak_g, s.seq)
            b = BagEventPayload.model_validate(item)
        except ValidationError as exc:
            raise _classify(exc, where) from None
        return self.bag_event(route.ident, b, where)

    def bag_event(self, bag: str, payload: BagEventPayload, where: str = "") -> BagEvent:
        """A validated bag event placed in its unit (raises RejectedMessage for an unknown unit)."""
        unit = self._units.get(payload.unit) if payload.unit is not None else None
        if payload.unit is not None and unit is None:
            raise RejectedMessage(RejectReason.UNKNOWN_UNIT, f"{where}unit {payload.unit!r} is not in the inventory")
        event: BagEventKind = payload.event
        product = payload.product or (unit.profile if unit is not None else None)
        site = unit.site if unit is not None else None
        return BagEvent(bag, event, payload.ts, payload.unit, site, product, payload.lot, payload.by)

    @staticmethod
    def _check_time(ts: datetime, received_at: datetime, where: str) -> None:
        if ts > received_at + MAX_FUTURE:
            raise RejectedMessage(
                RejectReason.TS_IN_FUTURE,
                f"{where}ts {ts.isoformat()} is more than 5 minutes after arrival {received_at.isoformat()}",
            )
        if ts < received_at - MAX_AGE:
            raise RejectedMessage(
                RejectReason.TS_TOO_OLD,
                f"{where}ts {ts.isoformat()} is more than 30 days before arrival {received_at.isoformat()}",
            )
