"""Per-sensor, per-day aggregation of readings, with time out of range and data gaps; pure.

Readings arrive one at a time, oldest first (per sensor; sensors may interleave), and only
per-sensor-day aggregates are kept, so a year of 1-minute readings needs constant memory.

How time is attributed (all arithmetic in integer milliseconds; days are the local calendar days of
the sensor's site, ``SensorInfo.timezone``, from ``local_days.py``: 23 or 25 hours long on the days
the clocks change):

- Each reading stands for the time from itself to the sensor's next reading: that stretch counts
  as in range or out of range by the reading's value (sample and hold).
- When two consecutive readings are more than ``gap_ms`` apart, the whole stretch between them is
  a *gap*: its time is **unknown**, never in range, whatever the readings on either side say.
- The stretch from the window's start to the sensor's first reading is judged by the last reading
  before the window (the caller feeds readings from ``start - gap_ms`` on; those only set the
  state); without one it is unknown. Likewise the stretch from the last reading to the window's end
  is judged by the next reading after the window (fed up to ``end + gap_ms``); without one, it is
  covered by the last reading if it is at most ``gap_ms`` long, else unknown.
- A sensor with no reading at all is unknown for the whole window.

So for every sensor and day, minutes in range + out of range + unknown = the minutes of that local
day inside the window. Out of range means, for temperature, below ``low`` or above ``high`` (the limits
themselves are in range, as the rules judge them); for shake, ``peak_g`` at or above ``high``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from coldchain.core.local_days import DAY_MS, DayCalendar, LocalDay, calendar

__all__ = ["DAY_MS", "MINUTE_MS", "DailyAggregator", "DailyRow", "Gap", "SensorInfo"]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """A sensor's place and the limits its readings are judged by (None: not judged)."""

    sensor: str
    site: str
    unit: str
    kind: str
    """``temperature`` or ``shake``."""
    low: float | None = None
    """Temperature: lowest in-range value. Unused for shake."""
    high: float | None = None
    """Temperature: highest in-range value. Shake: the agitation threshold (at or above is out)."""
    timezone: str = "UTC"
    """The site's IANA zone: the sensor's days are its local days."""

    def is_out(self, value: float) -> bool | None:
        """Whether ``value`` is out of range; None when the sensor has no limits."""
        if self.kind == "shake":
            return None if self.high is None else value >= self.high
        if self.low is None or self.high is None:
            return None
        return value < self.low or value > self.high


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch without data for a sensor: its time is unknown."""

    info: SensorInfo
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One sensor's day: reading statistics and how its minutes divide."""

    day: int
    """The local date's days since 1970-01-01 (``local.index``)."""
    info: SensorInfo
    readings: int
    readings_out: int
    min: float | None
    max: float | None
    mean: float | None
    ms_in: int
    ms_out: int
    ms_unjudged: int
    """Time covered by readings of a sensor without limits."""
    ms_unknown: int
    gaps: int
    """Gaps that touch this day."""
    local: LocalDay
    """The local day: date, UTC interval, offsets and length (``timezone`` is ``info.timezone``)."""

    @property
    def status(self) -> str:
        """``no data``, ``out of range``, ``incomplete data``, ``not judged`` or ``in range``."""
        if self.readings == 0 and self.ms_in == self.ms_out == self.ms_unjudged == 0:
            return "no data"
        if self.ms_out or self.readings_out:
            return "out of range"
        if self.ms_unknown:
            return "incomplete data"
        if self.ms_unjudged:
            return "not judged"
        return "in range"


class _Day:
    __slots__ = ("count", "gaps", "hi", "lo", "ms_in", "ms_out", "ms_unjudged", "ms_unknown", "out", "total")

    def __init__(self) -> None:
        self.count = 0
        self.out = 0
        self.lo = float("inf")
        self.hi = float("-inf")
        self.total = 0.0
        self.ms_in = 0
        self.ms_out = 0
        self.ms_unjudged = 0
        self.ms_unknown = 0
        self.gaps = 0


class _Track:
    __slots__ = ("cal", "day", "days", "done", "hi", "info", "last", "last_out", "lo", "stats")

    def __init__(self, info: SensorInfo) -> None:
        self.info = info
        self.cal: DayCalendar = calendar(info.timezone)
        self.days: dict[int, _Day] = {}
        self.last: int | None = None
        self.last_out: bool | None = None
        self.done = False
        self.day = -(1 << 62)
        """The local day of ``stats``; [lo, hi) is its UTC interval (the hot path's cache)."""
        self.lo = 0
        self.hi = 0
        self.stats = _Day()

    def at_time(self, t: int) -> _Day:
        """The stats of the local day holding ``t``, made current."""
        if self.lo <= t < self.hi:
            return self.stats
        index = self.cal.day_index(t)
        day = self.cal.day(index)
        self.lo, self.hi = day.start_ms, day.end_ms
        return self.at(index)

    def at(self, day: int) -> _Day:
        if day != self.day:
            stats = self.days.get(day)
            if stats is None:
                stats = self.days[day] = _Day()
            self.day, self.stats = day, stats
            bounds = self.cal.day(day)
            self.lo, self.hi = bounds.start_ms, bounds.end_ms
        return self.stats


class DailyAggregator:
    """Feed readings with ``add``; ``finish`` gives the daily rows. Gaps go to ``on_gap`` as found."""

    def __init__(
        self,
        start_ms: int,
        end_ms: int,
        gap_ms: int,
        sensors: Iterable[SensorInfo] = (),
        on_gap: Callable[[Gap], None] | None = None,
        limits_of: Callable[[str, str, str, str], SensorInfo] | None = None,
    ) -> None:
        """``sensors`` are reported even without readings; ``limits_of(sensor, site, unit, kind)`` gives the
        info of a sensor first seen in the data (default: no limits)."""
        if end_ms <= start_ms:
            raise ValueError("the window is empty")
        self.start = start_ms
        self.end = end_ms
        self.gap = gap_ms
        self.on_gap = on_gap
        self.limits_of = limits_of
        self._tracks: dict[str, _Track] = {info.sensor: _Track(info) for info in sensors}
        self.readings = 0
        """Readings inside the window."""

    def _track(self, sensor: str, site: str, unit: str, kind: str) -> _Track:
        info = self.limits_of(sensor, site, unit, kind) if self.limits_of else SensorInfo(sensor, site, unit, kind)
        track = self._tracks[sensor] = _Track(info)
        return track

    def add(self, sensor: str, site: str, unit: str, kind: str, t: int, value: float) -> None:
        """One reading at ``t`` (epoch ms). Readings before the window or after it only set the context."""
        track = self._tracks.get(sensor)
        if track is None:
            track = self._track(sensor, site, unit, kind)
        if track.done:
            return
        if t < self.start:
            track.last = t
            track.last_out = track.info.is_out(value)
            return
        last = track.last
        end = self.end
        if t >= end:  # the first reading after the window closes its last stretch
            self._attribute(track, last, end, t - last > self.gap if last is not None else True)
            track.done = True
            return
        out = track.info.is_out(value)
        if last is None:
            self._attribute(track, None, t, True)
        elif t > last:
            if t - last > self.gap:
                self._attribute(track, last, t, True)
            elif last >= self.start and track.lo <= last and t < track.hi:  # the common case: same day, no gap
                stats = track.stats
                state = track.last_out
                if state is None:
                    stats.ms_unjudged += t - last
                elif state:
                    stats.ms_out += t - last
                else:
                    stats.ms_in += t - last
            else:
                self._attribute(track, last, t, False)
        stats = track.stats if track.lo <= t < track.hi else track.at_time(t)
        stats.count += 1
        stats.total += value
        if value < stats.lo:
            stats.lo = value
        if value > stats.hi:
            stats.hi = value
        if out:
            stats.out += 1
        track.last = t
        track.last_out = out
        self.readings += 1

    def _attribute(self, track: _Track, last: int | None, until: int, unknown: bool) -> None:
        """Attribute [max(last, start), until) to the track's days: unknown (a gap) or by the last state."""
        a = self.start if last is None or last < self.start else last
        b = until if until < self.end else self.end
        if b <= a:
            return
        if unknown and self.on_gap is not None:
            self.on_gap(Gap(track.info, a, b))
        state = track.last_out
        while a < b:
            stats = track.at_time(a)
            day_end = track.hi
            stop = b if b < day_end else day_end
            span = stop - a
            if unknown:
                stats.ms_unknown += span
                stats.gaps += 1
            elif state is None:
                stats.ms_unjudged += span
            elif state:
                stats.ms_out += span
            else:
                stats.ms_in += span
            a = stop

    def finish(self) -> list[DailyRow]:
        """Close every sensor's last stretch; one row per sensor and day, by unit, sensor, day."""
        for track in self._tracks.values():
            if track.done:
                continue
            last = track.last
            if last is None:
                self._attribute(track, None, self.end, True)
            else:
                self._attribute(track, last, self.end, self.end - last > self.gap)
            track.done = True
        rows: list[DailyRow] = []
        for track in sorted(self._tracks.values(), key=lambda t: (t.info.site, t.info.unit, t.info.sensor)):
            for local in track.cal.days(self.start, self.end):
                stats = track.days.get(local.index) or _Day()
                has = stats.count > 0
                rows.append(
                    DailyRow(
                        day=local.index,
                        info=track.info,
                        readings=stats.count,
                        readings_out=stats.out,
                        min=stats.lo if has else None,
                        max=stats.hi if has else None,
                        mean=stats.total / stats.count if has else None,
                        ms_in=stats.ms_in,
                        ms_out=stats.ms_out,
                        ms_unjudged=stats.ms_unjudged,
                        ms_unknown=stats.ms_unknown,
                        gaps=stats.gaps,
                        local=local,
                    )
                )
        return rows
