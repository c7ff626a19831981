"""The ``signing_locked`` alerts: a user's signing locked after failed signatures, until the lock ends.

When the HTTP edge locks a user's signing (``adapters/http/auth.py``: 5 failed signatures in a row,
15 minutes), the rules worker opens a ``signing_locked`` alert (warning, subject the user name) so
the notification routes tell the admins (route ``kind = ["signing_locked"]`` to their targets); the
alert resolves by the clock when the lock ends. Open ones are kept in the rules snapshot.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from coldchain.core.alert import NOWHERE, Alert, Transition, new_alert
from coldchain.core.lockout import SIGNING_FAILURES
from coldchain.core.times import format_time, parse_time


class SigningLocks:
    """Open ``signing_locked`` alerts by user, with when each lock ends."""

    def __init__(self, snapshot: list[dict[str, Any]] | None = None) -> None:
        self._open: dict[str, tuple[Alert, datetime]] = {}
        for item in snapshot or ():
            alert = Alert.from_payload(item["alert"])
            self._open[alert.subject] = (alert, parse_time(item["until"]))

    def open_alerts(self) -> list[Alert]:
        return [alert for alert, _ in self._open.values()]

    def lock(self, user: str, until: datetime, now: datetime) -> list[Transition]:
        """Open the user's alert (or extend the open one's end): the transition to publish."""
        if user in self._open:
            alert, _ = self._open[user]
            self._open[user] = (alert, max(until, self._open[user][1]))  # locked again while alerted
            return []
        message = (
            f"Signing locked for {user} until {format_time(until)} after {SIGNING_FAILURES} failed "
            "signatures in a row: if it was not them, someone is guessing their signing password"
        )
        alert = new_alert("signing_locked", user, NOWHERE, (now, now), None, message)
        self._open[user] = (alert, until)
        return [Transition(alert, "opened")]

    def due(self, now: datetime) -> list[Transition]:
        """Resolve the alerts whose lock has ended by ``now``."""
        out = []
        for user, (alert, until) in list(self._open.items()):
            if now >= until:
                del self._open[user]
                message = f"Signing of {user} unlocked at {format_time(until)}"
                resolved = replace(alert, state="resolved", updated_at=until, resolved_at=until, message=message)
                out.append(Transition(resolved, "resolved"))
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        return [{"alert": alert.to_payload(), "until": format_time(until)} for alert, until in self._open.values()]
