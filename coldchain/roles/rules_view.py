"""What the HTTP API and the acknowledge page read of the rules worker: a copy made after each step."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from coldchain.core.alert import Alert, Transition

RECENT_RESOLVED = 500
"""How many resolved alerts stay visible (and acknowledgeable) after they resolved."""


@dataclass(frozen=True, slots=True)
class RulesView:
    """A read-only copy; replaced, never changed, so readers need no lock."""

    alerts: tuple[Alert, ...]
    """Open and acknowledged alerts, then recently resolved ones; newest first."""
    bags: tuple[tuple[str, str, datetime, datetime], ...]
    """Running bags: (bag, unit, diluted at, deadline), most urgent first."""


class RecentlyResolved:
    """The newest resolved alerts (at most ``RECENT_RESOLVED``), kept across restarts in the snapshot."""

    def __init__(self, alerts: Iterable[Alert] = ()) -> None:
        self._alerts: OrderedDict[str, Alert] = OrderedDict((alert.id, alert) for alert in alerts)

    def get(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def __iter__(self) -> Iterator[Alert]:
        return iter(self._alerts.values())

    def note(self, transitions: Iterable[Transition]) -> None:
        """Keep resolved alerts; follow later changes (an acknowledgement) of those kept."""
        for transition in transitions:
            alert = transition.alert
            if alert.state == "resolved":
                self._alerts[alert.id] = alert
                self._alerts.move_to_end(alert.id)
                while len(self._alerts) > RECENT_RESOLVED:
                    self._alerts.popitem(last=False)
            elif alert.id in self._alerts:
                self._alerts[alert.id] = alert


def view_of(
    active: Iterable[Alert], recent: RecentlyResolved, bags: Iterable[tuple[str, str, datetime, datetime]]
) -> RulesView:
    """Active alerts newest first, then the recently resolved newest first."""
    first = sorted(active, key=lambda a: a.updated_at, reverse=True)
    then = sorted(recent, key=lambda a: a.updated_at, reverse=True)
    return RulesView(tuple(first + then), tuple(bags))
