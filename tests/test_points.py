"""The shared point schema: line protocol's hand-written fast paths agree with the generic point encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from coldchain.adapters.store.lineprotocol import encode, encode_point
from coldchain.adapters.store.points import to_point
from coldchain.core.records import ShakeReading, TemperatureReading

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
TAGS = st.text(max_size=12)
TIMES = st.integers(min_value=0, max_value=10**9).map(lambda ms: T0 + timedelta(milliseconds=ms))
NUMBERS = st.floats(min_value=-100, max_value=100) | st.integers(min_value=-100, max_value=100)


@given(
    sensor=TAGS,
    unit=TAGS,
    site=TAGS,
    ts=TIMES,
    celsius=NUMBERS,
    seq=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    battery=st.none() | NUMBERS,
)
def test_temperature_fast_path_is_the_point_encoding(
    sensor: str, unit: str, site: str, ts: datetime, celsius: float, seq: int | None, battery: float | None
) -> None:
    """Any temperature reading encodes to the same line by the fast path and through its point."""
    reading = TemperatureReading(sensor, unit, site, ts, celsius, seq, battery)
    assert encode(reading) == encode_point(to_point(reading))


@given(sensor=TAGS, unit=TAGS, site=TAGS, ts=TIMES, peak=NUMBERS, seq=st.none() | st.integers(min_value=0))
def test_shake_fast_path_is_the_point_encoding(
    sensor: str, unit: str, site: str, ts: datetime, peak: float, seq: int | None
) -> None:
    """Any shake reading encodes to the same line by the fast path and through its point."""
    reading = ShakeReading(sensor, unit, site, ts, peak, seq)
    assert encode(reading) == encode_point(to_point(reading))


def test_a_point_leaves_out_empty_tags_and_none_fields() -> None:
    """Tags that are None or empty are not stored; None fields are absent; numbers keep their declared type."""
    point = to_point(TemperatureReading("t-1", "", "main", T0, 4))
    assert point.tag_dict() == {"sensor": "t-1", "site": "main"}
    assert point.fields == (("celsius", 4.0),) and type(point.fields[0][1]) is float
