"""The report scheduler: a supervised role of ``coldchain run`` that writes each ``[[reports]]`` entry's export.

Every ``CHECK_EVERY`` seconds (and at once at start, which catches up what was missed while coldchain was
down) it asks, per report, which periods are due (``core/report_periods.py``: the periods after the
newest one found in the report's directory, up to the one that ended at the last local midnight) and
runs them oldest first with ``reporting/scheduled.py``, as ``coldchain reports run`` does. Each run
is audited through the rules worker (``report_run`` or ``report_failed``); a failure opens the
``report_failed`` alert, the report's next successful run resolves it. A failed period is tried again
after ``RETRY_AFTER``, not on every check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from coldchain.adapters.store.port import Store
from coldchain.config import ReportConfig, Settings
from coldchain.core.report_periods import Period, due
from coldchain.reporting.scheduled import ReportFailed, done_periods, report_timezone, run_report
from coldchain.roles.supervision import Spawn, plain_thread

log = logging.getLogger("coldchain.reports")

CHECK_EVERY = 60.0
RETRY_AFTER = timedelta(minutes=15)


class ReportOutcomes(Protocol):
    """Where runs are audited and ``report_failed`` raised (``RulesWorker.report_outcome`` fits)."""

    def report_outcome(
        self, report: str, site: str, period: str, error: str | None, details: dict[str, Any]
    ) -> None: ...


@dataclass(eq=False)
class ReportScheduler:
    """Runs due reports; ``check(now)`` is one pass (tests call it with an injected clock)."""

    settings: Settings
    store: Store
    outcomes: ReportOutcomes
    clock: Callable[[], datetime]
    check_every: float = CHECK_EVERY
    _: KW_ONLY
    heartbeat: Callable[[], None] = lambda: None
    _failed: dict[tuple[str, str], datetime] = field(default_factory=dict, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self, spawn: Spawn | None = None) -> None:
        self._thread = (spawn or plain_thread)("reports", self._run)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.heartbeat()
            self.check(self.clock())
            self._stopping.wait(self.check_every)

    def check(self, now: datetime) -> list[str]:
        """Run every due period of every report; the names (``report/period``) of the runs that succeeded."""
        ran = []
        for report in self.settings.reports:
            if self._stopping.is_set():
                break
            timezone = report_timezone(self.settings, report)
            for period in due(report.every, now, done_periods(report, timezone), timezone):
                failed_at = self._failed.get((report.name, period.name))
                if failed_at is not None and now - failed_at < RETRY_AFTER:
                    continue
                if self._one(report, period, now):
                    ran.append(f"{report.name}/{period.name}")
                self.heartbeat()
        return ran

    def _one(self, report: ReportConfig, period: Period, now: datetime) -> bool:
        site = report.site or ""
        try:
            run = run_report(self.store, self.settings, report, period, now)
        except ReportFailed as exc:
            self._failed[(report.name, period.name)] = now
            log.error("scheduled report %s for %s failed: %s", report.name, period.name, exc)
            self._tell(report.name, site, period.name, str(exc), {"dir": str(report.directory)})
            return False
        self._failed.pop((report.name, period.name), None)
        log.info("scheduled report %s for %s written to %s", report.name, period.name, run.out)
        details = {"dir": str(run.out), "sent": run.sent, "without_files": run.without_files, "scheduled": True}
        self._tell(report.name, site, period.name, None, details)
        return True

    def _tell(self, report: str, site: str, period: str, error: str | None, details: dict[str, Any]) -> None:
        """Audit the run (and raise or resolve report_failed); a failure to do so is logged loud, not lost silently."""
        try:
            self.outcomes.report_outcome(report, site, period, error, details)
        except Exception:  # the run's files stand; its audit event and alert are missing, and the log says so
            log.exception("could not audit the run of report %s for %s (error: %s)", report, period, error)
