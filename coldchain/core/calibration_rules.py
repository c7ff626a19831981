"""Calibration certificates by the clock: ``calibration_due`` and ``calibration_expired``; pure.

A sensor's ``calibration_due`` is the **last local day its certificate covers** (the usual reading of
a calibration label's "due" date: the instrument must be recalibrated by then, and using it *after*
that date is a nonconformance). In the site's time zone:

- the sensor is in calibration up to the end of its due date, and out of calibration from the
  start of the next local day, ``expires_at`` (local midnight, whatever the UTC offset);
- ``calibration_due`` (warning, subject the sensor) opens at ``warns_at``: ``calibration_warn_before``
  before ``expires_at`` counted on the local wall clock (30 days: local midnight 30 days earlier,
  even across a DST change), and resolves when ``calibration_expired`` opens;
- ``calibration_expired`` (critical, subject the sensor) opens at ``expires_at``;
- either resolves, at the ``now`` that sees it, when the configured due date moves so that it no
  longer holds (a restart with the new certificate's date); a sensor whose ``calibration_due`` is
  removed resolves its alert the same way.

Times are event times: an alert opens with ``started_at`` at the moment it fell due, even if the
first tick to see it comes later (coldchain was down), and ``calibration_due`` then resolves at
``expires_at``. The rule keeps no state but the engine's ``AlertBook``: what should be open is
derived from the inventory and ``now``, and the ids (kind, sensor, the moment it fell due) are the
same after any restart, so nothing opens twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from coldchain.core.alert import AlertBook, AlertKind, Place, alert_id
from coldchain.core.inventory import Inventory, Sensor
from coldchain.core.local_days import DAY_MS, LocalDay, calendar, index_of
from coldchain.core.times import from_millis, to_millis

CALIBRATION_KINDS: frozenset[AlertKind] = frozenset(("calibration_due", "calibration_expired"))
DEFAULT_WARN_BEFORE = timedelta(days=30)


def expires_at(due: date, timezone: str) -> int:
    """The instant (epoch ms) a certificate due on ``due`` stops covering: the start of the next local day."""
    return calendar(timezone).day(index_of(due) + 1).start_ms


def warns_at(due: date, timezone: str, warn_before: timedelta) -> int:
    """When ``calibration_due`` opens: ``warn_before`` before ``expires_at`` on the local wall clock."""
    warn_ms = int(warn_before.total_seconds() * 1000)
    days, rest = divmod(warn_ms, DAY_MS)
    start = calendar(timezone).day(index_of(due) + 1 - days).start_ms
    return start - rest


def in_calibration(sensor: Sensor | None, day: LocalDay) -> bool | None:
    """Whether the sensor's certificate covers the whole local ``day`` (None: no due date configured)."""
    if sensor is None or sensor.calibration_due is None:
        return None
    return day.date <= sensor.calibration_due


@dataclass(frozen=True, slots=True)
class _Certificate:
    sensor: str
    place: Place
    due: date
    certificate: str
    timezone: str
    warn_ms: int
    expire_ms: int

    def ids(self) -> tuple[str, str]:
        return (
            alert_id("calibration_due", self.sensor, from_millis(self.warn_ms)),
            alert_id("calibration_expired", self.sensor, from_millis(self.expire_ms)),
        )

    def words(self) -> str:
        cert = f"certificate {self.certificate}" if self.certificate else "calibration certificate"
        return f"{self.place.name} sensor {self.sensor}: {cert}"


class CalibrationRules:
    """The certificates of an inventory's sensors; ``due(now, book)`` opens and resolves their alerts."""

    def __init__(self, inventory: Inventory, places: dict[str, Place], warn_before: timedelta) -> None:
        self.certificates: list[_Certificate] = []
        for sensor in inventory.sensors.values():
            if sensor.calibration_due is None or sensor.unit not in places:
                continue
            place = places[sensor.unit]
            unit = inventory.unit(sensor.unit)
            zone = inventory.site_of(unit).timezone if unit is not None else "UTC"
            due = sensor.calibration_due
            self.certificates.append(
                _Certificate(
                    sensor.id,
                    place,
                    due,
                    sensor.calibration_certificate,
                    zone,
                    warns_at(due, zone, warn_before),
                    expires_at(due, zone),
                )
            )
        self._next_ms: int | None = None
        """The next moment something falls due; None until the first pass (which also cleans up)."""

    def due(self, now: datetime, book: AlertBook) -> None:
        """Open what fell due by ``now`` and resolve what no longer holds (nothing to do between moments)."""
        now_ms = to_millis(now)
        if self._next_ms is not None and now_ms < self._next_ms:
            return
        wanted: set[str] = set()
        upcoming: list[int] = []
        for cert in self.certificates:
            due_id, expired_id = cert.ids()
            if now_ms >= cert.expire_ms:
                wanted.add(expired_id)
                if expired_id not in book.open_alerts:
                    self._open(book, "calibration_expired", cert, cert.expire_ms)
                if due_id in book.open_alerts:
                    book.resolve(
                        due_id,
                        from_millis(cert.expire_ms),
                        value=None,
                        message=f"{cert.words()} ran out at the end of {cert.due} ({cert.timezone}): "
                        "calibration expired",
                    )
            elif now_ms >= cert.warn_ms:
                wanted.add(due_id)
                if due_id not in book.open_alerts:
                    self._open(book, "calibration_due", cert, cert.warn_ms)
                upcoming.append(cert.expire_ms)
            else:
                upcoming.append(cert.warn_ms)
        self._stale(book, wanted, now)
        self._next_ms = min(upcoming, default=1 << 62)

    def _open(self, book: AlertBook, kind: AlertKind, cert: _Certificate, at_ms: int) -> None:
        at = from_millis(at_ms)
        if kind == "calibration_due":
            message = (
                f"{cert.words()} runs out at the end of {cert.due} ({cert.timezone}): recalibrate the sensor "
                "and enter the new certificate's due date"
            )
        else:
            message = (
                f"{cert.words()} ran out at the end of {cert.due} ({cert.timezone}): its readings are out of "
                "calibration until a new certificate's due date is configured"
            )
        book.open_for_sensor(kind, cert.sensor, cert.place, (at, at), None, message)

    def _stale(self, book: AlertBook, wanted: set[str], now: datetime) -> None:
        """Resolve calibration alerts the configuration no longer supports (a new due date, or none)."""
        dates = {cert.sensor: cert for cert in self.certificates}
        stale: Iterable[str] = [
            aid for aid, alert in book.open_alerts.items() if alert.kind in CALIBRATION_KINDS and aid not in wanted
        ]
        for aid in list(stale):
            alert = book.open_alerts[aid]
            cert = dates.get(alert.subject)
            if cert is None:
                why = f"sensor {alert.subject}: its calibration is no longer tracked (no calibration_due configured)"
            else:
                why = f"{cert.words()} now covers up to the end of {cert.due} ({cert.timezone})"
            book.resolve(aid, now, value=None, message=why)
