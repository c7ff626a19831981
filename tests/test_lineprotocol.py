"""Line protocol encoding: schema, float and integer types, escaping, omitted values, ms timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from coldchain.adapters.store.lineprotocol import ENCODERS, encode, encode_batch, encoder, stored_tag_value
from coldchain.adapters.store.points import payload_bytes
from coldchain.core.records import BagEvent, Record, Rejection, RejectReason, ShakeReading, TemperatureReading

TS = datetime(2026, 11, 30, 2, 10, 0, 123_000, tzinfo=UTC)
MS = 1_796_004_600_123  # TS in epoch milliseconds


def temp(**changes: object) -> TemperatureReading:
    values: dict[str, object] = {"sensor": "t-001", "unit": "fridge-a", "site": "main", "ts": TS, "celsius": 4.5}
    values.update(changes)
    return TemperatureReading(**values)  # type: ignore[arg-type]


def bag(**changes: object) -> BagEvent:
    values: dict[str, object] = {
        "bag": "B-1",
        "event": "diluted",
        "ts": TS,
        "unit": "fridge-a",
        "site": "main",
        "product": "natalizumab",
        "lot": "L1",
        "by": "j.doe",
    }
    values.update(changes)
    return BagEvent(**values)  # type: ignore[arg-type]


def bare_bag(**changes: object) -> BagEvent:
    """A bag event with its name and event only (no site, unit, product, lot or by), with ``changes``."""
    return bag(**{"site": None, "unit": None, "product": None, "lot": None, "by": None, **changes})


@pytest.mark.parametrize(
    ("record", "line"),
    [
        # The full temperature schema: tags in key order, float, int with "i", float, ms timestamp.
        pytest.param(
            temp(celsius=4.5, seq=1031, battery_pct=87.5),
            f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=4.5,seq=1031i,battery_pct=87.5 {MS}",
            id="temperature-full",
        ),
        # A whole-number float keeps its ".0": the schema's spelling of a float field.
        pytest.param(temp(celsius=4.0), f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=4.0 {MS}", id="4.0"),
        # An int handed in where a float belongs is still a float (never "4i", a field type conflict).
        pytest.param(temp(celsius=4), f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=4.0 {MS}", id="int-4"),
        # Negative and huge floats use repr(): a sign, an exponent, both valid line protocol floats.
        pytest.param(
            temp(celsius=-0.5), f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=-0.5 {MS}", id="neg"
        ),
        pytest.param(
            temp(celsius=1e16), f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=1e+16 {MS}", id="exp"
        ),
        # Optional fields left out when None: seq alone, battery alone.
        pytest.param(
            temp(seq=7), f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=4.5,seq=7i {MS}", id="seq-only"
        ),
        pytest.param(
            temp(battery_pct=100),
            f"temperature,sensor=t-001,site=main,unit=fridge-a celsius=4.5,battery_pct=100.0 {MS}",
            id="battery-only-int-becomes-float",
        ),
        # Shake: float peak_g, int seq when present.
        pytest.param(
            ShakeReading("s-1", "fridge-a", "main", TS, 1, seq=12),
            f"shake,sensor=s-1,site=main,unit=fridge-a peak_g=1.0,seq=12i {MS}",
            id="shake",
        ),
        # Bag event: tags bag/site/unit, string fields quoted.
        pytest.param(
            bag(),
            f'bag_event,bag=B-1,site=main,unit=fridge-a event="diluted",product="natalizumab",lot="L1",by="j.doe" {MS}',
            id="bag-full",
        ),
        # A bag event without unit/site/product/lot/by: tags and fields left out, not written empty.
        pytest.param(bare_bag(site=""), f'bag_event,bag=B-1 event="diluted" {MS}', id="bag-minimal"),
        # Tag values escape comma, equals and space; a backslash stays literal (1.x keeps "\\" as two).
        pytest.param(
            bare_bag(bag="a,b=c d", site="C:\\x"),
            f'bag_event,bag=a\\,b\\=c\\ d,site=C:\\x event="diluted" {MS}',
            id="tag-escapes",
        ),
        # A backslash before an escaped character still parses: the delimiter's own backslash follows it.
        pytest.param(
            bare_bag(bag="a\\,b"),
            f'bag_event,bag=a\\\\,b event="diluted" {MS}',
            id="tag-backslash-before-comma",
        ),
        # A trailing backslash cannot be written in a 1.x tag value (it would escape the delimiter): dropped.
        pytest.param(
            bare_bag(site="main\\\\"),
            f'bag_event,bag=B-1,site=main event="diluted" {MS}',
            id="tag-trailing-backslash",
        ),
        # A newline in a tag would end the point: written as the two characters "\n".
        pytest.param(bare_bag(bag="B\n1"), f'bag_event,bag=B\\n1 event="diluted" {MS}', id="tag-newline"),
        # String fields escape double quote and backslash; commas, spaces and equals need nothing.
        pytest.param(
            bare_bag(product='say "hi", a=b', lot="C:\\lot\\"),
            f'bag_event,bag=B-1 event="diluted",product="say \\"hi\\", a=b",lot="C:\\\\lot\\\\" {MS}',
            id="string-escapes",
        ),
        # A newline or CR in a string field is stored as backslash-n / backslash-r: one point, one line.
        pytest.param(
            bare_bag(by="a\r\nb"),
            f'bag_event,bag=B-1 event="diluted",by="a\\\\r\\\\nb" {MS}',
            id="string-newline",
        ),
        # Rejections: reason tag, received_at as the time, a payload that is not UTF-8 as b64: (replayable).
        pytest.param(
            Rejection(RejectReason.INVALID_JSON, "cc/sensors/x/temperature", "bad json", b'{"a":\xff', TS),
            f'rejected,reason=invalid_json topic="cc/sensors/x/temperature",detail="bad json",'
            f'payload="b64:eyJhIjr/" {MS}',
            id="rejection",
        ),
    ],
)
def test_encode(record: Record, line: str) -> None:
    """Each record encodes to exactly the documented line."""
    assert encode(record) == line


def test_rejected_payload_is_kept_whole_up_to_64_kib() -> None:
    """A payload is kept whole up to 64 KiB; one cut there mid-character is kept as base64, byte for byte."""
    whole = ("é" * 100).encode()
    assert f'payload="{"é" * 100}" {MS}' in encode(Rejection(RejectReason.INVALID_JSON, "t", "bad", whole, TS))
    payload = b"x" * (64 * 1024 - 1) + "é".encode() + b"tail"
    line = encode(Rejection(RejectReason.PAYLOAD_TOO_LARGE, "t", "too big", payload, TS))
    stored = line.split('payload="', 1)[1].rsplit('" ', 1)[0]
    assert payload_bytes(stored) == payload[: 64 * 1024]


def test_timestamps_are_epoch_milliseconds() -> None:
    """The point's time is the reading's ts in whole milliseconds, before 1970 too."""
    assert encode(temp(ts=datetime(1970, 1, 1, 0, 0, 1, 5000, tzinfo=UTC))).endswith(" 1005")
    assert encode(temp(ts=datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))).endswith(" -1000")


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("fridge-a", "fridge-a"),  # plain text is stored as is
        ("a,b c=d", "a,b c=d"),  # escapes are undone by the server
        ("a\nb\r", "a\\nb\\r"),  # line breaks are stored as backslash-n / backslash-r
        ("end\\\\", "end"),  # trailing backslashes are dropped
    ],
)
def test_stored_tag_value(value: str, stored: str) -> None:
    """stored_tag_value predicts what InfluxDB keeps of a tag value, so filters can match it."""
    assert stored_tag_value(value) == stored


def test_batch_is_newline_joined_utf8() -> None:
    """A batch is the lines joined by newlines, UTF-8, no trailing newline; lone surrogates become '?'."""
    body = encode_batch([temp(site="Zürich"), temp(site="\ud800")])
    assert body.decode() == (
        f"temperature,sensor=t-001,site=Zürich,unit=fridge-a celsius=4.5 {MS}\n"
        f"temperature,sensor=t-001,site=?,unit=fridge-a celsius=4.5 {MS}"
    )


def test_a_new_record_type_needs_one_registered_function() -> None:
    """Registering an encoder for a new type makes encode() and encode_batch() handle it."""

    @dataclass(frozen=True)
    class Alert:
        unit: str
        ts: datetime

    try:

        @encoder(Alert)
        def encode_alert(a: Alert) -> str:
            return f"alert,unit={a.unit} open=true 1"

        assert encode_batch([Alert("fridge-a", TS), temp()]).startswith(b"alert,unit=fridge-a open=true 1\n")  # type: ignore[list-item]
    finally:
        ENCODERS.pop(Alert, None)


def test_unknown_record_type_is_a_type_error() -> None:
    """Encoding something that has no encoder fails loudly instead of writing garbage."""
    with pytest.raises(TypeError, match="no line protocol encoder for str"):
        encode("not a record")  # type: ignore[arg-type]
