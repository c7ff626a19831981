"""The report scheduler (roles/report_scheduler.py) under an injected clock, over a real SQLite store: catch-up
after downtime, a failed run reported (report_failed) and retried only after RETRY_AFTER, then resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.core.records import TemperatureReading
from coldchain.reporting.manifest import MANIFEST
from coldchain.roles.report_scheduler import RETRY_AFTER, ReportScheduler
from tests.config_files import load_config

NOW = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


class Outcomes:
    """Records what the rules worker would audit and alert."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    def report_outcome(self, report: str, site: str, period: str, error: str | None, details: dict[str, Any]) -> None:
        self.seen.append((report, period, error))


def settings_for(tmp_path: Path, directory: Path) -> Any:
    return load_config(
        tmp_path,
        f"""
[store]
url = "sqlite:///{tmp_path / "store.sqlite"}"
[rules]
state_path = "{tmp_path / "rules.sqlite"}"
[[units]]
id = "fridge-a"
site = "main"
[[sensors]]
id = "t-001"
unit = "fridge-a"
kind = "temperature"
[[reports]]
name = "daily"
every = "day"
dir = "{directory}"
""",
    )


def test_catch_up_then_a_failure_is_reported_retried_late_and_resolved(tmp_path: Path) -> None:
    """Missed days are written oldest first at start; a run that cannot write is reported once per RETRY_AFTER."""
    directory = tmp_path / "daily"
    (directory / "2026-11-27").mkdir(parents=True)
    (directory / "2026-11-27" / MANIFEST).write_text("{}")
    settings = settings_for(tmp_path, directory)
    store = SqliteStore(tmp_path / "store.sqlite")
    store.prepare()
    store.write([TemperatureReading("t-001", "fridge-a", "main", datetime(2026, 11, 29, 12, tzinfo=UTC), 5.0)])
    outcomes = Outcomes()
    scheduler = ReportScheduler(settings, store, outcomes, lambda: NOW)
    assert scheduler.check(NOW) == ["daily/2026-11-28", "daily/2026-11-29", "daily/2026-11-30"]
    assert all((directory / day / "report.pdf").is_file() for day in ("2026-11-28", "2026-11-29", "2026-11-30"))
    assert outcomes.seen == [("daily", day, None) for day in ("2026-11-28", "2026-11-29", "2026-11-30")]
    assert scheduler.check(NOW + timedelta(hours=1)) == []  # nothing more due today

    (directory / "2026-12-01").write_text("not a directory")  # the next day's directory cannot be made
    tomorrow = NOW + timedelta(days=1)
    assert scheduler.check(tomorrow) == []
    assert outcomes.seen[-1][:2] == ("daily", "2026-12-01") and "2026-12-01" in str(outcomes.seen[-1][2])
    assert scheduler.check(tomorrow + RETRY_AFTER - timedelta(seconds=1)) == []
    assert len(outcomes.seen) == 4  # not retried before RETRY_AFTER
    (directory / "2026-12-01").unlink()
    assert scheduler.check(tomorrow + RETRY_AFTER) == ["daily/2026-12-01"]
    assert outcomes.seen[-1] == ("daily", "2026-12-01", None)
    store.close()
