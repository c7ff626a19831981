"""The ``signing_locked`` alerts: a user's signing locked after failed signatures, until the lock ends.

When the HTTP edge locks a user's signing (``adapters/http/auth.py``: 5 failed signatures in a row,
15 minutes), the rules worker opens a ``signing_locked`` alert (warning, subject the user name) so
the notification routes tell the admins (route ``kind = ["signing_locked"]`` to their targets); the
alert resolves by the clock when the lock ends. Open ones are kept in the rules snapshot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from coldchain.core.alert import NOWHERE, Alert, Transition
from coldchain.core.kept_alerts import KeptAlerts
from coldchain.core.lockout import SIGNING_FAILURES
from coldchain.core.times import format_time, parse_time


class SigningLocks:
    """Open ``signing_locked`` alerts by user, with when each lock ends."""

    def __init__(self, snapshot: list[dict[str, Any]] | None = None) -> None:
        items = list(snapshot or ())
        self._kept = KeptAlerts(item["alert"] for item in items)
        self._until = {item["alert"]["subject"]: parse_time(item["until"]) for item in items}

    def open_alerts(self) -> list[Alert]:
        return self._kept.open_alerts()

    def lock(self, user: str, until: datetime, now: datetime) -> list[Transition]:
        """Open the user's alert (or extend the open one's end): the transition to publish."""
        if user in self._kept.open:
            self._until[user] = max(until, self._until[user])  # locked again while alerted
            return []
        message = (
            f"Signing locked for {user} until {format_time(until)} after {SIGNING_FAILURES} failed "
            "signatures in a row: if it was not them, someone is guessing their signing password"
        )
        self._until[user] = until
        return self._kept.raise_alert("signing_locked", user, NOWHERE, now, message)

    def due(self, now: datetime) -> list[Transition]:
        """Resolve the alerts whose lock has ended by ``now``."""
        out: list[Transition] = []
        for user, until in list(self._until.items()):
            if now >= until:
                del self._until[user]
                out += self._kept.resolve(user, until, f"Signing of {user} unlocked at {format_time(until)}")
        return out

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {"alert": alert.to_payload(), "until": format_time(self._until[alert.subject])}
            for alert in self._kept.open_alerts()
        ]
