"""Daily rollups count the site's local days, as the exports' daily tables do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coldchain.core.rollups import local_day, utc_day


@pytest.mark.parametrize(
    ("zone", "ts", "start", "hours"),
    [
        ("UTC", datetime(2026, 3, 29, 12, tzinfo=UTC), datetime(2026, 3, 29, tzinfo=UTC), 24),
        ("Europe/Berlin", datetime(2026, 3, 28, 23, 30, tzinfo=UTC), datetime(2026, 3, 28, 23, tzinfo=UTC), 23),
        ("Europe/Berlin", datetime(2026, 10, 24, 22, 0, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC), 25),
        ("America/New_York", datetime(2026, 11, 1, 4, 59, tzinfo=UTC), datetime(2026, 11, 1, 4, tzinfo=UTC), 25),
    ],
)
def test_a_days_rollup_spans_the_sites_local_day(zone: str, ts: datetime, start: datetime, hours: int) -> None:
    """The day an instant falls in begins at the site's local midnight and has 23 or 25 hours on a DST change."""
    begins, ends = local_day(zone)(ts)
    assert begins == start and ends - begins == timedelta(hours=hours)


def test_utc_sites_keep_the_utc_day() -> None:
    """A site in UTC (the default) uses the UTC day function itself."""
    assert local_day("UTC") is utc_day
