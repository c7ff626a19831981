"""The alert value object of the contract (section 4) and the book that records alert transitions.

An ``Alert`` is one state of one episode: the rules engine emits it inside a ``Transition`` each
time the episode opens or resolves, and ``to_payload`` renders it as the JSON published on
``<prefix>/alerts/<kind>/<subject>``. Ids are derived from kind, subject and the episode's start,
so replaying the same readings, or restarting from a snapshot, can never mint a second id for
the same episode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from coldchain.core.signature import AckEntry, Signature
from coldchain.core.times import format_time, parse_time, to_millis

AlertKind = Literal[
    "temperature_high",
    "temperature_low",
    "freezing",
    "agitation",
    "sensor_offline",
    "bag_expiring",
    "bag_expired",
    "bag_used_after_expiry",
    "signing_locked",
    "bag_conflict",
    # the calendar: the daily review, calibration certificates, scheduled reports
    "review_missed",
    "calibration_due",
    "calibration_expired",
    "report_failed",
    # system alerts: coldchain about itself (see ``system_rules``)
    "broker_unreachable",
    "store_unreachable",
    "disk_low",
    "state_reset",
    "role_failed",
    "clock_skew",
]
AlertState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["critical", "warning"]
Change = Literal["opened", "resolved", "updated"]

SEVERITY: dict[AlertKind, Severity] = {
    "temperature_high": "critical",
    "temperature_low": "critical",
    "freezing": "critical",
    "agitation": "critical",
    "sensor_offline": "warning",
    "bag_expiring": "warning",
    "bag_expired": "critical",
    "bag_used_after_expiry": "critical",
    "signing_locked": "warning",
    "bag_conflict": "warning",
    "review_missed": "warning",
    "calibration_due": "warning",
    "calibration_expired": "critical",
    "report_failed": "warning",
    "broker_unreachable": "critical",
    "store_unreachable": "critical",
    "disk_low": "warning",
    "state_reset": "critical",
    "role_failed": "critical",
    "clock_skew": "warning",
}

SYSTEM_KINDS: frozenset[AlertKind] = frozenset(
    ("broker_unreachable", "store_unreachable", "disk_low", "state_reset", "role_failed", "clock_skew")
)
"""Alerts about coldchain itself; notified even while the broker is down."""

RESOLVED_BY_ACK: frozenset[AlertKind] = frozenset(("bag_used_after_expiry", "bag_conflict", "state_reset"))
"""Kinds with no condition that clears: an acknowledgement resolves them."""


def alert_id(kind: str, subject: str, started_at: datetime) -> str:
    """Stable id of an episode: 20 hex digits of sha256 over kind, subject and start (ms)."""
    key = f"{kind}\x1f{subject}\x1f{to_millis(started_at)}".encode()
    return hashlib.sha256(key).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Alert:
    """One state of an alert episode, with every field of the contract's payload."""

    id: str
    kind: AlertKind
    subject: str
    state: AlertState
    severity: Severity
    site: str
    unit: str
    sensor: str | None
    bag: str | None
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    value: float | None
    message: str
    acknowledged_by: str | None = None
    note: str | None = None
    affected_bags: tuple[str, ...] = ()
    disposition: str | None = None
    """What was done with the stock, recorded with the acknowledgement."""
    acknowledged_at: datetime | None = None
    signature: Signature | None = None
    """The electronic signature of the current ``disposition`` (``core/signoff.py``)."""
    history: tuple[AckEntry, ...] = ()
    """Every acknowledgement, oldest first; ``acknowledged_by``, ``_at`` and ``note`` stay the first one's."""

    def to_payload(self) -> dict[str, Any]:
        """The contract's JSON object (times RFC 3339 UTC with ``Z``, ``affected_bags`` a list)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "state": self.state,
            "severity": self.severity,
            "site": self.site,
            "unit": self.unit,
            "sensor": self.sensor,
            "bag": self.bag,
            "started_at": format_time(self.started_at),
            "updated_at": format_time(self.updated_at),
            "resolved_at": format_time(self.resolved_at) if self.resolved_at is not None else None,
            "value": self.value,
            "message": self.message,
            "acknowledged_by": self.acknowledged_by,
            "note": self.note,
            "affected_bags": list(self.affected_bags),
            "disposition": self.disposition,
            "acknowledged_at": format_time(self.acknowledged_at) if self.acknowledged_at is not None else None,
            **_signature_fields(self.signature),
            "history": [entry.to_payload() for entry in self.history],
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Alert:
        """The alert a ``to_payload`` dict describes (used to restore a snapshot)."""
        resolved_at = data["resolved_at"]
        value = data["value"]
        return cls(
            id=data["id"],
            kind=data["kind"],
            subject=data["subject"],
            state=data["state"],
            severity=data["severity"],
            site=data["site"],
            unit=data["unit"],
            sensor=data["sensor"],
            bag=data["bag"],
            started_at=parse_time(data["started_at"]),
            updated_at=parse_time(data["updated_at"]),
            resolved_at=parse_time(resolved_at) if resolved_at is not None else None,
            value=float(value) if value is not None else None,
            message=data["message"],
            acknowledged_by=data["acknowledged_by"],
            note=data["note"],
            affected_bags=tuple(data["affected_bags"]),
            disposition=data.get("disposition"),
            acknowledged_at=parse_time(data["acknowledged_at"]) if data.get("acknowledged_at") else None,
            signature=Signature.from_payload(data["signature"]) if data.get("signature") else None,
            history=tuple(AckEntry.from_payload(entry) for entry in data.get("history", ())),
        )


def _signature_fields(signature: Signature | None) -> dict[str, Any]:
    """The payload's signature fields (all null while no disposition is signed)."""
    return {
        "signed_by": signature.name if signature is not None else None,
        "signed_by_full_name": signature.full_name if signature is not None else None,
        "signed_at": format_time(signature.at) if signature is not None else None,
        "signature_meaning": signature.meaning if signature is not None else None,
        "signature": signature.to_payload() if signature is not None else None,
    }


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert changed state; ``alert`` is its state after the change.

    The engine emits only ``opened`` and ``resolved``. ``updated`` is reserved for the alert
    lifecycle (acknowledgements); the engine does not publish peak changes of an open episode,
    so an excursion produces exactly one retained message when it opens and one when it resolves.
    """

    alert: Alert
    change: Change


@dataclass(frozen=True, slots=True)
class Place:
    """Where a sensor or bag is: what every alert names besides its subject."""

    site: str
    unit: str
    name: str


NOWHERE = Place("", "", "")
"""The place of alerts about no unit (a user's signing, coldchain itself)."""


def new_alert(
    kind: AlertKind,
    subject: str,
    place: Place,
    span: tuple[datetime, datetime],
    value: float | None,
    message: str,
    *,
    sensor: str | None = None,
    bag: str | None = None,
    affected_bags: tuple[str, ...] = (),
) -> Alert:
    """An alert opening now: its episode's id from kind, subject and ``span``'s start (started_at, updated_at)."""
    started_at, updated_at = span
    return Alert(
        id=alert_id(kind, subject, started_at),
        kind=kind,
        subject=subject,
        state="open",
        severity=SEVERITY[kind],
        site=place.site,
        unit=place.unit,
        sensor=sensor,
        bag=bag,
        started_at=started_at,
        updated_at=updated_at,
        resolved_at=None,
        value=value,
        message=message,
        affected_bags=affected_bags,
    )


class AlertBook:
    """The open alerts by id, and the transitions emitted since ``begin``.

    ``bags_in(unit, at)`` lists the bags whose timers run in ``unit`` at ``at``; sensor alerts
    carry it as ``affected_bags``, judged at the transition's own time.
    """

    __slots__ = ("bags_in", "open_alerts", "out", "touched_alerts", "touched_bags", "touched_sensors")

    def __init__(self, bags_in: Callable[[str, datetime], tuple[str, ...]]) -> None:
        self.bags_in = bags_in
        self.open_alerts: dict[str, Alert] = {}
        self.out: list[Transition] = []
        self.touched_alerts: set[str] = set()
        """Ids of alerts opened, changed or resolved since the owner last cleared it (for change records)."""
        self.touched_sensors: set[str] = set()
        """Sensors whose alerts (so whose episode state) changed since the owner last cleared it."""
        self.touched_bags: set[str] = set()
        """Bags whose alerts changed since the owner last cleared it."""

    def touch(self, alert: Alert) -> None:
        """Note that ``alert`` (and so its sensor or bag) changed: the next change record carries it."""
        self.touched_alerts.add(alert.id)
        if alert.sensor is not None:
            self.touched_sensors.add(alert.sensor)
        if alert.bag is not None:
            self.touched_bags.add(alert.bag)

    def begin(self) -> list[Transition]:
        """Start collecting the transitions of one call; returns the list they go into."""
        self.out = []
        return self.out

    def open_for_sensor(
        self,
        kind: AlertKind,
        sensor: str,
        place: Place,
        span: tuple[datetime, datetime],
        value: float | None,
        message: str,
    ) -> str:
        """Open an alert about ``sensor`` in ``place`` (with the diluted bags stored there); ``span`` is
        (started_at, updated_at)."""
        return self.open(kind, sensor, place, span, value, message, sensor=sensor)

    def open(
        self,
        kind: AlertKind,
        subject: str,
        place: Place,
        span: tuple[datetime, datetime],
        value: float | None,
        message: str,
        *,
        sensor: str | None = None,
        bag: str | None = None,
    ) -> str:
        """Open an episode (idempotent per id) and return its id; ``span`` is (started_at, updated_at), as
        for ``new_alert``. A sensor's alert carries the diluted bags stored in ``place`` at ``updated_at``."""
        started_at, updated_at = span
        aid = alert_id(kind, subject, started_at)
        if sensor is not None:
            self.touched_sensors.add(sensor)
        if bag is not None:
            self.touched_bags.add(bag)
        if aid in self.open_alerts:
            return aid
        affected = self.bags_in(place.unit, updated_at) if sensor is not None else ()
        alert = new_alert(kind, subject, place, span, value, message, sensor=sensor, bag=bag, affected_bags=affected)
        self.open_alerts[aid] = alert
        self.touched_alerts.add(aid)
        self.out.append(Transition(alert, "opened"))
        return aid

    def resolve(self, aid: str, at: datetime, *, value: float | None, message: str) -> None:
        """Resolve an open episode at ``at`` (never earlier than its start)."""
        alert = self.open_alerts.pop(aid)
        self.touch(alert)
        at = max(at, alert.started_at)
        affected = self.bags_in(alert.unit, at) if alert.sensor is not None else ()
        resolved = replace(
            alert,
            state="resolved",
            updated_at=at,
            resolved_at=at,
            value=value,
            message=message,
            affected_bags=affected,
        )
        self.out.append(Transition(resolved, "resolved"))
