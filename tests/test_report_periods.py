"""Scheduled report periods (core/report_periods.py) and report_failed (core/report_rules.py); pure."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from coldchain.core.report_periods import MAX_CATCH_UP, Every, due, last_ended, parse_period, period_of
from coldchain.core.report_rules import ReportFailures


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("every", "day", "zone", "name", "start", "end"),
    [
        ("day", date(2026, 11, 30), "UTC", "2026-11-30", utc(2026, 11, 30), utc(2026, 12, 1)),
        # a Berlin day in winter runs 23:00 to 23:00 UTC
        ("day", date(2026, 11, 30), "Europe/Berlin", "2026-11-30", utc(2026, 11, 29, 23), utc(2026, 11, 30, 23)),
        # the spring-forward day has 23 hours, the fall-back day 25
        ("day", date(2026, 3, 29), "Europe/Berlin", "2026-03-29", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        ("day", date(2026, 10, 25), "Europe/Berlin", "2026-10-25", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        # ISO weeks run Monday to Sunday; week 48 of 2026 is 23-29 November
        ("week", date(2026, 11, 25), "UTC", "2026-W48", utc(2026, 11, 23), utc(2026, 11, 30)),
        # a week across the new year belongs to the ISO year of its Monday
        ("week", date(2027, 1, 1), "UTC", "2026-W53", utc(2026, 12, 28), utc(2027, 1, 4)),
        ("month", date(2026, 11, 17), "UTC", "2026-11", utc(2026, 11, 1), utc(2026, 12, 1)),
        # a New York month across the fall-back change: EDT at its start, EST at its end
        ("month", date(2026, 11, 17), "America/New_York", "2026-11", utc(2026, 11, 1, 4), utc(2026, 12, 1, 5)),
        ("month", date(2028, 2, 29), "UTC", "2028-02", utc(2028, 2, 1), utc(2028, 3, 1)),  # leap year
    ],
)
def test_periods(every: Every, day: date, zone: str, name: str, start: datetime, end: datetime) -> None:
    """Each period's name and its [start, end) in UTC from local midnights; parse_period reads the name back."""
    period = period_of(every, day, zone)
    assert (period.name, period.start, period.end) == (name, start, end)
    assert parse_period(every, name, zone) == period


@pytest.mark.parametrize(
    ("every", "text"),
    [("day", "2026-11"), ("week", "2026-11-30"), ("month", "2026-W48"), ("day", "2026-02-30"), ("week", "2026-W54")],
)
def test_wrong_period_names_are_refused(every: Every, text: str) -> None:
    """A period written for another kind, or a day that does not exist, is a ValueError naming the form."""
    with pytest.raises(ValueError, match="period"):
        parse_period(every, text)


@pytest.mark.parametrize(
    ("every", "now", "zone", "done", "expected"),
    [
        # first run ever: only the period that just ended
        ("day", utc(2026, 12, 1, 0, 5), "UTC", [], ["2026-11-30"]),
        # before local midnight in Berlin (22:59 UTC is 23:59 CET) the 30th has not ended
        ("day", utc(2026, 11, 30, 22, 59), "Europe/Berlin", [], ["2026-11-29"]),
        ("day", utc(2026, 11, 30, 23, 0), "Europe/Berlin", [], ["2026-11-30"]),
        # already done: nothing due
        ("day", utc(2026, 12, 1, 12), "UTC", ["2026-11-30"], []),
        # down for three days: every missed day, oldest first
        ("day", utc(2026, 12, 1, 9), "UTC", ["2026-11-27"], ["2026-11-28", "2026-11-29", "2026-11-30"]),
        # week: done W47, now Tuesday of W49 -> W48
        ("week", utc(2026, 12, 1), "UTC", ["2026-W47"], ["2026-W48"]),
        # month: down over two month ends
        ("month", utc(2027, 1, 2), "UTC", ["2026-10"], ["2026-11", "2026-12"]),
        # directories that are not periods of this report are ignored
        ("month", utc(2026, 12, 2), "UTC", ["notes", "2026-11-30"], ["2026-11"]),
    ],
)
def test_which_periods_are_due(every: Every, now: datetime, zone: str, done: list[str], expected: list[str]) -> None:
    """The period just ended on a first run; after downtime every period after the newest done, oldest first."""
    assert [p.name for p in due(every, now, done, zone)] == expected


def test_catch_up_is_bounded() -> None:
    """After a long outage at most MAX_CATCH_UP periods run at once (the newest ones)."""
    periods = due("day", utc(2026, 12, 1), ["2026-01-01"])
    assert len(periods) == MAX_CATCH_UP and periods[-1].name == "2026-11-30"


def test_last_ended_week_and_month() -> None:
    """The previous ISO week and calendar month, in the report's zone."""
    assert last_ended("week", utc(2026, 11, 30, 0, 1)).name == "2026-W48"
    assert last_ended("month", utc(2026, 11, 30, 23, 30), "Europe/Berlin").name == "2026-11"  # 00:30 on 1 Dec


def test_report_failed_opens_on_failure_and_resolves_on_the_next_success() -> None:
    """One alert per report (warning, subject its name), updated by further failures, resolved by a success."""
    book = ReportFailures()
    (opened,) = book.failed("monthly-qa", "main", "2026-11", "disk full", utc(2026, 12, 1, 0, 5))
    assert (opened.change, opened.alert.kind, opened.alert.subject, opened.alert.severity) == (
        "opened",
        "report_failed",
        "monthly-qa",
        "warning",
    )
    (again,) = book.failed("monthly-qa", "main", "2026-11", "still full", utc(2026, 12, 1, 0, 20))
    assert again.change == "updated" and again.alert.id == opened.alert.id and "still full" in again.alert.message
    restored = ReportFailures(book.snapshot())
    assert restored.succeeded("other", "2026-11", utc(2026, 12, 1, 1)) == []
    (resolved,) = restored.succeeded("monthly-qa", "2026-11", utc(2026, 12, 1, 1))
    assert resolved.alert.state == "resolved" and resolved.alert.resolved_at == utc(2026, 12, 1, 1)
    assert restored.open_alerts() == []
