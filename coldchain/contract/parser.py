"""The MQTT contract's parser: an inbound message -> its records, or one rejection with its reason.

``MessageParser.parse`` turns one MQTT message into either the records it carries or a single
``Rejection`` with a reason; it never raises on input, whatever the bytes or topic. A message is
accepted or rejected whole (an array upload with one bad element is rejected entirely).

A sensor with a device ``format`` (CONTRACT §2a) publishes on its own configured topic: its
decoder (``coldchain.contract.formats``) maps the payload to the contract's values, which are then
validated and checked exactly like a contract payload.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from coldchain.config import Sensor, Settings, Unit
from coldchain.contract.formats import Availability, DecodeError, Decoder, DeviceMapping, decoder, default_field
from coldchain.contract.payloads import MAX_PAYLOAD_BYTES, BagEventPayload, ShakePayload, TemperaturePayload
from coldchain.contract.topics import InputRoute, Topics
from coldchain.core.records import (
    MAX_AGE,
    MAX_FUTURE,
    BagEvent,
    BagEventKind,
    Rejection,
    RejectReason,
    SensorAvailability,
    ShakeReading,
    TemperatureReading,
)
from coldchain.core.times import from_millis, to_millis

ParsedRecord = TemperatureReading | ShakeReading | BagEvent | SensorAvailability

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


class MessageParser:
    """Validates messages against the contract and the inventory. Thread-safe; no IO."""

    def __init__(self, settings: Settings) -> None:
        self.topics = Topics(settings.mqtt.topic_prefix)
        units = {unit.id: unit for unit in settings.units}
        self._units: dict[str, Unit] = units
        self._sensors: dict[str, tuple[Sensor, Unit]] = {s.id: (s, units[s.unit]) for s in settings.sensors}
        self._devices: dict[str, tuple[Decoder, DeviceMapping, Unit]] = {}
        for sensor in settings.sensors:
            if sensor.format == "coldchain":
                continue
            unit = units[sensor.unit]
            mapping = DeviceMapping(
                sensor=sensor.id,
                kind=sensor.kind,
                format=sensor.format,
                topic=sensor.topic,
                field=sensor.field or default_field(sensor.format, sensor.kind),
                ts=sensor.ts,
                timezone=ZoneInfo(sensor.timezone),
                fahrenheit=sensor.temperature_unit == "fahrenheit",
                agitation_g=settings.unit_profile(unit).agitation_g,
            )
            for topic in sensor.claimed_topics():
                self._devices[topic] = (decoder(sensor.format), mapping, unit)
        self._scanners: dict[str, str] = {scanner.id: scanner.site for scanner in settings.scanners}

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topic filters that carry inbound data (alerts, published by us, are not among them):
        the contract's, then every configured device topic."""
        return (*self.topics.inputs, *self._devices)

    @property
    def own_subscriptions(self) -> tuple[str, ...]:
        """The filters of this inventory's inputs only (a rules partition): each contract sensor's topic, each
        scanner's, the bag topics (which name no unit: events of other units are told apart after parsing)
        and every device topic."""
        sensors = [
            self.topics.sensor(sensor.id, sensor.kind)
            for sensor, _ in self._sensors.values()
            if sensor.format == "coldchain"
        ]
        scanners = [self.topics.scanner_bag_events(scanner, "+") for scanner in self._scanners]
        bags = (self.topics.bag_events("+"), self.topics.api_bag_events("+"))
        return (*sensors, *bags, *scanners, *self._devices)

    def parse(self, topic: str, payload: bytes, received_at: datetime) -> list[ParsedRecord] | Rejection:
        """The message's records, or why it was rejected. Never raises."""
        try:
            return self._parse(topic, payload, received_at)
        except RejectedMessage as rejected:
            return Rejection(rejected.reason, topic, rejected.detail, bytes(payload[:MAX_PAYLOAD_BYTES]), received_at)
        except Exception as exc:  # noqa: BLE001 - a parser bug must reject, not stop ingest
            detail = f"internal error while parsing: {type(exc).__name__}: {exc}"
            kept = bytes(payload[:MAX_PAYLOAD_BYTES])
            return Rejection(RejectReason.INVALID_SCHEMA, topic, detail, kept, received_at)

    def _route(self, topic: str) -> InputRoute:
        route = self.topics.route(topic)
        if route is None:
            raise RejectedMessage(RejectReason.UNKNOWN_TOPIC, f"topic is not {self.topics.described}")
        return route

    def _parse(self, topic: str, payload: bytes, received_at: datetime) -> list[ParsedRecord]:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise RejectedMessage(
                RejectReason.PAYLOAD_TOO_LARGE, f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD_BYTES}"
            )
        device = self._devices.get(topic)
        if device is not None:
            return self._device(topic, payload, received_at, *device)
        route = self._route(topic)
        sensor_unit: tuple[Sensor, Unit] | None = None
        if route.kind != "bag":
            sensor_unit = self._sensors.get(route.ident)
            if sensor_unit is None:
                raise RejectedMessage(RejectReason.UNKNOWN_SENSOR, f"sensor {route.ident!r} is not in the inventory")
            if sensor_unit[0].format != "coldchain":
                raise RejectedMessage(
                    RejectReason.UNKNOWN_SENSOR,
                    f"sensor {route.ident!r} speaks {sensor_unit[0].format} on its own topic "
                    f"{sensor_unit[0].topic!r}, not the contract's",
                )
            if sensor_unit[0].kind != route.kind:
                raise RejectedMessage(
                    RejectReason.WRONG_KIND,
                    f"sensor {route.ident!r} is a {sensor_unit[0].kind} sensor, not {route.kind}",
                )
        elif route.scanner is not None and route.scanner not in self._scanners:
            raise RejectedMessage(RejectReason.UNKNOWN_SCANNER, f"scanner {route.scanner!r} is not in the inventory")
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
        records: list[ParsedRecord] = []
        for index, item in enumerate(items):
            where = f"item {index}: " if len(items) > 1 else ""
            if not isinstance(item, dict):
                raise RejectedMessage(RejectReason.INVALID_SCHEMA, f"{where}expected a JSON object")
            record = self._record(route, sensor_unit[1] if sensor_unit else None, item, where)
            self._check_time(record.ts, received_at, where)
            records.append(record)
        return records

    def _device(
        self, topic: str, payload: bytes, received_at: datetime, decode: Decoder, mapping: DeviceMapping, unit: Unit
    ) -> list[ParsedRecord]:
        """A device format's message: decoded to the contract's values, then validated like the contract's."""
        try:
            decoded = decode(topic, payload, received_at, mapping)
        except DecodeError as exc:
            raise RejectedMessage(exc.reason, f"{mapping.format}: {exc.detail}") from None
        if isinstance(decoded, Availability):
            return [
                SensorAvailability(
                    mapping.sensor, unit.id, unit.site, from_millis(to_millis(received_at)), decoded.online
                )
            ]
        route = InputRoute(mapping.kind, mapping.sensor)
        records: list[ParsedRecord] = []
        for item in decoded:
            record = self._record(route, unit, item, f"{mapping.format}: ")
            self._check_time(record.ts, received_at, "")
            records.append(record)
        return records

    def _record(
        self, route: InputRoute, unit: Unit | None, item: dict[str, Any], where: str
    ) -> TemperatureReading | ShakeReading | BagEvent:
        try:
            if route.kind == "temperature" and unit is not None:
                t = TemperaturePayload.model_validate(item)
                return TemperatureReading(route.ident, unit.id, unit.site, t.ts, t.celsius, t.seq, t.battery_pct)
            if route.kind == "shake" and unit is not None:
                s = ShakePayload.model_validate(item)
                return ShakeReading(route.ident, unit.id, unit.site, s.ts, s.peak_g, s.seq)
            b = BagEventPayload.model_validate(item)
        except ValidationError as exc:
            raise _classify(exc, where) from None
        event = self.bag_event(route.ident, b, where)
        if route.scanner is not None:
            site = self._scanners[route.scanner]
            if event.site is not None and event.site != site:
                raise RejectedMessage(
                    RejectReason.UNKNOWN_UNIT,
                    f"{where}unit {event.unit!r} is at site {event.site!r}, not at scanner {route.scanner!r}'s"
                    f" {site!r}",
                )
            return replace(event, source=f"scanner:{route.scanner}")
        return replace(event, source=f"api:{event.by}" if route.api else "mqtt")

    def bag_event_body(self, bag: str, body: dict[str, Any]) -> BagEvent:
        """A bag event sent as a JSON object (the API, ``coldchain bag``): the contract's checks and words,
        raising RejectedMessage with the reason and what was wrong."""
        try:
            payload = BagEventPayload.model_validate(body)
        except ValidationError as exc:
            raise _classify(exc, "") from None
        return self.bag_event(bag, payload)

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
