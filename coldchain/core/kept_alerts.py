"""Alerts kept beside the rules engine's book, one open per subject; pure.

Some alerts are about things the engine does not judge from readings: a user's locked signing
(``signing_locked``), a unit's missed daily review (``review_missed``), a scheduled report's failed
run (``report_failed``). Their rules decide when they open and resolve; ``KeptAlerts`` holds the open
ones by subject, keeps an acknowledgement's new state (an acknowledgement never resolves them), and
gives them to the rules snapshot, so a restart neither forgets nor re-opens them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from coldchain.core.alert import Alert, AlertKind, Place, Transition, new_alert


class KeptAlerts:
    """Open alerts of one kind by subject."""

    def __init__(self, payloads: Iterable[dict[str, Any]] | None = None) -> None:
        self.open: dict[str, Alert] = {}
        for payload in payloads or ():
            alert = Alert.from_payload(payload)
            self.open[alert.subject] = alert

    def open_alerts(self) -> list[Alert]:
        return list(self.open.values())

    def raise_alert(
        self, kind: AlertKind, subject: str, place: Place, started_at: datetime, message: str
    ) -> list[Transition]:
        """Open the subject's alert (started at ``started_at``; its id follows from it): the transition."""
        alert = new_alert(kind, subject, place, (started_at, started_at), None, message)
        self.open[subject] = alert
        return [Transition(alert, "opened")]

    def update(self, subject: str, at: datetime, message: str) -> list[Transition]:
        """A new message on the subject's open alert (same id)."""
        alert = self.open[subject]
        updated = replace(alert, updated_at=max(at, alert.updated_at), message=message)
        self.open[subject] = updated
        return [Transition(updated, "updated")]

    def resolve(self, subject: str, at: datetime, message: str) -> list[Transition]:
        """Resolve the subject's open alert at ``at`` (nothing when none is open)."""
        alert = self.open.pop(subject, None)
        if alert is None:
            return []
        resolved = replace(
            alert, state="resolved", updated_at=max(at, alert.updated_at), resolved_at=at, message=message
        )
        return [Transition(resolved, "resolved")]

    def acknowledged(self, alert: Alert) -> None:
        """Keep an acknowledged open alert's new state (it still resolves only by its own rule)."""
        if alert.subject in self.open and self.open[alert.subject].id == alert.id:
            self.open[alert.subject] = alert

    def snapshot(self) -> list[dict[str, Any]]:
        return [alert.to_payload() for alert in self.open.values()]
