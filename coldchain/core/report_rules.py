"""``report_failed``: a scheduled report that could not be written, signed or sent; pure.

Opens (warning, subject the report's name) when a run fails and resolves at the next successful run
of that report. Open ones are kept in the rules snapshot, so a restart neither forgets nor re-opens them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from coldchain.core.alert import Alert, Place, Transition
from coldchain.core.kept_alerts import KeptAlerts


class ReportFailures:
    """Open ``report_failed`` alerts by report name."""

    def __init__(self, snapshot: Iterable[dict[str, Any]] | None = None) -> None:
        self._kept = KeptAlerts(snapshot)

    def open_alerts(self) -> list[Alert]:
        return self._kept.open_alerts()

    def failed(self, report: str, site: str, period: str, error: str, now: datetime) -> list[Transition]:
        """A failed run: open the report's alert, or update the open one's message."""
        message = f"Scheduled report {report} for {period} failed: {error}"
        if report in self._kept.open:
            return self._kept.update(report, now, message)
        return self._kept.raise_alert("report_failed", report, Place(site, "", ""), now, message)

    def succeeded(self, report: str, period: str, now: datetime) -> list[Transition]:
        """A successful run resolves the report's open alert."""
        message = f"Scheduled report {report} ran again: {period} written, signed and sent"
        return self._kept.resolve(report, now, message)

    def acknowledged(self, alert: Alert) -> None:
        """Keep an acknowledged open alert's new state (it still resolves only at the next successful run)."""
        self._kept.acknowledged(alert)

    def snapshot(self) -> list[dict[str, Any]]:
        return self._kept.snapshot()
