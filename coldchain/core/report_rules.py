"""``report_failed``: a scheduled report that could not be written, signed or sent; pure.

Opens (warning, subject the report's name) when a run fails and resolves at the next successful run
of that report. Open ones are kept in the rules snapshot, so a restart neither forgets nor re-opens them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from coldchain.core.alert import SEVERITY, Alert, Transition, alert_id


class ReportFailures:
    """Open ``report_failed`` alerts by report name."""

    def __init__(self, snapshot: Iterable[dict[str, Any]] | None = None) -> None:
        self._open: dict[str, Alert] = {}
        for payload in snapshot or ():
            alert = Alert.from_payload(payload)
            self._open[alert.subject] = alert

    def open_alerts(self) -> list[Alert]:
        return list(self._open.values())

    def failed(self, report: str, site: str, period: str, error: str, now: datetime) -> list[Transition]:
        """A failed run: open the report's alert, or update the open one's message."""
        message = f"Scheduled report {report} for {period} failed: {error}"
        alert = self._open.get(report)
        if alert is not None:
            updated = replace(alert, updated_at=max(now, alert.updated_at), message=message)
            self._open[report] = updated
            return [Transition(updated, "updated")]
        alert = Alert(
            id=alert_id("report_failed", report, now),
            kind="report_failed",
            subject=report,
            state="open",
            severity=SEVERITY["report_failed"],
            site=site,
            unit="",
            sensor=None,
            bag=None,
            started_at=now,
            updated_at=now,
            resolved_at=None,
            value=None,
            message=message,
        )
        self._open[report] = alert
        return [Transition(alert, "opened")]

    def succeeded(self, report: str, period: str, now: datetime) -> list[Transition]:
        """A successful run resolves the report's open alert."""
        alert = self._open.pop(report, None)
        if alert is None:
            return []
        message = f"Scheduled report {report} ran again: {period} written, signed and sent"
        resolved = replace(
            alert, state="resolved", updated_at=max(now, alert.updated_at), resolved_at=now, message=message
        )
        return [Transition(resolved, "resolved")]

    def acknowledged(self, alert: Alert) -> None:
        """Keep an acknowledged open alert's new state (it still resolves only at the next successful run)."""
        if alert.subject in self._open and self._open[alert.subject].id == alert.id:
            self._open[alert.subject] = alert

    def snapshot(self) -> list[dict[str, Any]]:
        return [alert.to_payload() for alert in self._open.values()]
