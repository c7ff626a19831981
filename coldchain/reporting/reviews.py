"""The daily reviews in an export: ``reviews.csv`` and, on report.pdf, each unit's days with their review.

Reviews are read from measurement ``review`` (``core/review.py``), each matched to the report's days by
its local date (the site's zone, recorded when it was signed). On report.pdf every day of a unit's
daily summary shows who reviewed it, when and the note; a workday without a review says NOT REVIEWED,
any other day "no review due".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from coldchain.adapters.store.port import Store
from coldchain.core.inventory import Inventory
from coldchain.core.times import format_time

REVIEW_COLUMNS = (
    "local_date",
    "site",
    "unit",
    "signed_at",
    "signed_by",
    "full_name",
    "meaning",
    "note",
    "window_from",
    "window_to",
    "figures",
    "signature_id",
)
"""reviews.csv: every signed daily review of the period (figures as the JSON the reviewer signed for)."""

NOT_REVIEWED = "NOT REVIEWED"
NO_REVIEW_DUE = "no review due"


def read_reviews(store: Store, start: datetime, end: datetime, tags: Mapping[str, str] | None) -> list[dict[str, Any]]:
    """The reviews signed in [start, end), oldest first."""
    return list(store.read_range("review", start, end, tags))


def review_row(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """One line of reviews.csv."""
    return (
        row.get("local_date"),
        row.get("site"),
        row.get("unit"),
        format_time(row["time"]),
        row.get("by"),
        row.get("full_name"),
        row.get("meaning"),
        row.get("note") or None,
        row.get("window_from"),
        row.get("window_to"),
        row.get("figures"),
        row.get("signature_id"),
    )


def report_days(daily: Sequence[Sequence[str]], start: datetime, end: datetime, timezone: str) -> list[str]:
    """The report's days of a unit (the dates of its daily summary), or the local dates of [start, end)."""
    days = sorted({row[0][:10] for row in daily if _is_date(row[0][:10])})
    if days:
        return days
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def review_lines(
    days: Sequence[str], reviews: Sequence[Mapping[str, Any]], workdays: frozenset[int]
) -> list[list[str]]:
    """Rows of report.pdf's "Daily review" table: each day's reviews, or NOT REVIEWED on a workday without one."""
    by_day: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for review in reviews:
        by_day[str(review.get("local_date"))].append(review)
    lines = []
    for day in days:
        found = by_day.get(day)
        if found:
            for r in found:
                who = f"{r.get('full_name') or r.get('by')} ({r.get('by')})"
                lines.append([day, "reviewed", who, format_time(r["time"]), str(r.get("note") or "")])
        elif date.fromisoformat(day).weekday() in workdays:
            lines.append([day, NOT_REVIEWED, "", "", ""])
        else:
            lines.append([day, NO_REVIEW_DUE, "", "", ""])
    return lines


def attach_reviews(
    data: Any, inventory: Inventory, reviews: Sequence[Mapping[str, Any]], start: datetime, end: datetime
) -> None:
    """Fill each unit section's ``reviews`` (``report_pdf.UnitSection``) from the stored reviews."""
    by_unit: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for review in reviews:
        by_unit[str(review.get("unit"))].append(review)
    for section in data.units:
        site = inventory.site(section.site)
        days = report_days(section.daily, start, end, site.timezone)
        section.reviews = review_lines(days, by_unit.get(section.unit, []), site.workdays)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
