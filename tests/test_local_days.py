"""Local days: UTC intervals of a zone's calendar days around DST changes, and daily tables over them."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.core.daily import DailyAggregator, DailyRow, SensorInfo
from coldchain.core.local_days import DAY_MS, DayCalendar, calendar, index_of

MIN = 60_000


def utc_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


HOUR_MS = 3_600_000

# (zone, local date, UTC start, hours, utc_offset, note); a day ends at UTC start + its hours
DAYS = [
    # Europe/Berlin springs forward on the last Sunday of March at 02:00 CET -> 03:00 CEST
    ("Europe/Berlin", date(2026, 3, 28), utc_ms(2026, 3, 27, 23), 24, "+01:00", ""),
    ("Europe/Berlin", date(2026, 3, 29), utc_ms(2026, 3, 28, 23), 23, "+01:00→+02:00", "23-hour day (DST)"),
    ("Europe/Berlin", date(2026, 3, 30), utc_ms(2026, 3, 29, 22), 24, "+02:00", ""),
    # ... and falls back on the last Sunday of October at 03:00 CEST -> 02:00 CET
    ("Europe/Berlin", date(2026, 10, 25), utc_ms(2026, 10, 24, 22), 25, "+02:00→+01:00", "25-hour day (DST)"),
    ("Europe/Berlin", date(2026, 10, 26), utc_ms(2026, 10, 25, 23), 24, "+01:00", ""),
    # America/New_York springs forward on the second Sunday of March at 02:00 EST -> 03:00 EDT
    ("America/New_York", date(2026, 3, 7), utc_ms(2026, 3, 7, 5), 24, "-05:00", ""),
    ("America/New_York", date(2026, 3, 8), utc_ms(2026, 3, 8, 5), 23, "-05:00→-04:00", "23-hour day (DST)"),
    # ... and falls back on the first Sunday of November at 02:00 EDT -> 01:00 EST
    ("America/New_York", date(2026, 11, 1), utc_ms(2026, 11, 1, 4), 25, "-04:00→-05:00", "25-hour day (DST)"),
    ("America/New_York", date(2026, 11, 2), utc_ms(2026, 11, 2, 5), 24, "-05:00", ""),
    # UTC has no changes; a half-hour zone writes its minutes
    ("UTC", date(2026, 3, 29), utc_ms(2026, 3, 29), 24, "+00:00", ""),
    ("Asia/Kolkata", date(2026, 3, 29), utc_ms(2026, 3, 28, 18, 30), 24, "+05:30", ""),
]


@pytest.mark.parametrize(("zone", "day", "start", "hours", "offset", "note"), DAYS)
def test_local_day(zone: str, day: date, start: int, hours: int, offset: str, note: str) -> None:
    """A local day's UTC interval, length, offsets and note are exact, on and around DST changes."""
    local = DayCalendar(zone).day(index_of(day))
    assert (local.date, local.start_ms, local.end_ms) == (day, start, start + hours * HOUR_MS)
    assert (local.hours, local.utc_offset, local.note) == (hours, offset, note)


@pytest.mark.parametrize(("zone", "day", "start", "hours"), [case[:4] for case in DAYS])
def test_day_index_at_the_boundaries(zone: str, day: date, start: int, hours: int) -> None:
    """The first and last millisecond of a local day belong to it; the ones next to them do not."""
    cal = DayCalendar(zone)
    index = index_of(day)
    end = start + hours * HOUR_MS
    assert [cal.day_index(t) for t in (start - 1, start, end - 1, end)] == [index - 1, index, index, index + 1]
    # the cached interval answers the same after a jump away and back
    assert cal.day_index(start + 3_600_000 * 30) != index
    assert cal.day_index(start) == index


ZONES = sorted(zoneinfo.available_timezones())
WINDOW_START = utc_ms(1971, 1, 1)
WINDOW_END = utc_ms(2090, 1, 1)


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=st.integers(WINDOW_START, WINDOW_END),
    length=st.integers(1, 400 * DAY_MS),
)
def test_days_tile_any_window_exactly(zone: str, start: int, length: int) -> None:
    """For any zone and window, the listed days are contiguous, cover the window and hold each instant once."""
    cal = DayCalendar(zone)
    end = start + length
    days = cal.days(start, end)
    assert days[0].start_ms <= start < days[0].end_ms
    assert days[-1].start_ms < end <= days[-1].end_ms
    for before, after in itertools.pairwise(days):
        assert before.end_ms == after.start_ms
        assert before.index < after.index
    for local in days:
        assert local.ms > 0
        assert local.ms == DAY_MS + local.offset_start_ms - local.offset_end_ms
        assert cal.day_index(local.start_ms) == local.index
        assert cal.day_index(local.end_ms - 1) == local.index


def test_shared_calendars() -> None:
    """calendar(zone) hands out one calendar per zone."""
    assert calendar("Europe/Berlin") is calendar("Europe/Berlin")


def _daily_rows(zone: str, start: int, end: int, readings: list[tuple[int, float]]) -> list[DailyRow]:
    info = SensorInfo("t-1", "main", "fridge-a", "temperature", 2.0, 8.0, zone)
    aggregator = DailyAggregator(start, end, 10 * MIN, [info])
    for t, value in readings:
        aggregator.add("t-1", "main", "fridge-a", "temperature", t, value)
    return aggregator.finish()


def _aggregate(zone: str, start: int, end: int, readings: list[tuple[int, float]]) -> list[tuple[object, ...]]:
    return [
        (
            r.local.date_text,
            r.local.utc_offset,
            r.local.hours,
            r.readings,
            r.ms_in / MIN,
            r.ms_out / MIN,
            r.ms_unknown / MIN,
        )
        for r in _daily_rows(zone, start, end, readings)
    ]


# (zone, first of three local days, each day's UTC offset, each day's hours). Readings every minute at 5 °C: a day
# of h hours has h * 60 readings and h * 60 minutes in range, none out or unknown.
DST_TABLES = [
    # Berlin spring forward: the 29th has 1380 minutes and readings
    ("Europe/Berlin", date(2026, 3, 28), ("+01:00", "+01:00→+02:00", "+02:00"), (24, 23, 24)),
    # Berlin fall back: the 25th has 1500 minutes and readings
    ("Europe/Berlin", date(2026, 10, 24), ("+02:00", "+02:00→+01:00", "+01:00"), (24, 25, 24)),
    # New York spring forward
    ("America/New_York", date(2026, 3, 7), ("-05:00", "-05:00→-04:00", "-04:00"), (24, 23, 24)),
    # New York fall back
    ("America/New_York", date(2026, 10, 31), ("-04:00", "-04:00→-05:00", "-05:00"), (24, 25, 24)),
]


@pytest.mark.parametrize(("zone", "first", "offsets", "hours"), DST_TABLES)
def test_daily_table_around_dst(zone: str, first: date, offsets: tuple[str, ...], hours: tuple[int, ...]) -> None:
    """Readings every minute over three local days: each day's minutes are its own 1380, 1440 or 1500."""
    cal = DayCalendar(zone)
    start = cal.start_of(first)
    end = cal.day(index_of(first) + 2).end_ms
    readings = [(t, 5.0) for t in range(start, end + MIN, MIN)]
    days = [(first + timedelta(days=i)).isoformat() for i in range(3)]
    rows = [(day, offset, h, h * 60, h * 60.0, 0.0, 0.0) for day, offset, h in zip(days, offsets, hours, strict=True)]
    assert _aggregate(zone, start, end, readings) == rows


def test_an_excursion_over_local_midnight_is_split_at_local_midnight() -> None:
    """Out-of-range minutes from 23:30 to 00:30 Berlin time go half to each local day, not to UTC days."""
    cal = DayCalendar("Europe/Berlin")
    start = cal.start_of(date(2026, 1, 10))
    end = cal.start_of(date(2026, 1, 12))
    midnight = cal.start_of(date(2026, 1, 11))
    readings = [(t, 9.0 if midnight - 30 * MIN <= t < midnight + 30 * MIN else 5.0) for t in range(start, end, MIN)]
    rows = _aggregate("Europe/Berlin", start, end, readings)
    assert [(r[0], r[5]) for r in rows] == [("2026-01-10", 30.0), ("2026-01-11", 30.0)]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
    start=st.integers(utc_ms(2026, 3, 1), utc_ms(2026, 11, 30)),
    length=st.integers(MIN, 12 * DAY_MS),
    step=st.integers(MIN // 2, 45 * MIN),
    seed=st.integers(0, 1000),
)
def test_minutes_add_up_to_each_local_day(zone: str, start: int, length: int, step: int, seed: int) -> None:
    """For any window, zone and reading rhythm: in + out + unknown = the local day's milliseconds in the window."""
    end = start + length
    readings = [(t, 1.0 + (t // step + seed) % 10) for t in range(start - 5 * MIN, end + 5 * MIN, step)]
    rows = _daily_rows(zone, start, end, readings)
    assert sum(r.ms_in + r.ms_out + r.ms_unknown for r in rows) == length
    for r in rows:
        inside = min(end, r.local.end_ms) - max(start, r.local.start_ms)
        assert r.ms_in + r.ms_out + r.ms_unknown == inside
