"""Per-sensor-day aggregation: statistics, minutes in and out of range, and gaps reported as unknown.

Every case is a two-day window (2026-01-01 and 2026-01-02, UTC) with a 10-minute gap threshold and
one temperature sensor judged against 2.0-8.0 °C. Readings are written as (minute offset from the
window's start, °C); the expected rows are exact.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coldchain.core.daily import DAY_MS, DailyAggregator, DailyRow, Gap, SensorInfo

START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
END = START + 2 * DAY_MS
MIN = 60_000
GAP = 10 * MIN
T1 = SensorInfo("t-1", "main", "fridge-a", "temperature", 2.0, 8.0)


def every_minute(first: int, last: int, celsius: float) -> list[tuple[int, float]]:
    """Readings at each minute from ``first`` to ``last`` inclusive."""
    return [(m, celsius) for m in range(first, last + 1)]


def run(
    readings: list[tuple[float, float]], info: SensorInfo = T1
) -> tuple[list[tuple[object, ...]], list[tuple[float, float]]]:
    """Day rows as (day, readings, out, min, max, mean, in, out, unknown minutes, gaps, status); gaps in minutes."""
    gaps: list[Gap] = []
    aggregator = DailyAggregator(START, END, GAP, [info], gaps.append)
    for minute, value in readings:
        aggregator.add(info.sensor, info.site, info.unit, info.kind, START + int(minute * MIN), value)
    rows = aggregator.finish()
    return [summary(row) for row in rows], [((g.start_ms - START) / MIN, (g.end_ms - START) / MIN) for g in gaps]


def summary(row: DailyRow) -> tuple[object, ...]:
    mean = None if row.mean is None else round(row.mean, 3)
    return (
        row.day - START // DAY_MS,
        row.readings,
        row.readings_out,
        row.min,
        row.max,
        mean,
        row.ms_in / MIN,
        row.ms_out / MIN,
        row.ms_unknown / MIN,
        row.gaps,
        row.status,
    )


IN_RANGE_DAY = (1440, 0, 5.0, 5.0, 5.0, 1440.0, 0.0, 0.0, 0, "in range")

CASES = [
    pytest.param(
        every_minute(0, 2879, 5.0),
        [(0, *IN_RANGE_DAY), (1, *IN_RANGE_DAY)],
        [],
        id="every minute in range; the last reading covers the last minute",
    ),
    pytest.param(
        every_minute(0, 599, 5.0) + every_minute(630, 2879, 5.0),
        [(0, 1410, 0, 5.0, 5.0, 5.0, 1409.0, 0.0, 31.0, 1, "incomplete data"), (1, *IN_RANGE_DAY)],
        [(599, 630)],
        id="30 readings missing: the 31 minutes between 599 and 630 are unknown, not in range",
    ),
    pytest.param(
        every_minute(0, 604, 5.0) + every_minute(614, 2879, 5.0),
        [(0, 1431, 0, 5.0, 5.0, 5.0, 1440.0, 0.0, 0.0, 0, "in range"), (1, *IN_RANGE_DAY)],
        [],
        id="exactly the threshold (10 min) apart is not a gap",
    ),
    pytest.param(
        every_minute(0, 99, 5.0) + every_minute(100, 129, 9.0) + every_minute(130, 2879, 5.0),
        [(0, 1440, 30, 5.0, 9.0, 5.083, 1410.0, 30.0, 0.0, 0, "out of range"), (1, *IN_RANGE_DAY)],
        [],
        id="30 readings at 9.0: 30 minutes out of range, mean (1410*5+30*9)/1440",
    ),
    pytest.param(
        every_minute(0, 1439, 8.0) + every_minute(1440, 2879, 2.0),
        [
            (0, 1440, 0, 8.0, 8.0, 8.0, 1440.0, 0.0, 0.0, 0, "in range"),
            (1, 1440, 0, 2.0, 2.0, 2.0, 1440.0, 0.0, 0.0, 0, "in range"),
        ],
        [],
        id="the limits 8.0 and 2.0 are in range",
    ),
    pytest.param(
        [(0, 5.0), (1435, 9.0), (1445, 5.0), (2879, 5.0)],
        [
            (0, 2, 1, 5.0, 9.0, 7.0, 0.0, 5.0, 1435.0, 1, "out of range"),
            (1, 2, 0, 5.0, 5.0, 5.0, 1.0, 5.0, 1434.0, 1, "out of range"),
        ],
        [(0, 1435), (1445, 2879)],
        id="a stretch over midnight is split between the days; long silences are unknown",
    ),
    pytest.param(
        [],
        [
            (0, 0, 0, None, None, None, 0.0, 0.0, 1440.0, 1, "no data"),
            (1, 0, 0, None, None, None, 0.0, 0.0, 1440.0, 1, "no data"),
        ],
        [(0, 2880)],
        id="no reading at all: the whole window is one gap, unknown",
    ),
    pytest.param(
        [(-3, 9.0), *every_minute(5, 2879, 5.0)],
        [(0, 1435, 0, 5.0, 5.0, 5.0, 1435.0, 5.0, 0.0, 0, "out of range"), (1, *IN_RANGE_DAY)],
        [],
        id="a reading 3 min before the window judges its first 5 minutes (out of range), but is not counted",
    ),
    pytest.param(
        [(-5, 5.0), *every_minute(10, 2879, 5.0)],
        [(0, 1430, 0, 5.0, 5.0, 5.0, 1430.0, 0.0, 10.0, 1, "incomplete data"), (1, *IN_RANGE_DAY)],
        [(0, 10)],
        id="the reading before the window is 15 min before the first: the first 10 minutes are unknown",
    ),
    pytest.param(
        every_minute(0, 2860, 5.0),
        [(0, *IN_RANGE_DAY), (1, 1421, 0, 5.0, 5.0, 5.0, 1420.0, 0.0, 20.0, 1, "incomplete data")],
        [(2860, 2880)],
        id="silent for the last 20 minutes and nothing after the window: unknown",
    ),
    pytest.param(
        [*every_minute(0, 2875, 5.0), (2882, 9.0)],
        [(0, *IN_RANGE_DAY), (1, 1436, 0, 5.0, 5.0, 5.0, 1440.0, 0.0, 0.0, 0, "in range")],
        [],
        id="the next reading after the window (7 min later) proves the last 5 minutes; it is not counted",
    ),
    pytest.param(
        [(0, 4.0), (5, 5.0), (10, 6.5)],
        [
            (0, 3, 0, 4.0, 6.5, 5.167, 10.0, 0.0, 1430.0, 1, "incomplete data"),
            (1, 0, 0, None, None, None, 0.0, 0.0, 1440.0, 1, "no data"),
        ],
        [(10, 2880)],
        id="min, max and mean of three readings; silence after the last is unknown to the end",
    ),
]


@pytest.mark.parametrize(("readings", "rows", "gaps"), CASES)
def test_daily_rows(
    readings: list[tuple[float, float]], rows: list[tuple[object, ...]], gaps: list[tuple[float, float]]
) -> None:
    """Each case gives exactly these day rows and gaps."""
    got_rows, got_gaps = run(readings)
    assert got_rows == rows
    assert got_gaps == gaps


def test_minutes_always_add_up_to_the_window() -> None:
    """For every sensor and day, in range + out of range + unknown = the minutes of the day in the window."""
    readings = [(m * 7 % 2880, 1.0 + (m % 11)) for m in range(0, 2880, 3)]
    rows, _ = run(sorted(readings))
    for row in rows:
        assert row[6] + row[7] + row[8] == pytest.approx(1440.0)  # type: ignore[operator]


def test_shake_at_the_threshold_is_out_of_range() -> None:
    """A shake sensor is out of range at peak_g >= agitation_g (0.5 g shakes the stock)."""
    shake = SensorInfo("s-1", "main", "fridge-a", "shake", None, 0.5)
    rows, _ = run([(0, 0.1), (1, 0.5), (2, 0.49), *every_minute(3, 2879, 0.0)], info=shake)
    assert rows[0][:3] == (0, 1440, 1)
    assert rows[0][6:8] == (1439.0, 1.0)


def test_sensors_without_limits_are_not_judged() -> None:
    """A sensor whose unit is not configured has statistics and gaps but no in/out minutes."""
    loose = SensorInfo("t-x", "old", "gone", "temperature")
    rows, _ = run(every_minute(0, 2879, 30.0), info=loose)
    assert rows[0][1:3] == (1440, 0)
    assert rows[0][6:9] == (0.0, 0.0, 0.0)
    assert rows[0][10] == "not judged"


def test_a_partial_day_window() -> None:
    """A window starting at 06:00 reports only the 18 hours of its first day."""
    aggregator = DailyAggregator(START + 6 * 60 * MIN, START + DAY_MS, GAP, [T1])
    for m in range(6 * 60, 1440):
        aggregator.add("t-1", "main", "fridge-a", "temperature", START + m * MIN, 5.0)
    (row,) = aggregator.finish()
    assert (row.readings, row.ms_in / MIN, row.ms_unknown) == (1080, 1080.0, 0)


def test_unconfigured_sensors_found_in_the_data_get_their_own_rows() -> None:
    """Readings of a sensor not in the selection still get day rows, with limits from ``limits_of``."""
    aggregator = DailyAggregator(
        START, END, GAP, [], limits_of=lambda sensor, site, unit, kind: SensorInfo(sensor, site, unit, kind, 2.0, 8.0)
    )
    for m in range(2880):
        aggregator.add("t-new", "main", "fridge-a", "temperature", START + m * MIN, 9.0)
    rows = aggregator.finish()
    assert [(r.info.sensor, r.ms_out / MIN, r.status) for r in rows] == [
        ("t-new", 1440.0, "out of range"),
        ("t-new", 1440.0, "out of range"),
    ]
