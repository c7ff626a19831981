"""The pure rules engine: readings, bag events and a clock the caller passes in -> alert transitions.

``RulesEngine.observe(records, now)`` judges new records by their ``ts`` (event time);
``RulesEngine.tick(now)`` applies what only the clock decides (offline sensors, the excursion
fail-safe, agitation calming down, bag timers, calibration certificates running out). Both return
the ``Transition``s they caused (``observe`` in the order of the records that caused them, ``tick``
by ``updated_at``); neither reads the clock, does IO, or keeps anything but plain state, which
``snapshot`` exports as JSON-ready data and ``restore`` brings back exactly.

Semantics shared by all rules (the per-rule details are in ``sensor_rules`` and ``bag_rules``):

* Records of one call are judged in ts order (a stable sort, so an array upload may come in any
  order). A reading not newer than the newest judged reading of its sensor is stored by the
  caller but changes no episode here: it is counted as ``late_readings`` (older) or
  ``duplicate_readings`` (same ts; within one call the first in input order wins). Readings of
  sensors not in the inventory are counted and ignored.
* Transition times are event times: the ts of the reading or event that proved the condition,
  or the moment a clock rule fell due (not the ``now`` of the tick that noticed it). The only
  exceptions are ``sensor_offline``, which is about arrival, and resolutions clamped so that
  ``resolved_at`` is never before ``started_at``.
* A device's own ``offline`` report (``SensorAvailability``, ts = its arrival) opens
  ``sensor_offline`` at once, without waiting for ``offline_after``; an ``online`` report changes
  nothing (the next reading resolves it, as for silence).
* ``now`` is truncated to the millisecond, the precision of readings, and must be aware.
* An alert's id is ``alert.alert_id(kind, subject, started_at)``: one id per episode however
  often it is replayed or restored.
* Sensor alerts list in ``affected_bags`` the bags of the unit whose timers run (diluted and
  neither completed nor discarded) at the transition's ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Literal

from coldchain.core import signoff
from coldchain.core.alert import RESOLVED_BY_ACK, Alert, AlertBook, Place, Transition
from coldchain.core.bag_rules import BagRules
from coldchain.core.bag_sequence import BagLedger
from coldchain.core.calibration_rules import CALIBRATION_KINDS, DEFAULT_WARN_BEFORE, CalibrationRules
from coldchain.core.inventory import Inventory, Profile
from coldchain.core.records import BagEvent, BagStatus, SensorAvailability, ShakeReading, TemperatureReading
from coldchain.core.rules_changes import apply_changes
from coldchain.core.sensor_rules import NEVER, SensorRules, ShakeRules, TemperatureRules
from coldchain.core.signoff import Acknowledgement
from coldchain.core.system_rules import Fact, Outage, SystemLimits, SystemRules
from coldchain.core.times import to_millis

FOREVER = datetime(9999, 12, 31, tzinfo=UTC)

SNAPSHOT_VERSION = 2
"""2 added the system alerts' state (``system``); ``migrate`` brings older snapshots up to it."""

_by_ts = attrgetter("ts")
_by_updated = attrgetter("alert.updated_at")


@dataclass(slots=True)
class RuleStats:
    """Counters of what the engine saw but did not judge; nothing is dropped without a count."""

    records: int = 0
    """Records handed to ``observe``."""
    late_readings: int = 0
    """Older than the newest reading already judged for their sensor."""
    duplicate_readings: int = 0
    """Same ts as the newest reading already judged for their sensor."""
    unknown_sensor_readings: int = 0
    """From a sensor not in the inventory (or of a kind the sensor is not)."""
    unknown_bag_events: int = 0
    """For a bag whose ``diluted`` event was never seen (or was forgotten)."""
    unknown_unit_bag_events: int = 0
    """A ``diluted`` event naming no unit of the inventory."""
    invalid_bag_events: int = 0
    """Refused as impossible (``bag_sequence.py``)."""
    duplicate_bag_events: int = 0
    """A second ``diluted``, ``infusion_started`` or ending event for a bag."""


def _instant(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")
    if now.tzinfo is not UTC:
        now = now.astimezone(UTC)
    micro = now.microsecond
    return now.replace(microsecond=micro - micro % 1000) if micro % 1000 else now


class RulesEngine:
    """All rules of one inventory, with their state. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        inventory: Inventory,
        limits: SystemLimits | None = None,
        *,
        calibration_warn_before: timedelta = DEFAULT_WARN_BEFORE,
    ) -> None:
        self.inventory = inventory
        self.stats = RuleStats()
        self._system = SystemRules(limits if limits is not None else SystemLimits())
        self._adopted: set[str] = set()
        """Sensor alerts brought back from the store after a state reset: an acknowledgement resolves them."""
        units: dict[str, tuple[Place, Profile]] = {}
        for unit in inventory.units.values():
            units[unit.id] = (Place(site=unit.site, unit=unit.id, name=unit.display_name), unit.profile)
        self._bags = BagRules(units)
        self._book = AlertBook(self._bags.running_in)
        self._calibration = CalibrationRules(
            inventory, {unit: place for unit, (place, _) in units.items()}, calibration_warn_before
        )
        self._temperature: dict[str, TemperatureRules] = {}
        self._shake: dict[str, ShakeRules] = {}
        offline_after = {unit.id: unit.offline_after for unit in inventory.units.values()}
        for sensor in inventory.sensors.values():
            place, profile = units[sensor.unit]
            if sensor.kind == "temperature":
                self._temperature[sensor.id] = TemperatureRules(
                    sensor.id,
                    place,
                    offline_after[sensor.unit],
                    lo=profile.min_celsius,
                    hi=profile.max_celsius,
                    freeze=profile.freeze_celsius,
                    delay=profile.excursion_delay,
                    clear_after=profile.clear_after,
                )
            else:
                self._shake[sensor.id] = ShakeRules(
                    sensor.id,
                    place,
                    offline_after[sensor.unit],
                    threshold=profile.agitation_g,
                    clear_after=profile.agitation_clear,
                )
        self._unheard: list[SensorRules] = [*self._temperature.values(), *self._shake.values()]
        """Sensors whose silence has no starting point yet: it is the first ``now`` the engine sees."""
        self._touched: set[str] = set()
        """Sensors whose episode state a reading may have changed since the last change record."""
        self._seen: set[str] = set()
        """Quiet sensors whose last-seen moved a grain past the persisted one (``rules_changes``)."""
        self._active: dict[str, SensorRules] = {}
        """Sensors with an episode in progress (a pending or open excursion, agitation): the clock's ``due``."""
        self._offline_next = NEVER
        """No sensor can fall silent for its ``offline_after`` before this (a lower bound; see ``tick``)."""
        self._saved_system: dict[str, Any] | None = None
        self._saved_stats: dict[str, int] | None = None
        grains = [rules.grain for rules in self._unheard]
        self._scan_every = min(grains) / 2 if grains else None
        self._scan_at = NEVER
        """When ``changes`` next looks for sensors fallen silent with an unpersisted last-seen."""

    def _start_silence(self, now: datetime) -> None:
        for rules in self._unheard:
            if rules.heard < now:
                rules.heard = now
                self._seen.add(rules.sensor)  # once: where each silence starts is persisted exactly
        self._unheard = []

    def observe(
        self, records: Iterable[TemperatureReading | ShakeReading | BagEvent | SensorAvailability], now: datetime
    ) -> list[Transition]:
        """Judge new readings and bag events; ``now`` is when they arrived."""
        now = _instant(now)
        if self._unheard:
            self._start_silence(now)
        batch = records if isinstance(records, list) else list(records)
        if len(batch) > 1:
            batch = sorted(batch, key=_by_ts)
        book = self._book
        out = book.begin()
        temperature = self._temperature
        shake = self._shake
        for record in batch:
            if type(record) is TemperatureReading:
                rules = temperature.get(record.sensor)
                if rules is None:
                    self.stats.unknown_sensor_readings += 1
                    continue
                if now > rules.heard:
                    rules.heard = now
                    if now >= rules.seen_due:
                        self._seen.add(record.sensor)
                if rules.offline is not None:
                    rules.back_online(now, book)
                    self._offline_next = min(self._offline_next, now + rules.offline_after)
                ts = record.ts
                if ts <= rules.last:
                    self._count_old(ts, rules.last)
                    continue
                rules.last = ts
                if ts >= rules.last_due:
                    self._seen.add(record.sensor)
                celsius = record.celsius
                if rules.quiet and rules.lo <= celsius <= rules.hi:
                    continue  # the fast path: nothing in progress, nothing to start
                self._touched.add(record.sensor)
                rules.judge(ts, celsius, book)
                if not rules.quiet:
                    self._active[record.sensor] = rules
            elif type(record) is ShakeReading:
                srules = shake.get(record.sensor)
                if srules is None:
                    self.stats.unknown_sensor_readings += 1
                    continue
                if now > srules.heard:
                    srules.heard = now
                    if now >= srules.seen_due:
                        self._seen.add(record.sensor)
                if srules.offline is not None:
                    srules.back_online(now, book)
                    self._offline_next = min(self._offline_next, now + srules.offline_after)
                ts = record.ts
                if ts <= srules.last:
                    self._count_old(ts, srules.last)
                    continue
                srules.last = ts
                if ts >= srules.last_due:
                    self._seen.add(record.sensor)
                peak_g = record.peak_g
                if srules.agitation is None and peak_g < srules.threshold:
                    continue
                self._touched.add(record.sensor)
                srules.judge(ts, peak_g, book)
                if srules.agitation is not None:
                    self._active[record.sensor] = srules
            elif type(record) is BagEvent:
                self._bag_event(record, book)
            elif type(record) is SensorAvailability:
                any_rules = temperature.get(record.sensor) or shake.get(record.sensor)
                if any_rules is None:
                    self.stats.unknown_sensor_readings += 1
                elif not record.online:
                    any_rules.reported_offline(record.ts, book)
            else:
                raise TypeError(f"cannot judge a {type(record).__name__}")
        self.stats.records += len(batch)
        return out

    def _count_old(self, ts: datetime, last: datetime) -> None:
        if ts == last:
            self.stats.duplicate_readings += 1
        else:
            self.stats.late_readings += 1

    def _bag_event(self, event: BagEvent, book: AlertBook) -> None:
        outcome = self._bags.event(event, book)
        if outcome == "duplicate":
            self.stats.duplicate_bag_events += 1
        elif outcome == "unknown_bag":
            self.stats.unknown_bag_events += 1
        elif outcome == "unknown_unit":
            self.stats.unknown_unit_bag_events += 1
        elif outcome == "invalid_sequence":
            self.stats.invalid_bag_events += 1

    def tick(self, now: datetime) -> list[Transition]:
        """Apply what the clock alone decides at ``now``."""
        now = _instant(now)
        if self._unheard:
            self._start_silence(now)
        book = self._book
        out = book.begin()
        active = self._active
        for sensor, rules in list(active.items()):
            rules.due(now, book)
            if rules.at_rest():
                del active[sensor]
        if now >= self._offline_next:
            # Each sensor's silence can only end later than the scan saw it (``heard`` and ``last``
            # only grow; one back online lowers the bound itself), so until the earliest moment one
            # could fall due no sensor needs looking at: a fleet's tick costs what is in progress.
            soonest = FOREVER
            for any_rules in (*self._temperature.values(), *self._shake.values()):
                any_rules.check_offline(now, book)
                if any_rules.offline is None:
                    due = (
                        any_rules.heard if any_rules.heard >= any_rules.last else any_rules.last
                    ) + any_rules.offline_after
                    if due < soonest:
                        soonest = due
            self._offline_next = soonest
        self._bags.due(now, book)
        self._calibration.due(now, book)
        self._system.tick(now, book)
        if len(out) > 1:
            out.sort(key=_by_updated)  # stable: sensors and bags interleave in time order
        return out

    def system(self, facts: list[Fact], now: datetime) -> list[Transition]:
        """Judge facts about coldchain itself (``system_rules``): the system alerts they open or resolve."""
        now = _instant(now)
        out = self._book.begin()
        self._system.observe(facts, now, self._book)
        return out

    def adopt(self, alerts: Iterable[Alert]) -> int:
        """Take back open alerts from the store after the snapshot was lost; how many were new.

        A ``sensor_offline`` alert is tied to its sensor again (it resolves at the next reading); other
        sensor alerts lost their episode's state, so an acknowledgement resolves them; bag and system
        alerts keep their ids, so the rules re-detecting them do not open a second episode.
        """
        sensors: dict[str, SensorRules] = {**self._temperature, **self._shake}
        taken = 0
        for alert in alerts:
            if alert.id in self._book.open_alerts or alert.state == "resolved":
                continue
            rules = sensors.get(alert.sensor) if alert.sensor is not None else None
            if alert.sensor is not None and rules is None:
                continue  # a sensor no longer in the inventory
            self._book.open_alerts[alert.id] = alert
            self._book.touch(alert)
            taken += 1
            if rules is not None and alert.kind == "sensor_offline":
                rules.offline = alert.id
            elif rules is not None and alert.kind not in CALIBRATION_KINDS:  # the calibration rule re-derives those
                self._adopted.add(alert.id)
        return taken

    def broker_outages(self) -> tuple[Outage, ...]:
        """The recent broker outages, the last one open while it lasts (for grouping ``sensor_offline``)."""
        return tuple(self._system.outages)

    def acknowledge(self, ack: Acknowledgement, at: datetime) -> Transition | None:
        """Record who acknowledged an open alert, when, with what note and (signed) disposition.

        The alert stays active (``acknowledged``) until its condition clears, except
        ``bag_used_after_expiry``, which only an acknowledgement resolves. None if the alert is not
        open (already resolved, or unknown). ``core/signoff.py`` keeps the history and the first
        note, and raises ``DispositionConflict`` for a change that does not name the signed one.
        """
        at = _instant(at)
        book = self._book
        alert_id = ack.alert_id
        alert = book.open_alerts.get(alert_id)
        if alert is None:
            return None
        acked = signoff.acknowledge(alert, ack, at)
        book.touch(alert)
        if alert.kind in RESOLVED_BY_ACK or alert_id in self._adopted:
            del book.open_alerts[alert_id]
            self._adopted.discard(alert_id)
            self._system.forget(alert_id)
            resolved = replace(acked, state="resolved", resolved_at=acked.updated_at)
            return Transition(resolved, "resolved")
        book.open_alerts[alert_id] = acked
        return Transition(acked, "updated")

    def bag_ledger(self) -> BagLedger:
        """What the engine knows of each bag, to refuse a message with an impossible bag event whole."""
        return self._bags.ledger()

    def bag_status(self, bag: str) -> BagStatus | None:
        """The bag's timer as dashboards show it, or None for a bag the engine does not know."""
        timer = self._bags.bags.get(bag)
        if timer is None:
            return None
        state: Literal["running", "done"] = "running" if timer.ended is None else "done"
        return BagStatus(timer.bag, timer.place.unit, timer.place.site, timer.diluted, timer.deadline, state)

    def running_bags(self) -> list[tuple[str, str, datetime, datetime]]:
        """Bags whose timers run: (bag, unit, diluted at, deadline), most urgent first."""
        timers = [t for t in self._bags.bags.values() if t.ended is None]
        return [(t.bag, t.place.unit, t.diluted, t.deadline) for t in sorted(timers, key=lambda t: t.deadline)]

    def open_alerts(self) -> list[Alert]:
        """The open alerts as last emitted, oldest episode first."""
        return sorted(self._book.open_alerts.values(), key=lambda alert: (alert.started_at, alert.kind, alert.subject))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-ready data; ``restore`` brings it back exactly."""
        return {
            "version": SNAPSHOT_VERSION,
            "alerts": [alert.to_payload() for alert in self._book.open_alerts.values()],
            "sensors": {
                sensor: rules.snapshot() for sensor, rules in (*self._temperature.items(), *self._shake.items())
            },
            "bags": self._bags.snapshot(),
            "stats": asdict(self.stats),
            "system": self._system.snapshot(),
        }

    def changes(self, now: datetime | None = None) -> dict[str, Any]:
        """What changed since the last change record (or ``mark_saved``), as a record for ``rules_changes``.

        With ``now`` (a checkpoint) a quiet sensor's last-seen is included coarsely, as
        ``rules_changes`` says; without, exactly (a clean stop, tests). Taking the record counts it
        as persisted: a caller that fails to store it merges it into the next one
        (``rules_changes.merge_changes``). ``{}`` when nothing needs persisting.
        """
        book = self._book
        sensors = self._temperature
        shake = self._shake
        states: dict[str, Any] = {}
        for sensor in self._touched | book.touched_sensors:
            rules: SensorRules | None = sensors.get(sensor) or shake.get(sensor)
            if rules is not None:
                states[sensor] = rules.snapshot()
                rules.saved()
        seen_ids = self._seen
        if now is None:
            seen_ids = seen_ids | {
                s for s, r in (*sensors.items(), *shake.items()) if r.heard != r.saved_heard or r.last != r.saved_last
            }
        elif self._scan_every is not None and _instant(now) >= self._scan_at:
            now = _instant(now)
            self._scan_at = now + self._scan_every
            seen_ids = seen_ids | {
                s
                for s, r in (*sensors.items(), *shake.items())
                if r.heard != r.saved_heard and now - r.heard >= r.grain
            }
        seen: dict[str, list[int | None]] = {}
        for sensor in seen_ids:
            if sensor in states:
                continue
            rules = sensors.get(sensor) or shake.get(sensor)
            if rules is not None:
                seen[sensor] = [_millis(rules.last), _millis(rules.heard)]
                rules.saved()
        bag_timers = self._bags.bags
        bags = {
            bag: timer.snapshot() if (timer := bag_timers.get(bag)) is not None else None
            for bag in self._bags.touched | book.touched_bags
        }
        open_alerts = book.open_alerts
        alerts = {
            aid: alert.to_payload() if (alert := open_alerts.get(aid)) is not None else None
            for aid in book.touched_alerts
        }
        self._touched = set()
        self._seen = set()
        self._bags.touched = set()
        book.touched_alerts, book.touched_sensors, book.touched_bags = set(), set(), set()
        record: dict[str, Any] = {}
        for key, section in (("sensors", states), ("seen", seen), ("bags", bags), ("alerts", alerts)):
            if section:
                record[key] = section
        system = self._system.snapshot()
        if system != self._saved_system:
            record["system"] = self._saved_system = system
        stats = asdict(self.stats)
        if stats != self._saved_stats and (record or now is None):
            record["stats"] = self._saved_stats = stats
        return record

    def mark_saved(self) -> None:
        """The whole state as it stands is persisted (a full snapshot was saved): nothing is due."""
        for rules in (*self._temperature.values(), *self._shake.values()):
            rules.saved()
        self._touched = set()
        self._seen = set()
        self._bags.touched = set()
        book = self._book
        book.touched_alerts, book.touched_sensors, book.touched_bags = set(), set(), set()
        self._saved_system = self._system.snapshot()
        self._saved_stats = asdict(self.stats)

    @classmethod
    def restore(
        cls,
        inventory: Inventory,
        snapshot: dict[str, Any],
        limits: SystemLimits | None = None,
        changes: Iterable[dict[str, Any]] = (),
        *,
        calibration_warn_before: timedelta = DEFAULT_WARN_BEFORE,
    ) -> RulesEngine:
        """An engine for ``inventory`` continuing from ``snapshot`` (older versions migrated) and then
        the change records ``changes`` in order (``rules_changes``).

        Sensors added since start their silence at the first ``now``; the state and open alerts
        of sensors no longer in the inventory (or now of another kind) are dropped.
        """
        snapshot = apply_changes(migrate(snapshot), changes)
        engine = cls(inventory, limits, calibration_warn_before=calibration_warn_before)
        sensors: dict[str, SensorRules] = {**engine._temperature, **engine._shake}
        loaded: set[str] = set()
        for sensor, data in snapshot["sensors"].items():
            rules = sensors.get(sensor)
            if rules is not None and rules.kind == data["kind"]:
                rules.load(data)
                loaded.add(sensor)
        engine._unheard = [rules for rules in sensors.values() if rules.heard == NEVER]
        engine._active = {sensor: rules for sensor, rules in sensors.items() if not rules.at_rest()}
        engine._bags.load(snapshot["bags"])
        for payload in snapshot["alerts"]:
            alert = Alert.from_payload(payload)
            if alert.sensor is None or alert.sensor in loaded:
                engine._book.open_alerts[alert.id] = alert
        known = {field.name for field in fields(RuleStats)}
        engine.stats = RuleStats(**{key: value for key, value in snapshot["stats"].items() if key in known})
        engine._system.load(snapshot["system"])
        engine.mark_saved()
        # a sensor the snapshot lacks (new in the inventory) has its first change written in full
        engine._touched = {sensor for sensor in sensors if sensor not in loaded}
        return engine


def _millis(ts: datetime) -> int | None:
    return None if ts == NEVER else to_millis(ts)


def migrate(snapshot: dict[str, Any]) -> dict[str, Any]:
    """``snapshot`` in the current version's shape; ValueError for a version this code does not know.

    Version 1 (before system alerts) has no ``system`` state: its links are taken as up, as at a start.
    """
    version = snapshot.get("version")
    if version == 1:
        empty: dict[str, Any] = {"down": [], "alerts": [], "outages": [], "skew_last": None}
        snapshot = {**snapshot, "version": 2, "system": empty}
        version = 2
    if version != SNAPSHOT_VERSION:
        raise ValueError(
            f"rules snapshot version {version!r} is not one this coldchain reads (1 to {SNAPSHOT_VERSION})"
        )
    return snapshot
