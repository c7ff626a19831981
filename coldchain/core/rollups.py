"""Rollups: one sensor's readings summed up per 5-minute interval and per day; pure.

A rollup is derived data, not a record of what happened: it can always be computed again from the
raw readings it covers, and rewriting it (same sensor, width and interval start) is how a late or
buffered reading corrects it. The readings themselves stay append-only.

What one rollup holds, for the readings with ``start <= ts < end`` of one sensor:

- ``count``, ``minimum``, ``maximum``, ``total`` (their sum) and ``mean`` (``total / count``);
- ``out_ms``: time out of range, by sample and hold *inside the 5-minute interval*: each reading
  stands for the time from itself to the next reading of the same interval, or to the interval's
  end, and for at most ``gap_ms`` (a longer silence is unknown, never out of range). The stretch
  before an interval's first reading is not attributed. So a 5-minute rollup depends on its own
  readings only, and can be recomputed from them alone.

A daily rollup is the combination of its 5-minute rollups (``combine``): counts, totals and
``out_ms`` add up, extremes are the extremes. It therefore counts time out of range the same way,
which can differ by up to an interval's first-reading offset from the export's daily tables
(``core/daily.py`` carries a reading across interval boundaries); exports keep reading raw readings.

Where a day begins is ``DayBounds``: UTC days by default (``utc_day``); a site calendar can pass its
own local-day function instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from coldchain.core.local_days import calendar
from coldchain.core.times import from_millis, to_millis

Width = Literal["5m", "1d"]
FIVE_MINUTES_MS = 300_000
DAY_MS = 86_400_000
MEASUREMENTS: dict[Width, str] = {"5m": "rollup_5m", "1d": "rollup_1d"}
"""The measurement each width is stored in."""

DayBounds = Callable[[datetime], tuple[datetime, datetime]]
"""The day an instant falls in: ``(start, end)``, aware datetimes."""


def utc_day(ts: datetime) -> tuple[datetime, datetime]:
    """The UTC day of ``ts``: midnight to midnight (UTC)."""
    ts = ts.astimezone(UTC)
    start = datetime(ts.year, ts.month, ts.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def local_day(timezone: str) -> DayBounds:
    """The local days of ``timezone`` (``[[sites]] timezone``), as the exports' daily tables count them."""
    if timezone == "UTC":
        return utc_day
    days = calendar(timezone)

    def bounds(ts: datetime) -> tuple[datetime, datetime]:
        day = days.day(days.day_index(to_millis(ts)))
        return from_millis(day.start_ms), from_millis(day.end_ms)

    return bounds


def interval_start_ms(ts_ms: int, width_ms: int = FIVE_MINUTES_MS) -> int:
    """The start (epoch ms) of the interval of ``width_ms`` that holds ``ts_ms``, aligned to the epoch."""
    return ts_ms - ts_ms % width_ms


@dataclass(frozen=True, slots=True)
class Band:
    """What counts as out of range for one sensor: temperature below ``low`` or above ``high`` (the
    limits themselves are in range, as the rules judge them); shake at or above ``high``."""

    kind: Literal["temperature", "shake"]
    low: float | None
    high: float | None

    def is_out(self, value: float) -> bool:
        if self.kind == "shake":
            return self.high is not None and value >= self.high
        return (self.low is not None and value < self.low) or (self.high is not None and value > self.high)


@dataclass(frozen=True, slots=True)
class SensorPlace:
    """The tags of a sensor's rollups and the band its readings are judged by."""

    sensor: str
    unit: str
    site: str
    band: Band


@dataclass(frozen=True, slots=True)
class Rollup:
    """One sensor's readings over ``[start, start + width)``: stored in ``rollup_5m`` or ``rollup_1d``."""

    sensor: str
    unit: str
    site: str
    kind: str
    width: str
    """``5m`` or ``1d``."""
    start: datetime
    count: int
    minimum: float
    maximum: float
    total: float
    mean: float
    out_ms: int

    @property
    def measurement(self) -> str:
        return MEASUREMENTS["1d" if self.width == "1d" else "5m"]


class Accumulator:
    """A 5-minute rollup built one reading at a time, in time order: ``add`` refuses (returns False)
    a reading at or before the last one, so the caller recomputes the interval from raw instead."""

    __slots__ = ("_last", "band", "count", "end_ms", "gap_ms", "maximum", "minimum", "out_ms", "start_ms", "total")

    def __init__(self, start_ms: int, band: Band, gap_ms: int, width_ms: int = FIVE_MINUTES_MS) -> None:
        self.start_ms = start_ms
        self.end_ms = start_ms + width_ms
        self.gap_ms = gap_ms
        self.band = band
        self.count = 0
        self.minimum = float("inf")
        self.maximum = float("-inf")
        self.total = 0.0
        self.out_ms = 0
        self._last: tuple[int, bool] | None = None

    def add(self, ts_ms: int, value: float) -> bool:
        """Take a reading of this interval; False (nothing taken) unless it is newer than the last."""
        if self._last is not None:
            last_ms, last_out = self._last
            if ts_ms <= last_ms:
                return False
            if last_out:
                self.out_ms += min(ts_ms - last_ms, self.gap_ms)
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        self._last = (ts_ms, self.band.is_out(value))
        return True

    def result(self, place: SensorPlace) -> Rollup | None:
        """The rollup (the last reading held to the interval's end), or None without readings."""
        if self._last is None:
            return None
        last_ms, last_out = self._last
        out_ms = self.out_ms + (min(self.end_ms - last_ms, self.gap_ms) if last_out else 0)
        return Rollup(
            place.sensor,
            place.unit,
            place.site,
            place.band.kind,
            "5m",
            from_millis(self.start_ms),
            self.count,
            self.minimum,
            self.maximum,
            self.total,
            self.total / self.count,
            out_ms,
        )


def rollup_of(
    readings: Iterable[tuple[datetime, float]], start: datetime, place: SensorPlace, gap: timedelta
) -> Rollup | None:
    """The 5-minute rollup starting at ``start`` from one sensor's ``(ts, value)`` readings (any order;
    ones outside the interval ignored; equal timestamps counted once, the first kept); None if none."""
    start_ms = to_millis(start)
    accumulator = Accumulator(start_ms, place.band, int(gap.total_seconds() * 1000))
    inside: dict[int, float] = {}
    for ts, value in readings:
        ts_ms = to_millis(ts)
        if start_ms <= ts_ms < accumulator.end_ms:
            inside.setdefault(ts_ms, value)
    for ts_ms in sorted(inside):
        accumulator.add(ts_ms, inside[ts_ms])
    return accumulator.result(place)


def rollups_of(readings: Iterable[tuple[datetime, float]], place: SensorPlace, gap: timedelta) -> list[Rollup]:
    """Every 5-minute rollup of one sensor's readings, oldest first."""
    by_interval: dict[int, list[tuple[datetime, float]]] = {}
    for ts, value in readings:
        by_interval.setdefault(interval_start_ms(to_millis(ts)), []).append((ts, value))
    found = (rollup_of(group, from_millis(start), place, gap) for start, group in sorted(by_interval.items()))
    return [rollup for rollup in found if rollup is not None]


class Combination:
    """Rollups of one sensor combined one at a time, oldest first, in constant memory (``combine``)."""

    __slots__ = ("count", "first", "maximum", "minimum", "out_ms", "total")

    def __init__(self) -> None:
        self.first: Rollup | None = None
        self.count = 0
        self.minimum = float("inf")
        self.maximum = float("-inf")
        self.total = 0.0
        self.out_ms = 0

    def add(self, part: Rollup) -> None:
        if self.first is None:
            self.first = part
        self.count += part.count
        self.minimum = min(self.minimum, part.minimum)
        self.maximum = max(self.maximum, part.maximum)
        self.total += part.total  # in interval order, so the same parts always give the same float
        self.out_ms += part.out_ms

    def result(self, start: datetime, width: Width = "1d") -> Rollup | None:
        first = self.first
        if first is None or self.count == 0:
            return None
        return Rollup(
            first.sensor,
            first.unit,
            first.site,
            first.kind,
            width,
            start,
            self.count,
            self.minimum,
            self.maximum,
            self.total,
            self.total / self.count,
            self.out_ms,
        )


def combine(parts: Sequence[Rollup], start: datetime, width: Width = "1d") -> Rollup | None:
    """The rollup over ``[start, …)`` made of ``parts`` (one sensor's 5-minute rollups, oldest first)."""
    combination = Combination()
    for part in parts:
        combination.add(part)
    return combination.result(start, width)


def daily_of(parts: Iterable[Rollup], day_of: DayBounds = utc_day) -> list[Rollup]:
    """The daily rollups of one sensor's 5-minute rollups (any order), by ``day_of``, oldest first."""
    by_day: dict[datetime, list[Rollup]] = {}
    for part in parts:
        by_day.setdefault(day_of(part.start)[0], []).append(part)
    days = (combine(sorted(group, key=lambda r: r.start), day) for day, group in sorted(by_day.items()))
    return [day for day in days if day is not None]
