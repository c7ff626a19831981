"""The MQTT contract: topics, payloads, timestamps and every rejection reason of CONTRACT §3."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.config import Sensor, Settings, Unit
from coldchain.contract.parser import MessageParser
from coldchain.contract.payloads import MAX_PAYLOAD_BYTES
from coldchain.core.records import BagEvent, Rejection, RejectReason, ShakeReading, TemperatureReading

NOW = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)
TS = "2026-11-30T02:09:00Z"
T = "coldchain/sensors/t-001/temperature"
S = "coldchain/sensors/s-001/shake"
B = "coldchain/bags/B-0042/events"

PARSER = MessageParser(
    Settings(
        units=[Unit(id="fridge-a", site="main-pharmacy", name="Infusion fridge A")],
        sensors=[
            Sensor(id="t-001", unit="fridge-a", kind="temperature"),
            Sensor(id="s-001", unit="fridge-a", kind="shake"),
        ],
    )
)


def parse(topic: str, payload: object) -> list[TemperatureReading | ShakeReading | BagEvent] | Rejection:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return PARSER.parse(topic, raw, NOW)


def test_temperature_reading_is_placed_in_its_unit() -> None:
    """A reading carries its sensor's unit and site from the inventory, the ts in UTC at ms precision."""
    result = parse(T, {"ts": "2026-11-30T03:09:00.123456+01:00", "celsius": 4.7, "seq": 1031, "battery_pct": 88})
    assert result == [
        TemperatureReading(
            "t-001", "fridge-a", "main-pharmacy", datetime(2026, 11, 30, 2, 9, 0, 123000, tzinfo=UTC), 4.7, 1031, 88.0
        )
    ]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-30T02:09:00Z", datetime(2026, 11, 30, 2, 9, tzinfo=UTC)),  # Z
        ("2026-11-30t02:09:00z", datetime(2026, 11, 30, 2, 9, tzinfo=UTC)),  # RFC 3339 allows lower case
        ("2026-11-30T04:09:00+02:00", datetime(2026, 11, 30, 2, 9, tzinfo=UTC)),  # offset converted
        (1796004540, datetime(2026, 11, 30, 2, 9, tzinfo=UTC)),  # epoch seconds int
        (1796004540.25, datetime(2026, 11, 30, 2, 9, 0, 250000, tzinfo=UTC)),  # epoch float keeps ms
    ],
)
def test_timestamp_forms(ts: object, expected: datetime) -> None:
    """RFC 3339 with offset or Z and epoch seconds (int or float) are all accepted."""
    result = parse(T, {"ts": ts, "celsius": 5.0})
    assert isinstance(result, list)
    assert result[0].ts == expected


def test_array_upload_is_accepted_whole() -> None:
    """A buffered upload (a JSON array) yields every reading."""
    items = [{"ts": f"2026-11-30T01:{m:02d}:00Z", "celsius": 4.0 + m / 10} for m in range(30)]
    result = parse(T, items)
    assert isinstance(result, list) and len(result) == 30


def test_shake_and_bag_event() -> None:
    """Shake readings and bag events follow their schemas; product defaults to the unit's profile."""
    shake = parse(S, {"ts": TS, "peak_g": 0.04, "seq": 77})
    assert shake == [
        ShakeReading("s-001", "fridge-a", "main-pharmacy", datetime(2026, 11, 30, 2, 9, tzinfo=UTC), 0.04, 77)
    ]
    bag = parse(B, {"ts": TS, "event": "diluted", "unit": "fridge-a", "lot": "L123", "by": "j.doe"})
    assert isinstance(bag, list)
    assert bag[0].product == "natalizumab" and bag[0].site == "main-pharmacy" and bag[0].bag == "B-0042"
    started = parse(B, {"ts": TS, "event": "infusion_started", "by": "j.doe"})
    assert isinstance(started, list) and started[0].unit is None


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (T, b"not json", RejectReason.INVALID_JSON),  # not JSON at all
        (T, b'{"ts": "2026-11-30T02:09:00Z", "celsius": NaN}', RejectReason.NOT_FINITE),  # NaN literal
        (T, b'{"ts": "2026-11-30T02:09:00Z", "celsius": Infinity}', RejectReason.NOT_FINITE),  # Infinity literal
        (T, b'{"ts": "2026-11-30T02:09:00Z", "celsius": 1e999}', RejectReason.NOT_FINITE),  # overflows to inf
        (T, {"ts": TS, "celsius": 100.5}, RejectReason.OUT_OF_RANGE),  # above the physical range
        (T, {"ts": TS, "celsius": -100.5}, RejectReason.OUT_OF_RANGE),  # below it
        (S, {"ts": TS, "peak_g": -0.1}, RejectReason.OUT_OF_RANGE),  # negative peak_g
        (T, {"ts": TS, "celsius": "4.7"}, RejectReason.INVALID_SCHEMA),  # a string is not a number
        (T, {"ts": TS, "celsius": True}, RejectReason.INVALID_SCHEMA),  # nor is a boolean
        (T, {"ts": TS}, RejectReason.INVALID_SCHEMA),  # celsius missing
        (T, {"ts": "2026-11-30T02:09:00", "celsius": 4.0}, RejectReason.INVALID_SCHEMA),  # no offset
        (T, {"ts": "yesterday", "celsius": 4.0}, RejectReason.INVALID_SCHEMA),  # not a time
        (T, [], RejectReason.INVALID_SCHEMA),  # empty upload
        (T, 4.7, RejectReason.INVALID_SCHEMA),  # a bare number
        (T, [{"ts": TS, "celsius": 4.0}, {"ts": TS, "celsius": 400}], RejectReason.OUT_OF_RANGE),  # never half-stored
        (T, {"ts": "2026-11-30T02:15:01Z", "celsius": 4.0}, RejectReason.TS_IN_FUTURE),  # 5 min + 1 s ahead
        (T, {"ts": "2026-10-31T02:09:59Z", "celsius": 4.0}, RejectReason.TS_TOO_OLD),  # 30 days + 1 s old
        ("coldchain/sensors/t-999/temperature", {"ts": TS, "celsius": 4.0}, RejectReason.UNKNOWN_SENSOR),
        ("coldchain/sensors/t-001/shake", {"ts": TS, "peak_g": 0.1}, RejectReason.WRONG_KIND),  # not its kind
        ("coldchain/sensors/t-001/humidity", {"ts": TS}, RejectReason.UNKNOWN_TOPIC),
        ("other/sensors/t-001/temperature", {"ts": TS, "celsius": 4.0}, RejectReason.UNKNOWN_TOPIC),
        (B, {"ts": TS, "event": "diluted"}, RejectReason.INVALID_SCHEMA),  # diluted needs its unit
        (B, {"ts": TS, "event": "shaken", "unit": "fridge-a"}, RejectReason.INVALID_SCHEMA),  # unknown event
        (B, {"ts": TS, "event": "diluted", "unit": "fridge-q"}, RejectReason.UNKNOWN_UNIT),
        (T, b" " * (MAX_PAYLOAD_BYTES + 1), RejectReason.PAYLOAD_TOO_LARGE),  # over 64 KiB
    ],
)
def test_rejections(topic: str, payload: object, reason: RejectReason) -> None:
    """Each rejection class of CONTRACT §3 is recognised, with a reason and a readable detail."""
    result = parse(topic, payload)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result.detail
    assert result.detail and result.topic == topic
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    assert result.payload == raw[:MAX_PAYLOAD_BYTES], "the whole payload is kept, for replay"


@pytest.mark.parametrize(
    ("ts", "accepted"),
    [
        ("2026-11-30T02:15:00Z", True),  # exactly 5 minutes ahead is allowed
        ("2026-11-30T02:15:00.001Z", False),  # one millisecond more is not
        ("2026-10-31T02:10:00Z", True),  # exactly 30 days old is allowed
        ("2026-10-31T02:09:59.999Z", False),  # one millisecond older is not
    ],
)
def test_time_window_boundaries(ts: str, accepted: bool) -> None:
    """The 5-minute future and 30-day past limits are inclusive."""
    assert isinstance(parse(T, {"ts": ts, "celsius": 4.0}), list) is accepted


def test_exactly_64_kib_is_accepted() -> None:
    """64 KiB is the limit, not one byte less."""
    item = json.dumps({"ts": TS, "celsius": 4.0}).encode()
    payload = item + b" " * (MAX_PAYLOAD_BYTES - len(item))
    assert len(payload) == MAX_PAYLOAD_BYTES
    assert isinstance(PARSER.parse(T, payload, NOW), list)


topics = st.one_of(
    st.text(max_size=60),
    st.sampled_from([T, S, B, "coldchain/sensors/t-001/", "coldchain/bags//events", "coldchain"]),
    st.builds(lambda a, b: f"coldchain/{a}/{b}", st.text(max_size=10), st.text(max_size=10)),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
payload_like = st.fixed_dictionaries(
    {},
    optional={
        "ts": st.one_of(st.integers(), st.floats(), st.text(max_size=30), st.just(TS)),
        "celsius": st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
        "peak_g": st.floats(),
        "event": st.sampled_from(["diluted", "infusion_started", "infusion_completed", "discarded", "x"]),
        "unit": st.sampled_from(["fridge-a", "nope", ""]),
        "seq": st.integers(),
    },
)


@settings(max_examples=400, deadline=None)
@given(topic=topics, payload=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    """Any bytes on any topic yield records or one rejection with a reason; the parser never raises."""
    result = PARSER.parse(topic, payload, NOW)
    if isinstance(result, Rejection):
        assert result.reason in RejectReason and result.detail
    else:
        assert result, "accepted messages carry at least one record"


@settings(max_examples=400, deadline=None)
@given(
    topic=st.sampled_from([T, S, B]),
    payload=st.one_of(json_values, payload_like, st.lists(payload_like, max_size=4)),
)
def test_json_shaped_input_yields_valid_records_or_a_reason(topic: str, payload: object) -> None:
    """Whatever JSON arrives, accepted records satisfy the contract's ranges and time window."""
    try:
        raw = json.dumps(payload).encode()
    except (ValueError, TypeError):
        return
    result = PARSER.parse(topic, raw, NOW)
    if isinstance(result, Rejection):
        assert result.reason in RejectReason
        return
    for record in result:
        assert NOW - timedelta(days=30) <= record.ts <= NOW + timedelta(minutes=5)
        if isinstance(record, TemperatureReading):
            assert math.isfinite(record.celsius) and -100 <= record.celsius <= 100
        if isinstance(record, ShakeReading):
            assert math.isfinite(record.peak_g) and record.peak_g >= 0


@settings(max_examples=200, deadline=None)
@given(celsius=st.floats(min_value=-100, max_value=100), offset=st.integers(min_value=-(30 * 86400), max_value=300))
def test_any_valid_reading_is_accepted(celsius: float, offset: int) -> None:
    """Every in-range reading inside the time window is accepted with its exact value."""
    ts = NOW + timedelta(seconds=offset)
    result = parse(T, {"ts": ts.isoformat(), "celsius": celsius})
    assert isinstance(result, list), result
    assert result[0].celsius == celsius and result[0].ts == ts
