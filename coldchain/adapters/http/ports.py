"""What the HTTP edge needs of the rules role: a port, so the edge never imports the worker itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from coldchain.core.alert import Alert
from coldchain.core.records import Review
from coldchain.core.review import ReviewRequest
from coldchain.core.signoff import Acknowledgement


class AlertsView(Protocol):
    """A read-only copy of the worker's alerts and running bags, made after each step."""

    @property
    def alerts(self) -> tuple[Alert, ...]:
        """Open and acknowledged alerts, then recently resolved ones; newest first."""
        ...

    @property
    def bags(self) -> tuple[tuple[str, str, datetime, datetime], ...]:
        """Running bags: (bag, unit, diluted at, deadline), most urgent first."""
        ...


class RulesPort(Protocol):
    """The rules role as the API and the acknowledge page use it (``roles.rules_worker.RulesWorker`` fits)."""

    @property
    def view(self) -> AlertsView: ...

    def acknowledge(self, ack: Acknowledgement) -> Alert | None:
        """The alert after the acknowledgement, or None if unknown; ``DispositionConflict`` (core/signoff.py)
        for a disposition change that does not name the signed one."""
        ...

    def review(self, request: ReviewRequest) -> Review:
        """Store and audit a signed daily review; resolves the unit's ``review_missed``."""
        ...

    def last_review(self, unit: str) -> datetime | None:
        """When the unit was last reviewed; None if never."""
        ...

    def security_event(self, action: str, user: str, details: dict[str, Any]) -> None:
        """Audit a failed signature (``signature_failed``) or a lockout (``signing_locked``: also alerted)."""
        ...

    def publish_bag_event(self, bag_id: str, body: dict[str, Any]) -> None: ...
