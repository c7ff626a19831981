"""Rollups: the pure computation (table-driven and against a direct computation) and the keeper over a
real SQLite store (in order, late, out of order, restarted mid-interval)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.rollup_marks import RollupMarks
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.points import to_point
from coldchain.adapters.store.spool import Spool
from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.config import Settings
from coldchain.core.records import TemperatureReading, measurement_of
from coldchain.core.rollups import (
    Accumulator,
    Band,
    Rollup,
    SensorPlace,
    combine,
    daily_of,
    rollup_of,
    rollups_of,
    utc_day,
)
from coldchain.core.times import to_millis
from coldchain.roles.rollup_keeper import RollupKeeper, rollup_from_row

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
GAP = timedelta(minutes=10)
PLACE = SensorPlace("t-1", "fridge-a", "main", Band("temperature", 2.0, 8.0))
S = timedelta(seconds=1)
M = timedelta(minutes=1)

# (readings as (seconds after T0, celsius), expected (count, min, max, out seconds), why)
CASES = [
    ([(0, 5.0)], (1, 5.0, 5.0, 0), "one reading in range: nothing out"),
    ([(0, 9.0)], (1, 9.0, 9.0, 300), "one reading out at the start holds to the interval's end"),
    ([(60, 9.0), (120, 5.0)], (2, 5.0, 9.0, 60), "out until the next reading comes back in"),
    ([(240, 1.0)], (1, 1.0, 1.0, 60), "a late first reading holds only to the end; the time before is not attributed"),
    ([(0, 8.0), (60, 2.0)], (2, 2.0, 8.0, 0), "the limits themselves are in range"),
    ([(0, 5.0), (0, 9.0)], (1, 5.0, 5.0, 0), "equal timestamps count once (the first)"),
    ([(120, 9.0), (0, 9.0)], (2, 9.0, 9.0, 300), "order does not matter"),
    ([(0, 5.0), (300, 9.0)], (1, 5.0, 5.0, 0), "a reading at the interval's end belongs to the next"),
]


@pytest.mark.parametrize(("readings", "expected", "why"), CASES, ids=[case[2] for case in CASES])
def test_rollup_of_an_interval(
    readings: list[tuple[int, float]], expected: tuple[int, float, float, int], why: str
) -> None:
    """An interval's count, extremes and time out of range follow the documented sample-and-hold rule."""
    rollup = rollup_of([(T0 + s * S, c) for s, c in readings], T0, PLACE, GAP)
    assert rollup is not None
    assert (rollup.count, rollup.minimum, rollup.maximum, rollup.out_ms // 1000) == expected, why


def test_a_silence_longer_than_the_gap_is_not_out_of_range() -> None:
    """A reading out of range holds for at most ``gap`` (a longer silence is unknown)."""
    rollup = rollup_of([(T0, 9.0)], T0, PLACE, timedelta(minutes=2))
    assert rollup is not None and rollup.out_ms == 120_000


def test_shake_at_the_threshold_is_out() -> None:
    """For shake sensors, peak_g at or above the agitation threshold counts as out of range."""
    place = SensorPlace("s-1", "fridge-a", "main", Band("shake", None, 0.5))
    rollup = rollup_of([(T0, 0.5), (T0 + M, 0.1)], T0, place, GAP)
    assert rollup is not None and rollup.out_ms == 60_000


readings_strategy = st.lists(
    st.tuples(st.integers(0, 2 * 86_400 - 1), st.floats(-30, 30, allow_nan=False).map(lambda x: round(x, 2))),
    max_size=200,
)


@given(readings_strategy)
def test_streaming_equals_direct(raw: list[tuple[int, float]]) -> None:
    """Accumulating a sensor's in-order stream gives exactly the rollups computed directly per interval."""
    stream = sorted({second: value for second, value in reversed(raw)}.items())
    direct = rollups_of([(T0 + s * S, v) for s, v in stream], PLACE, GAP)
    streamed: list[Rollup] = []
    open_one: Accumulator | None = None
    for second, value in stream:
        ts_ms = to_millis(T0 + second * S)
        start = ts_ms - ts_ms % 300_000
        if open_one is not None and open_one.start_ms != start:
            streamed.append(open_one.result(PLACE))  # type: ignore[arg-type]
            open_one = None
        if open_one is None:
            open_one = Accumulator(start, PLACE.band, int(GAP.total_seconds() * 1000))
        assert open_one.add(ts_ms, value)
    if open_one is not None:
        streamed.append(open_one.result(PLACE))  # type: ignore[arg-type]
    assert streamed == direct


@given(readings_strategy)
def test_daily_is_its_intervals_combined(raw: list[tuple[int, float]]) -> None:
    """A day's rollup has the count, extremes, mean and out-of-range time of its readings, by its intervals."""
    readings = [(T0 + s * S, v) for s, v in raw]
    days = daily_of(rollups_of(readings, PLACE, GAP))
    for day in days:
        start, end = utc_day(day.start)
        inside = [v for ts, v in {ts: v for ts, v in reversed(readings)}.items() if start <= ts < end]
        assert day.count == len(inside)
        assert (day.minimum, day.maximum) == (min(inside), max(inside))
        assert day.mean == pytest.approx(sum(inside) / len(inside))
        parts = [r for r in rollups_of(readings, PLACE, GAP) if start <= r.start < end]
        assert day.out_ms == sum(r.out_ms for r in parts) <= 86_400_000
    assert sum(day.count for day in days) == len({s for s, _ in raw})


def test_a_rollup_reads_back_as_itself() -> None:
    """A rollup stored as a point and read back as a row is the same rollup (the day recompute reads them)."""
    rollup = rollup_of([(T0, 9.0), (T0 + M, 4.5)], T0, PLACE, GAP)
    assert rollup is not None
    point = to_point(rollup)
    row = {"time": T0, **point.tag_dict(), **dict(point.fields)}
    assert measurement_of(rollup) == "rollup_5m"
    assert rollup_from_row(row, "5m") == rollup
    day = combine([rollup], utc_day(T0)[0])
    assert day is not None and measurement_of(day) == "rollup_1d"


# -- the keeper, over a real SQLite store ---------------------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


SETTINGS = Settings(
    units=[{"id": "fridge-a", "site": "main"}],  # type: ignore[list-item]
    sensors=[
        {"id": "t-1", "unit": "fridge-a", "kind": "temperature"},
        {"id": "t-2", "unit": "fridge-a", "kind": "temperature"},
    ],  # type: ignore[list-item]
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[RollupKeeper, SqliteStore, DurableWriter, Clock]]:
    store = SqliteStore(tmp_path / "store.sqlite")
    writer = DurableWriter(store, Spool(tmp_path / "spool.sqlite", 1 << 24), Metrics())
    writer.start()
    clock = Clock(T0 - timedelta(hours=1))
    keeper = RollupKeeper(SETTINGS, writer, clock=clock)
    yield keeper, store, writer, clock
    writer.stop()
    store.close()


def reading(sensor: str, ts: datetime, celsius: float) -> TemperatureReading:
    return TemperatureReading(sensor, "fridge-a", "main", ts, celsius)


def stored(store: SqliteStore, measurement: str) -> dict[tuple[str, datetime], Rollup]:
    rows = store.read_range(measurement, T0 - timedelta(days=2), T0 + timedelta(days=3))
    return {(row["sensor"], row["time"]): rollup_from_row(row, measurement[-2:]) for row in rows}


def ingest(writer: DurableWriter, keeper: RollupKeeper, records: list[TemperatureReading]) -> None:
    writer.write(records)
    keeper.observe(records)


def expected_5m(store: SqliteStore, sensor: str) -> dict[tuple[str, datetime], Rollup]:
    rows = store.read_range("temperature", T0 - timedelta(days=2), T0 + timedelta(days=3), {"sensor": sensor})
    place = SensorPlace(sensor, PLACE.unit, PLACE.site, PLACE.band)
    return {(sensor, r.start): r for r in rollups_of([(row["time"], row["celsius"]) for row in rows], place, GAP)}


def settle(keeper: RollupKeeper, clock: Clock, until: datetime) -> None:
    clock.now = until
    keeper.flush(until)
    while keeper.pending():
        keeper.recompute()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 86_400 + 3_600), st.floats(-5, 15).map(lambda x: round(x, 1))), max_size=60),
    st.integers(0, 86_400 + 3_600),
)
def test_keeper_rollups_equal_the_raw_readings(raw: list[tuple[int, float]], started: int) -> None:
    """Whatever order readings arrive in, and whenever the keeper started, the settled rollups equal a
    direct computation over the stored readings."""
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(Path(directory) / "store.sqlite")
        writer = DurableWriter(store, Spool(Path(directory) / "spool.sqlite", 1 << 24), Metrics())
        writer.start()
        try:
            # a previous run took the readings before ``started`` and was killed a second before it restarted
            previous_clock = Clock(T0 - timedelta(hours=1))
            marks = RollupMarks(Path(directory) / "marks.sqlite")
            previous = RollupKeeper(SETTINGS, writer, clock=previous_clock, marks=marks)
            for second, value in sorted(item for item in raw if item[0] < started):
                ingest(writer, previous, [reading("t-1", T0 + second * S, value)])
                previous_clock.now = T0 + second * S
                previous.flush(previous_clock.now)
            previous.flush(T0 + (started - 1) * S)  # running until a second before the restart
            clock = Clock(T0 + started * S)
            keeper = RollupKeeper(SETTINGS, writer, clock=clock, marks=marks)
            raw = [item for item in raw if item[0] >= started or item[0] % 3 == 0]  # some redelivered after the kill
            half = len(raw) // 2
            for batch, until in ((raw[:half], T0 + timedelta(days=2)), (raw[half:], T0 + timedelta(days=2, hours=1))):
                for second, value in batch:  # the second batch arrives after everything closed: a buffered upload
                    ingest(writer, keeper, [reading("t-1", T0 + second * S, value)])
                    if second % 7 == 0:  # the clock moves on now and then, closing what it passed
                        clock.now = max(clock.now, T0 + second * S)
                        keeper.flush(clock.now)
                settle(keeper, clock, until)
                assert stored(store, "rollup_5m") == expected_5m(store, "t-1")
                want = {("t-1", d.start): d for d in daily_of(expected_5m(store, "t-1").values())}
                assert stored(store, "rollup_1d") == want
        finally:
            writer.stop()
            store.close()


def test_a_late_reading_rewrites_its_interval_and_day(world) -> None:  # type: ignore[no-untyped-def]
    """A reading for an interval already written corrects that rollup and its day (recomputed from raw)."""
    keeper, store, writer, clock = world
    ingest(writer, keeper, [reading("t-1", T0 + i * M, 5.0) for i in range(12)])
    settle(keeper, clock, T0 + timedelta(minutes=20))
    assert stored(store, "rollup_5m")[("t-1", T0)].maximum == 5.0
    ingest(writer, keeper, [reading("t-1", T0 + 30 * S, 11.0)])  # buffered upload of the past
    assert keeper.pending() == 1
    settle(keeper, clock, T0 + timedelta(minutes=21))
    corrected = stored(store, "rollup_5m")[("t-1", T0)]
    assert (corrected.count, corrected.maximum, corrected.out_ms) == (6, 11.0, 30_000)
    assert keeper.recomputed == 1
    settle(keeper, clock, T0 + timedelta(days=1))
    day = stored(store, "rollup_1d")[("t-1", utc_day(T0)[0])]
    assert (day.count, day.maximum, day.out_ms) == (13, 11.0, 30_000)


def test_intervals_begun_before_start_are_recomputed(tmp_path: Path) -> None:
    """After a restart mid-interval, that interval's rollup still covers the readings stored before it."""
    store = SqliteStore(tmp_path / "store.sqlite")
    writer = DurableWriter(store, Spool(tmp_path / "spool.sqlite", 1 << 24), Metrics())
    writer.start()
    try:
        writer.write([reading("t-1", T0 + i * M, 9.0) for i in range(3)])  # stored by the previous run
        clock = Clock(T0 + 3 * M)
        keeper = RollupKeeper(SETTINGS, writer, clock=clock)
        ingest(writer, keeper, [reading("t-1", T0 + i * M, 5.0) for i in range(3, 7)])
        settle(keeper, clock, T0 + timedelta(minutes=12))
        first = stored(store, "rollup_5m")[("t-1", T0)]
        assert (first.count, first.maximum, first.out_ms) == (5, 9.0, 180_000)
    finally:
        writer.stop()
        store.close()


def test_with_ingest_replicas_every_interval_comes_from_the_store(tmp_path: Path) -> None:
    """With mqtt.shared_group each replica sees part of the readings: rollups are recomputed from the store."""
    store = SqliteStore(tmp_path / "store.sqlite")
    writer = DurableWriter(store, Spool(tmp_path / "spool.sqlite", 1 << 24), Metrics())
    writer.start()
    try:
        shared = SETTINGS.model_copy(update={"mqtt": SETTINGS.mqtt.model_copy(update={"shared_group": "ingest"})})
        clock = Clock(T0 - timedelta(hours=1))
        keeper = RollupKeeper(shared, writer, clock=clock)
        readings = [reading("t-1", T0 + i * M, 9.0 if i % 2 else 5.0) for i in range(10)]
        writer.write(readings[1::2])  # stored by the other replica, never seen here
        ingest(writer, keeper, readings[::2])
        settle(keeper, clock, T0 + timedelta(days=1, minutes=5))
        assert stored(store, "rollup_5m") == expected_5m(store, "t-1")
        first = stored(store, "rollup_5m")[("t-1", T0)]
        assert (first.count, first.maximum, first.out_ms) == (5, 9.0, 120_000)
        day = stored(store, "rollup_1d")[("t-1", utc_day(T0)[0])]
        assert day.count == 10 and keeper.recomputed == 2
    finally:
        writer.stop()
        store.close()


def test_the_keeper_counts_what_waits_for_recomputing(world) -> None:  # type: ignore[no-untyped-def]
    """coldchain_rollups_pending shows intervals waiting for the store; it drains to 0 once recomputed."""
    _, _, writer, clock = world
    metrics = Metrics()
    keeper = RollupKeeper(SETTINGS, writer, metrics, clock=clock)
    ingest(writer, keeper, [reading("t-1", T0 + i * M, 5.0) for i in range(7)])
    settle(keeper, clock, T0 + timedelta(minutes=11))
    ingest(writer, keeper, [reading("t-1", T0 + 30 * S, 9.0)])
    assert "coldchain_rollups_pending 1.0" in metrics.render().decode()
    settle(keeper, clock, T0 + timedelta(minutes=12))
    text = metrics.render().decode()
    assert "coldchain_rollups_pending 0.0" in text and "coldchain_rollups_recomputed 1.0" in text


def zurich_day(ts: datetime) -> tuple[datetime, datetime]:
    """A site calendar's local day (what issue 15's calendar will pass in), for the test."""
    zone = ZoneInfo("Europe/Zurich")
    local = ts.astimezone(zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def test_daily_rollups_follow_the_sites_day_boundary(world) -> None:  # type: ignore[no-untyped-def]
    """With a site's local days plugged in, a reading at 23:30 UTC (00:30 in Zurich) counts for the next day."""
    _, store, writer, clock = world
    keeper = RollupKeeper(SETTINGS, writer, clock=clock, day_of=lambda site: zurich_day)
    evening = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    ingest(writer, keeper, [reading("t-1", evening - timedelta(hours=1), 5.0), reading("t-1", evening, 9.0)])
    settle(keeper, clock, evening + timedelta(days=2))
    days = {start: day.maximum for (_, start), day in stored(store, "rollup_1d").items()}
    assert days == {datetime(2026, 3, 1, 23, 0, tzinfo=UTC): 5.0, datetime(2026, 3, 2, 23, 0, tzinfo=UTC): 9.0}


def test_many_sensors_are_recomputed_from_one_read_of_the_window(tmp_path: Path) -> None:
    """60 sensors restarted mid-interval (one read of the window for all): each rollup has its own readings."""
    sensors = [{"id": f"t-{i:02d}", "unit": "fridge-a", "kind": "temperature"} for i in range(60)]
    many = Settings(units=[{"id": "fridge-a", "site": "main"}], sensors=sensors)  # type: ignore[list-item]
    store = SqliteStore(tmp_path / "store.sqlite")
    writer = DurableWriter(store, Spool(tmp_path / "spool.sqlite", 1 << 24), Metrics())
    writer.start()
    try:
        writer.write([reading(f"t-{i:02d}", T0 + j * M, float(i + j)) for i in range(60) for j in range(3)])
        clock = Clock(T0 + 3 * M)
        keeper = RollupKeeper(many, writer, clock=clock)
        ingest(writer, keeper, [reading(f"t-{i:02d}", T0 + 3 * M, 20.0) for i in range(0, 60, 2)])
        settle(keeper, clock, T0 + timedelta(minutes=12))
        got = stored(store, "rollup_5m")
        assert len(got) == 60
        for i in range(60):
            rollup = got[(f"t-{i:02d}", T0)]
            values = [float(i), float(i + 1), float(i + 2), *([20.0] if i % 2 == 0 else [])]
            expected = (len(values), min(values), max(values))
            assert (rollup.count, rollup.minimum, rollup.maximum) == expected, i
    finally:
        writer.stop()
        store.close()
