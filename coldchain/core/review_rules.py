"""``review_missed``: a workday's daily review not signed by the site's ``review_due`` local time; pure.

A clock rule fed ``now`` and the last review of each unit. For a unit whose site has a ``review_due``,
the deadline that matters at ``now`` is the latest workday (local date in the site's zone, the
site's ``workdays``) whose ``review_due`` local time has passed. The review of that day is missing
when the unit's last review was signed before that local day began; the alert (warning, subject the
unit) then opens, started at the deadline itself, and stays open until a review is signed. A site
without ``review_due`` has no deadline and never misses one.

Local times are resolved with ``zoneinfo`` (PEP 495, ``fold=0``): a ``review_due`` in an autumn overlap
counts at its first occurrence; one inside a spring-forward gap at the same wall time on the old
offset (02:30 becomes 03:30 on the day Berlin skips 02:00 to 03:00).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from coldchain.core.alert import Alert, Place, Transition
from coldchain.core.inventory import Inventory, Site
from coldchain.core.kept_alerts import KeptAlerts
from coldchain.core.times import format_time, parse_time

LOOK_BACK_DAYS = 7
"""How many local days back the latest workday deadline is searched (a week holds at least one workday)."""


def local_start(day: date, zone: ZoneInfo) -> datetime:
    """The instant local ``day`` begins in ``zone`` (UTC-aware)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def deadline_on(site: Site, day: date) -> datetime | None:
    """The instant of ``site``'s review deadline on local ``day``; None on a non-workday or without ``review_due``."""
    if site.review_due is None or day.weekday() not in site.workdays:
        return None
    zone = ZoneInfo(site.timezone)
    due = site.review_due
    local = datetime(day.year, day.month, day.day, due.hour, due.minute, due.second, tzinfo=zone)
    return local.astimezone(ZoneInfo("UTC"))


def latest_deadline(site: Site, now: datetime) -> tuple[date, datetime] | None:
    """The latest workday (local) whose deadline is at or before ``now``, and that deadline."""
    if site.review_due is None or not site.workdays:
        return None
    today = now.astimezone(ZoneInfo(site.timezone)).date()
    for back in range(LOOK_BACK_DAYS + 1):
        day = today - timedelta(days=back)
        due = deadline_on(site, day)
        if due is not None and due <= now:
            return day, due
    return None


def missed(site: Site, last_review: datetime | None, now: datetime) -> tuple[date, datetime] | None:
    """The workday whose review is missing at ``now`` and its deadline; None when none is missing."""
    found = latest_deadline(site, now)
    if found is None:
        return None
    day, _ = found
    if last_review is not None and last_review >= local_start(day, ZoneInfo(site.timezone)):
        return None
    return found


class ReviewDeadlines:
    """Open ``review_missed`` alerts by unit and the last review of each unit; ``due`` and ``signed`` move them."""

    def __init__(self, inventory: Inventory, snapshot: Mapping[str, Any] | None = None) -> None:
        self.inventory = inventory
        self.last_review: dict[str, datetime] = {}
        for unit, at in (snapshot or {}).get("last_review", {}).items():
            self.last_review[unit] = parse_time(at)
        self._kept = KeptAlerts((snapshot or {}).get("open", ()))

    def learn(self, unit: str, at: datetime) -> None:
        """A review known from the store (at start): the newest one per unit is kept."""
        if unit not in self.last_review or at > self.last_review[unit]:
            self.last_review[unit] = at

    def open_alerts(self) -> list[Alert]:
        return self._kept.open_alerts()

    def due(self, now: datetime) -> list[Transition]:
        """Open the alert of each unit whose workday review is missing at ``now``."""
        out: list[Transition] = []
        for unit in self.inventory.units.values():
            if unit.id in self._kept.open:
                continue
            site = self.inventory.site_of(unit)
            found = missed(site, self.last_review.get(unit.id), now)
            if found is not None:
                day, due = found
                due_text = site.review_due.strftime("%H:%M") if site.review_due is not None else ""
                message = (
                    f"Daily review of {unit.display_name} for {day.isoformat()} not signed by {due_text} "
                    f"({site.timezone}): check and sign its min/max temperatures"
                )
                place = Place(unit.site, unit.id, unit.display_name)
                out += self._kept.raise_alert("review_missed", unit.id, place, due, message)
        return out

    def signed(self, unit: str, at: datetime) -> list[Transition]:
        """A review of ``unit`` signed at ``at``: remember it and resolve the unit's open alert."""
        self.learn(unit, at)
        alert = self._kept.open.get(unit)
        if alert is None:
            return []
        return self._kept.resolve(unit, at, f"{alert.message.split(':')[0]}: reviewed at {format_time(at)}")

    def acknowledged(self, alert: Alert) -> None:
        """Keep an acknowledged open alert's new state (it still resolves only when the review is signed)."""
        self._kept.acknowledged(alert)

    def snapshot(self) -> dict[str, Any]:
        return {
            "last_review": {unit: format_time(at) for unit, at in self.last_review.items()},
            "open": self._kept.snapshot(),
        }
