"""The periods of scheduled reports (``[[reports]]``) in a site's time zone, and which are due; pure.

A report covers the previous local day, ISO week (Monday to Sunday) or calendar month of its site's
zone (UTC without a site), and runs once the period has ended (after local midnight). Periods are
named ``2026-11-30``, ``2026-W48`` and ``2026-11``: the name of the directory its export is kept in.

``due`` answers which periods to run at ``now`` given the ones already done: the period that just
ended when none was ever done, else every period after the newest one done up to the one that just
ended (a catch-up after downtime), at most ``MAX_CATCH_UP`` of them, oldest first.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Every = Literal["day", "week", "month"]
MAX_CATCH_UP = 31
"""Most periods run at once after downtime (a month of days; older ones can be run by hand)."""

_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """One report period: its name, its local first and last day, and the instants [start, end) in UTC."""

    every: Every
    name: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def period_of(every: Every, day: date, timezone: str = "UTC") -> Period:
    """The period of kind ``every`` that holds local ``day``."""
    if every == "day":
        first, last, name = day, day, day.isoformat()
    elif every == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
        year, week, _ = first.isocalendar()
        name = f"{year:04d}-W{week:02d}"
    else:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        last = following - timedelta(days=1)
        name = f"{first.year:04d}-{first.month:02d}"
    zone = ZoneInfo(timezone)
    return Period(every, name, first, last, _midnight(first, zone), _midnight(last + timedelta(days=1), zone))


def parse_period(every: Every, text: str, timezone: str = "UTC") -> Period:
    """The period named ``text`` (``2026-11-30``, ``2026-W48`` or ``2026-11``, as ``every`` asks); ValueError else."""
    examples = {"day": "2026-11-30", "week": "2026-W48", "month": "2026-11"}
    pattern = {"day": _DAY, "week": _WEEK, "month": _MONTH}[every]
    match = pattern.match(text.strip())
    if match is None:
        raise ValueError(f"a {every} report's period is written like {examples[every]}, not {text!r}")
    numbers = [int(part) for part in match.groups()]
    try:
        if every == "day":
            day = date(*numbers)
        elif every == "week":
            day = date.fromisocalendar(numbers[0], numbers[1], 1)
        else:
            day = date(numbers[0], numbers[1], 1)
    except ValueError as exc:
        raise ValueError(f"period {text!r}: {exc}") from None
    return period_of(every, day, timezone)


def following(period: Period, timezone: str = "UTC") -> Period:
    """The period after ``period``."""
    return period_of(period.every, period.last_day + timedelta(days=1), timezone)


def last_ended(every: Every, now: datetime, timezone: str = "UTC") -> Period:
    """The newest period that has ended by ``now`` (local midnight passed)."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    current = period_of(every, today, timezone)
    return period_of(every, current.first_day - timedelta(days=1), timezone)


def due(every: Every, now: datetime, done: Collection[str], timezone: str = "UTC") -> list[Period]:
    """The periods to run at ``now``, oldest first, given the names of those already done."""
    last = last_ended(every, now, timezone)
    known = []
    for name in done:
        try:
            known.append(parse_period(every, name, timezone))
        except ValueError:
            continue  # not a period directory of this report
    if not known:
        return [last]
    newest = max(known, key=lambda p: p.start)
    out: list[Period] = []
    period = following(newest, timezone)
    while period.start <= last.start:
        out.append(period)
        period = following(period, timezone)
    return out[-MAX_CATCH_UP:]
