"""The storage port's contract, run against every adapter (InfluxDB and SQLite) so neither drifts.

Behaviours only one backend has (InfluxDB's partial writes, auth, retention policies, its text
normalisations) are tested in that adapter's own file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coldchain.adapters.store.influx import InfluxStore
from coldchain.adapters.store.points import to_point
from coldchain.adapters.store.port import Store, WriteResult
from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.core.records import (
    RECORD_TYPES,
    BagEvent,
    Record,
    Rejection,
    RejectReason,
    TemperatureReading,
)
from coldchain.core.times import from_millis
from tests.samples import EVERY_RECORD_TYPE, freezing_alert

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
HOUR = timedelta(hours=1)


@pytest.fixture(params=[pytest.param("influx", marks=pytest.mark.integration), "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A prepared, empty store of each kind: InfluxDB on its own database, SQLite in tmp_path."""
    store: Store
    if request.param == "influx":
        store = InfluxStore(request.getfixturevalue("influx_config"))
    else:
        store = SqliteStore(tmp_path / "coldchain.db")
    store.prepare()
    yield store
    store.close()


def reading(sensor: str = "t-001", minute: float = 0, celsius: float = 4.5, **more: Any) -> TemperatureReading:
    return TemperatureReading(sensor, "fridge-a", "main", T0 + timedelta(minutes=minute), celsius, **more)


def expected_row(record: Record) -> dict[str, Any]:
    """What read_range yields for a record: its time, stored tags and fields (from the shared schema)."""
    point = to_point(record)
    return {"time": from_millis(point.time_ms), **point.tag_dict(), **dict(point.fields)}


UNSET_OPTIONALS: list[Record] = [
    BagEvent("B-1", "diluted", T0, "fridge-a", "main", "natalizumab", "L1", None),  # no operator
    BagEvent("B-2", "discarded", T0, None, None, None, None, "j.doe"),  # no place, product or lot
    freezing_alert("a1b2"),  # open: not acknowledged, not resolved, no bag
    freezing_alert(  # a bag's alert: no sensor, no affected bags, an int value
        "c3d4", "acknowledged", kind="bag_expired", subject="B-1", sensor=None, bag="B-1", started_at=T0 - HOUR,
        updated_at=T0 + MS, resolved_at=T0 + MS, value=3, message="expired", acknowledged_by="j.doe", note="binned",
        disposition="discarded", acknowledged_at=T0, affected_bags=(),
    ),
]  # fmt: skip
ROUND_TRIPS = EVERY_RECORD_TYPE + UNSET_OPTIONALS


def test_every_record_type_has_a_sample() -> None:
    """EVERY_RECORD_TYPE holds each type the store holds (a new record type cannot skip this contract)."""
    assert {type(record) for record in EVERY_RECORD_TYPE} == set(RECORD_TYPES.values())


@pytest.mark.parametrize("record", ROUND_TRIPS, ids=lambda r: type(r).__name__)
def test_every_record_type_round_trips_with_its_types(store: Store, record: Record) -> None:
    """Each record type reads back as its point: tags, fields, and each field's Python type."""
    assert store.write([record]) == WriteResult(stored=1)
    expected = expected_row(record)
    point = to_point(record)
    measurement = point.measurement
    rows = list(store.read_range(measurement, expected["time"], expected["time"] + MS))
    assert rows == [expected]
    assert {name: type(value) for name, value in rows[0].items()} == {
        name: type(value) for name, value in expected.items()
    }


def test_the_same_record_three_times_is_one_row(store: Store) -> None:
    """Redelivery is harmless: the same series and time overwrite themselves, alone or within a batch."""
    record = reading(seq=5)
    for _ in range(3):
        assert store.write([record]).stored == 1
    assert store.write([record, record, record]).stored == 3
    assert list(store.read_range("temperature", T0, T0 + HOUR)) == [expected_row(record)]


def test_a_rewrite_merges_fields_new_values_winning(store: Store) -> None:
    """Same series and time: fields the new point has replace the old ones, the others stay (InfluxDB's rule)."""
    store.write([reading(celsius=4.0, seq=1, battery_pct=80)])
    store.write([reading(celsius=5.0)])
    [row] = store.read_range("temperature", T0, T0 + MS)
    assert (row["celsius"], row["seq"], row["battery_pct"]) == (5.0, 1, 80.0)


def test_a_different_tag_set_is_another_series(store: Store) -> None:
    """Two records at the same time in different series are two rows (ties ordered by series)."""
    store.write([reading("t-2"), reading("t-1")])
    assert [row["sensor"] for row in store.read_range("temperature", T0, T0 + MS)] == ["t-1", "t-2"]


def test_read_range_bounds_are_start_inclusive_end_exclusive(store: Store) -> None:
    """A row at ``start`` is in, a row at ``end`` is out, a millisecond before ``end`` is in."""
    edges = [T0 - MS, T0, T0 + HOUR - MS, T0 + HOUR]
    store.write([TemperatureReading("t-1", "fridge-a", "main", ts, 5.0) for ts in edges])
    assert [row["time"] for row in store.read_range("temperature", T0, T0 + HOUR)] == [T0, T0 + HOUR - MS]
    assert list(store.read_range("temperature", T0 + MS, T0 + MS)) == []


def test_read_range_is_oldest_first_whatever_the_write_order(store: Store) -> None:
    """Rows come in time order across series even when written shuffled."""
    minutes = [7, 1, 9, 3, 0, 8, 2, 6, 4, 5]
    store.write([reading(f"t-{m % 3}", minute=m) for m in minutes])
    rows = list(store.read_range("temperature", T0, T0 + HOUR))
    assert [row["time"] for row in rows] == [T0 + timedelta(minutes=m) for m in range(10)]


def test_read_range_filters_by_exact_tag_values(store: Store) -> None:
    """Only rows whose tags all match come back; quotes in values match literally, an unknown tag matches nothing."""
    store.write(
        [
            *(reading("t-1", minute=m) for m in range(6)),
            *(reading("t-2", minute=m) for m in range(6)),
            TemperatureReading("t-1", "fridge-b", "main", T0 + timedelta(minutes=2, seconds=30), 3.0),
            reading("o'brien"),
            reading('say "x"'),
        ]
    )
    window = (T0 + timedelta(minutes=1), T0 + timedelta(minutes=4))
    rows = list(store.read_range("temperature", *window, {"sensor": "t-1"}))
    assert [(row["time"].minute, row["unit"]) for row in rows] == [
        (1, "fridge-a"),
        (2, "fridge-a"),
        (2, "fridge-b"),
        (3, "fridge-a"),
    ]
    both = list(store.read_range("temperature", T0, T0 + HOUR, {"sensor": "t-1", "unit": "fridge-b"}))
    assert [(row["sensor"], row["unit"], row["celsius"]) for row in both] == [("t-1", "fridge-b", 3.0)]
    for sensor in ("o'brien", 'say "x"'):
        assert [row["sensor"] for row in store.read_range("temperature", T0, T0 + MS, {"sensor": sensor})] == [sensor]
    assert list(store.read_range("temperature", T0, T0 + HOUR, {"sensor": "x' OR 'a' = 'a"})) == []
    assert list(store.read_range("temperature", T0, T0 + HOUR, {"no_such_tag": "t-1"})) == []
    assert list(store.read_range('temperature" --', T0, T0 + HOUR)) == []
    assert list(store.read_range("shake", T0, T0 + HOUR)) == []


def test_latest_is_the_newest_row_per_tag_value(store: Store) -> None:
    """latest() gives each sensor's most recent row, with the tag in it; an empty measurement gives {}."""
    store.write([reading("t-1", minute=m, celsius=4.0 + m) for m in range(5)])
    store.write([reading("t-2", minute=m, celsius=6.5) for m in (1, 9, 3)])
    store.write([TemperatureReading("t-2", "fridge-b", "main", T0 + timedelta(minutes=2), 7.0)])  # older, other series
    assert store.latest("temperature", "sensor") == {
        "t-1": {"time": T0 + timedelta(minutes=4), "sensor": "t-1", "site": "main", "unit": "fridge-a", "celsius": 8.0},
        "t-2": {"time": T0 + timedelta(minutes=9), "sensor": "t-2", "site": "main", "unit": "fridge-a", "celsius": 6.5},
    }
    assert store.latest("shake", "sensor") == {}


def test_a_record_no_store_can_hold_is_refused_and_the_rest_stored(store: Store) -> None:
    """A NaN or infinite value comes back refused with a reason; the other records of the batch are stored."""
    good = [reading("t-1", minute=m) for m in range(4)]
    bad = [reading("t-nan", celsius=math.nan), reading("t-inf", minute=1, celsius=math.inf)]
    result = store.write([good[0], bad[0], *good[1:3], bad[1], good[3]])
    assert result.stored == 4
    assert [refused.record for refused in result.refused] == bad
    assert all(refused.reason for refused in result.refused)
    assert [row["sensor"] for row in store.read_range("temperature", T0, T0 + HOUR)] == ["t-1"] * 4


def test_a_large_range_is_streamed_in_order(store: Store) -> None:
    """50,000 rows come back as an iterator, complete and in order, across many chunks."""
    store.chunk_size = 4_000  # type: ignore[attr-defined]
    total = 50_000
    for first in range(0, total, 5_000):
        batch = [
            TemperatureReading("t-1", "fridge-a", "main", T0 + timedelta(seconds=i), 4.0 + (i % 40) / 10)
            for i in range(first, first + 5_000)
        ]
        assert store.write(batch).stored == 5_000
    rows = store.read_range("temperature", T0, T0 + timedelta(days=1))
    assert isinstance(rows, Iterator)
    assert next(rows)["time"] == T0
    count, last = 1, T0
    for row in rows:
        assert row["time"] > last
        last = row["time"]
        count += 1
    assert (count, last) == (total, T0 + timedelta(seconds=total - 1))


def test_ping_answers_when_prepared(store: Store) -> None:
    """A prepared store answers ping()."""
    store.ping()


def test_a_whole_64_kib_rejected_payload_round_trips(store: Store) -> None:
    """The largest payload the contract accepts is kept whole in ``rejected``, and read back byte for byte."""
    from coldchain.adapters.store.points import payload_bytes

    payload = b'{"ts": 1, "x": "' + b"\xc3\xa9" * (32 * 1024 - 10) + b'"}'
    assert len(payload) <= 64 * 1024
    binary = b"\x00\xff" * (32 * 1024)
    store.write([Rejection(RejectReason.INVALID_JSON, "cc/x", "bad", payload, T0),
                 Rejection(RejectReason.INVALID_JSON, "cc/x", "bad", binary, T0 + MS)])  # fmt: skip
    rows = list(store.read_range("rejected", T0, T0 + HOUR))
    assert [payload_bytes(row["payload"]) for row in rows] == [payload, binary]
