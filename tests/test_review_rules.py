"""review_missed (core/review_rules.py) under an injected clock, and the review figures (core/review.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldchain.core.inventory import MONDAY_TO_FRIDAY, Inventory, Profile, Site, Unit
from coldchain.core.review import sensor_figures, window_start
from coldchain.core.review_rules import ReviewDeadlines, deadline_on, missed

PROFILE = Profile(
    2.0,
    8.0,
    0.0,
    *(timedelta(minutes=m) for m in (15, 5)),
    0.5,
    timedelta(minutes=5),
    timedelta(hours=8),
    timedelta(hours=1),
)
BERLIN = Site("main", timezone="Europe/Berlin", review_due=time(10, 0))
NEW_YORK = Site("ny", timezone="America/New_York", review_due=time(9, 30))
EVERY_DAY = Site("ward", timezone="Europe/Berlin", workdays=frozenset(range(7)), review_due=time(10, 0))
NO_DEADLINE = Site("plain")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("site", "last_review", "now", "missing"),
    [
        # Berlin winter (UTC+1): Tuesday 1 Dec 2026, 10:00 local is 09:00 UTC
        (BERLIN, None, utc(2026, 12, 1, 8, 59, 59), "2026-11-30"),  # Monday's deadline passed, never reviewed
        (BERLIN, utc(2026, 11, 30, 8, 0), utc(2026, 12, 1, 8, 59, 59), None),  # one second before the deadline
        (BERLIN, utc(2026, 11, 30, 8, 0), utc(2026, 12, 1, 9, 0), "2026-12-01"),  # exactly at review_due
        (BERLIN, utc(2026, 11, 30, 23, 0), utc(2026, 12, 1, 9, 0), None),  # signed after local midnight (00:00 CET)
        (BERLIN, utc(2026, 11, 30, 22, 59), utc(2026, 12, 1, 9, 0), "2026-12-01"),  # 23:59 CET is still Monday
        # weekends: Friday 4 Dec reviewed; Saturday and Sunday have no deadline, Monday's opens at 09:00 UTC
        (BERLIN, utc(2026, 12, 4, 7, 0), utc(2026, 12, 5, 12, 0), None),
        (BERLIN, utc(2026, 12, 4, 7, 0), utc(2026, 12, 6, 23, 59), None),
        (BERLIN, utc(2026, 12, 4, 7, 0), utc(2026, 12, 7, 9, 0), "2026-12-07"),
        # Berlin spring forward (Sun 29 Mar 2026): Monday 30 Mar 10:00 CEST is 08:00 UTC (it was 09:00 on Friday)
        (BERLIN, utc(2026, 3, 27, 8, 0), utc(2026, 3, 30, 7, 59), None),
        (BERLIN, utc(2026, 3, 27, 8, 0), utc(2026, 3, 30, 8, 0), "2026-03-30"),
        # Berlin fall back (Sun 25 Oct 2026): Monday 26 Oct 10:00 CET is 09:00 UTC (08:00 UTC on Friday)
        (BERLIN, utc(2026, 10, 23, 7, 0), utc(2026, 10, 26, 8, 30), None),
        (BERLIN, utc(2026, 10, 23, 7, 0), utc(2026, 10, 26, 9, 0), "2026-10-26"),
        # a site working on Sundays: the DST day itself has a deadline in the new offset
        (EVERY_DAY, utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 7, 59), None),
        (EVERY_DAY, utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 8, 0), "2026-03-29"),
        (EVERY_DAY, utc(2026, 10, 24, 8, 0), utc(2026, 10, 25, 8, 59), None),
        (EVERY_DAY, utc(2026, 10, 24, 8, 0), utc(2026, 10, 25, 9, 0), "2026-10-25"),
        # New York spring forward (Sun 8 Mar 2026): Monday 9 Mar 09:30 EDT is 13:30 UTC
        (NEW_YORK, utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 13, 29), None),
        (NEW_YORK, utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 13, 30), "2026-03-09"),
        # New York fall back (Sun 1 Nov 2026): Monday 2 Nov 09:30 EST is 14:30 UTC
        (NEW_YORK, utc(2026, 10, 30, 14, 0), utc(2026, 11, 2, 14, 29), None),
        (NEW_YORK, utc(2026, 10, 30, 14, 0), utc(2026, 11, 2, 14, 30), "2026-11-02"),
        # a review signed on Saturday covers Friday's missed one only until Monday's deadline
        (BERLIN, utc(2026, 12, 5, 10, 0), utc(2026, 12, 6, 10, 0), None),
        # no review_due: never missed
        (NO_DEADLINE, None, utc(2026, 12, 1, 12, 0), None),
    ],
)
def test_which_workday_review_is_missing(
    site: Site, last_review: datetime | None, now: datetime, missing: str | None
) -> None:
    """The missing review is the latest workday's whose review_due (local) passed with no review that local day."""
    found = missed(site, last_review, now)
    assert (found[0].isoformat() if found else None) == missing


def test_deadlines_follow_the_local_clock_across_dst() -> None:
    """The same 10:00 local deadline is 09:00 UTC in winter and 08:00 UTC in summer; none on a weekend."""
    from datetime import date

    assert deadline_on(BERLIN, date(2026, 3, 27)) == utc(2026, 3, 27, 9, 0)
    assert deadline_on(BERLIN, date(2026, 3, 30)) == utc(2026, 3, 30, 8, 0)
    assert deadline_on(BERLIN, date(2026, 3, 28)) is None
    assert BERLIN.workdays == MONDAY_TO_FRIDAY


def _deadlines() -> ReviewDeadlines:
    unit = Unit("fridge-a", "main", "Fridge A", "natalizumab", PROFILE, timedelta(minutes=15))
    return ReviewDeadlines(Inventory.of([unit], [], [BERLIN]))


def test_review_missed_opens_at_the_deadline_and_resolves_when_signed() -> None:
    """Opens at exactly review_due on a workday (started then), once; resolves at the signing; survives a restart."""
    book = _deadlines()
    book.learn("fridge-a", utc(2026, 11, 30, 8, 0))
    assert book.due(utc(2026, 12, 1, 8, 59, 59)) == []
    (opened,) = book.due(utc(2026, 12, 1, 9, 0))
    alert = opened.alert
    assert (opened.change, alert.kind, alert.subject, alert.severity, alert.started_at) == (
        "opened",
        "review_missed",
        "fridge-a",
        "warning",
        utc(2026, 12, 1, 9, 0),
    )
    assert book.due(utc(2026, 12, 1, 9, 1)) == []  # one episode
    restored = ReviewDeadlines(book.inventory, book.snapshot())
    assert restored.open_alerts() == [alert]
    (resolved,) = restored.signed("fridge-a", utc(2026, 12, 1, 9, 30))
    assert (resolved.change, resolved.alert.id, resolved.alert.resolved_at) == (
        "resolved",
        alert.id,
        utc(2026, 12, 1, 9, 30),
    )
    assert restored.due(utc(2026, 12, 1, 20, 0)) == []  # signed today: nothing missing until tomorrow's deadline


def test_a_review_signed_before_the_deadline_keeps_the_alert_closed() -> None:
    """A review signed at 09:59 local leaves nothing to open at 10:00."""
    book = _deadlines()
    assert book.signed("fridge-a", utc(2026, 12, 1, 8, 59)) == []
    assert book.due(utc(2026, 12, 1, 9, 0)) == []


@pytest.mark.parametrize(
    ("readings", "out", "unknown", "low", "high", "current"),
    [
        # in range throughout: one reading per 5 minutes over an hour
        ([(m, 5.0) for m in range(0, 60, 5)], 0.0, 0.0, 5.0, 5.0, 5.0),
        # 9.0 °C from minute 10 to minute 25 (the reading at 25 is back in range)
        (
            [(0, 5.0), (5, 5.0), (10, 9.0), (15, 9.0), (20, 9.0), (25, 5.0)] + [(m, 5.0) for m in range(30, 60, 5)],
            15.0,
            0.0,
            5.0,
            9.0,
            5.0,
        ),
        # boundaries 2.0 and 8.0 are in range
        ([(m, 8.0 if m % 10 else 2.0) for m in range(0, 60, 5)], 0.0, 0.0, 2.0, 8.0, 8.0),
        # a 30-minute silence (gap threshold 20 min) is unknown, never in or out of range
        ([(0, 5.0), (5, 9.0), (35, 5.0)] + [(m, 5.0) for m in range(40, 60, 5)], 0.0, 30.0, 5.0, 9.0, 5.0),
        # no reading at all: everything unknown, no figures
        ([], 0.0, 60.0, None, None, None),
    ],
)
def test_review_figures(
    readings: list[tuple[int, float]],
    out: float,
    unknown: float,
    low: float | None,
    high: float | None,
    current: float | None,
) -> None:
    """Min, max, current and time out of range are computed from the readings (sample and hold, gaps unknown)."""
    figures = sensor_figures("t-1", ((m * 60_000, v) for m, v in readings), 0, 3_600_000, 2.0, 8.0, 20 * 60_000)
    assert (figures.minutes_out_of_range, figures.minutes_unknown) == (out, unknown)
    assert (figures.min_celsius, figures.max_celsius, figures.current_celsius) == (low, high, current)


def test_the_window_starts_at_the_last_review_or_24_hours_back() -> None:
    """Since the last review; the last 24 h for a unit never reviewed."""
    now = utc(2026, 12, 1, 9, 0)
    assert window_start(utc(2026, 11, 30, 8, 0), now) == utc(2026, 11, 30, 8, 0)
    assert window_start(None, now) == now - timedelta(hours=24)


@pytest.mark.parametrize(
    ("day", "reviews", "expected"),
    [
        # a workday with a review: who (printed name and user), when, the note
        ("2026-12-01", [("2026-12-01", "08:15")], ["2026-12-01", "reviewed", "Kim Tech (k.tech)"]),
        # a workday without one
        ("2026-12-02", [], ["2026-12-02", "NOT REVIEWED", ""]),
        # a Saturday without one: nothing was due
        ("2026-12-05", [], ["2026-12-05", "no review due", ""]),
        # a review is matched by its local date, not by the UTC day of its time (23:30 UTC on the 1st, Berlin the 2nd)
        ("2026-12-02", [("2026-12-02", "23:30")], ["2026-12-02", "reviewed", "Kim Tech (k.tech)"]),
    ],
)
def test_report_days_show_each_review_or_not_reviewed(
    day: str, reviews: list[tuple[str, str]], expected: list[str]
) -> None:
    """report.pdf's daily review rows: the day's review, NOT REVIEWED on a workday, "no review due" otherwise."""
    from coldchain.reporting.reviews import review_lines

    rows = [
        {
            "local_date": local,
            "time": datetime.fromisoformat(f"2026-12-01T{at}:00+00:00"),
            "by": "k.tech",
            "full_name": "Kim Tech",
            "note": "ok",
        }
        for local, at in reviews
    ]
    (line,) = review_lines([day], rows, MONDAY_TO_FRIDAY)
    assert line[:3] == expected


@given(
    st.lists(
        st.tuples(st.integers(0, 3_599_999), st.floats(-5.0, 15.0, allow_nan=False)),
        max_size=60,
        unique_by=lambda r: r[0],
    )
)
def test_review_figures_add_up(readings: list[tuple[int, float]]) -> None:
    """Whatever the readings: out-of-range plus unknown minutes fit in the window; min <= current <= max."""
    ordered = sorted(readings)
    figures = sensor_figures("t-1", ordered, 0, 3_600_000, 2.0, 8.0, 20 * 60_000)
    assert figures.readings == len(ordered)
    assert figures.minutes_out_of_range >= 0 and figures.minutes_unknown >= 0
    assert figures.minutes_out_of_range + figures.minutes_unknown <= 60.0 + 0.02
    if ordered:
        assert figures.min_celsius is not None and figures.max_celsius is not None
        assert figures.current_celsius == ordered[-1][1]
        assert figures.min_celsius <= figures.current_celsius <= figures.max_celsius
    else:
        assert figures.minutes_unknown == 60.0
