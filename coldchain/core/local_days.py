"""Local calendar days of an IANA time zone as UTC intervals in integer milliseconds; pure (stdlib only).

A site's day is its local calendar date. Day ``D`` starts at the instant its local midnight names
(``D 00:00`` with the UTC offset in force just before it: the earlier one where midnight happens twice,
the one before a change where midnight is skipped) and ends where day ``D + 1`` starts. So:

- the days of a zone tile time exactly: every instant is in exactly one day, and
  ``start(D + 1) == end(D)``;
- a day's length is ``24 h + offset at its midnight - offset at the next midnight``: 23 hours on the
  day clocks spring forward, 25 on the day they fall back (23.5 for a half-hour change);
- a day a zone skipped altogether (Samoa's 2011-12-30) has no length and is never listed.

Days are numbered like ``DAY_MS`` days of UTC: ``index`` is the local date's days since 1970-01-01.
``DayCalendar.day_index(t)`` is the aggregator's hot path: it caches the interval of the last day
it answered and asks zoneinfo only when ``t`` leaves it (once per day per calendar, not per reading).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def offset_text(offset_ms: int) -> str:
    """``+01:00``, ``-04:00``, ``+05:45``: a UTC offset as RFC 3339 writes it."""
    sign = "-" if offset_ms < 0 else "+"
    minutes = abs(offset_ms) // 60_000
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class LocalDay:
    """One local day: its date, its UTC interval [start_ms, end_ms) and the offsets at both midnights."""

    index: int
    """The local date's days since 1970-01-01."""
    start_ms: int
    end_ms: int
    offset_start_ms: int
    """The UTC offset of the day's own midnight."""
    offset_end_ms: int
    """The UTC offset of the next day's midnight (differs on a day with a DST change)."""

    @property
    def date(self) -> date:
        return date.fromordinal(self.index + _EPOCH_ORDINAL)

    @property
    def date_text(self) -> str:
        return self.date.isoformat()

    @property
    def ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def hours(self) -> int | float:
        """23, 24 or 25 (23.5 or 24.5 where a zone changes by half an hour): an int when whole."""
        whole, rest = divmod(self.ms, HOUR_MS)
        return whole if not rest else self.ms / HOUR_MS

    @property
    def hours_text(self) -> str:
        return f"{self.hours:g}"

    @property
    def changes(self) -> bool:
        """Whether the UTC offset changes during the day (a DST change, or a zone's change of rules)."""
        return self.offset_start_ms != self.offset_end_ms

    @property
    def utc_offset(self) -> str:
        """``+01:00``, or ``+01:00→+02:00`` on a day the offset changes."""
        first = offset_text(self.offset_start_ms)
        return f"{first}→{offset_text(self.offset_end_ms)}" if self.changes else first

    @property
    def note(self) -> str:
        """``23-hour day (DST)`` on a day that is not 24 hours long, else empty."""
        return f"{self.hours_text}-hour day (DST)" if self.ms != DAY_MS else ""


def index_of(day: date) -> int:
    """A date's days since 1970-01-01."""
    return day.toordinal() - _EPOCH_ORDINAL


class DayCalendar:
    """The local days of one zone. Days are computed once and kept; ``day_index`` caches the current day."""

    __slots__ = ("_current", "_days", "timezone", "zone")

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self._days: dict[int, LocalDay] = {}
        self._current = (0, 0, 0)
        """(start, end, index) of the day last answered: one tuple, so threads sharing a calendar agree."""

    def _midnight(self, index: int) -> tuple[int, int]:
        """(UTC ms, offset ms) of local midnight starting day ``index`` (fold 0: the earlier offset)."""
        wall = datetime(1970, 1, 1, tzinfo=self.zone) + timedelta(days=index)
        offset = wall.utcoffset()
        offset_ms = 0 if offset is None else int(offset.total_seconds() * 1000)
        return index * DAY_MS - offset_ms, offset_ms

    def day(self, index: int) -> LocalDay:
        """Day ``index`` (days since 1970-01-01 of the local date)."""
        found = self._days.get(index)
        if found is None:
            start, first = self._midnight(index)
            end, last = self._midnight(index + 1)
            found = self._days[index] = LocalDay(index, start, end, first, last)
        return found

    def start_of(self, day: date) -> int:
        """The UTC instant (ms) at which local ``day`` begins."""
        return self.day(index_of(day)).start_ms

    def day_index(self, t: int) -> int:
        """The index of the local day holding the instant ``t`` (epoch ms)."""
        lo, hi, current = self._current
        if lo <= t < hi:
            return current
        local = datetime.fromtimestamp(t // 1000, UTC).astimezone(self.zone)
        index = local.toordinal() - _EPOCH_ORDINAL
        day = self.day(index)
        while t < day.start_ms:
            index -= 1
            day = self.day(index)
        while t >= day.end_ms:
            index += 1
            day = self.day(index)
        self._current = (day.start_ms, day.end_ms, index)
        return index

    def days(self, start_ms: int, end_ms: int) -> list[LocalDay]:
        """The days overlapping [start_ms, end_ms), oldest first (days of no length left out)."""
        if end_ms <= start_ms:
            return []
        first, last = self.day_index(start_ms), self.day_index(end_ms - 1)
        return [d for d in (self.day(i) for i in range(first, last + 1)) if d.ms > 0]


@lru_cache(maxsize=64)
def calendar(timezone: str) -> DayCalendar:
    """The shared calendar of ``timezone`` (an IANA name the configuration has validated)."""
    return DayCalendar(timezone)
