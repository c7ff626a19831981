"""The rules worker's audit recorder: what operators and devices did, as hash-chained events.

At start it records ``config_loaded``; every bag event the worker judges and every acknowledgement
becomes an event in the local ``AuditLog`` (a redelivered message or a replayed action carries the
same dedupe key and is recorded once), then goes to the store (measurement ``audit``) through the
durable writer. Events a crash kept from the store are sent at the next start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from coldchain import __version__
from coldchain.adapters.audit_log import AuditLog, settings_digest
from coldchain.adapters.store.durable import DurableWriter
from coldchain.config import Settings
from coldchain.core.alert import Alert
from coldchain.core.records import BagEvent
from coldchain.core.times import format_time, to_millis


class AuditRecorder:
    """Turns the worker's facts into audit events and copies them to the store."""

    def __init__(self, log: AuditLog, writer: DurableWriter, clock: Callable[[], datetime]) -> None:
        self.log = log
        self.writer = writer
        self.clock = clock

    def config_loaded(self, settings: Settings, source: str) -> None:
        """Record the configuration this worker runs with (secrets masked), and store what a crash held back."""
        details = {
            "settings_sha256": settings_digest(settings),
            "units": len(settings.units),
            "sensors": len(settings.sensors),
            "coldchain_version": __version__,
        }
        self.log.append("coldchain", "config_loaded", source, details, self.clock())
        self.flush()

    def bag_events(self, events: Sequence[BagEvent]) -> None:
        for e in events:
            details = {
                "event": e.event,
                "ts": format_time(e.ts),
                "unit": e.unit,
                "site": e.site,
                "product": e.product,
                "lot": e.lot,
                "by": e.by,
                "source": e.source or "mqtt",
            }
            key = f"bag:{e.bag}:{e.event}:{to_millis(e.ts)}"
            self.log.append(e.by or "unknown", "bag_event", e.bag, details, self.clock(), dedupe_key=key)
        self.flush()

    def bag_conflicts(self, alerts: Sequence[Alert]) -> None:
        """A bag recorded with two dilution times: the earlier rules; a pharmacist checks the label."""
        for alert in alerts:
            details = {"message": alert.message, "alert_id": alert.id, "unit": alert.unit, "site": alert.site}
            key = f"bag_conflict:{alert.id}"
            self.log.append("coldchain", "bag_conflict", alert.subject, details, self.clock(), dedupe_key=key)
        self.flush()

    def acknowledged(self, alert: Alert, by: str, at: datetime) -> None:
        details = {
            "note": alert.note,
            "disposition": alert.disposition,
            "kind": alert.kind,
            "unit": alert.unit,
            "site": alert.site,
            "subject": alert.subject,
            "state": alert.state,
        }
        self.log.append(by, "acknowledged", alert.id, details, at, dedupe_key=f"ack:{alert.id}:{to_millis(at)}")
        self.flush()

    def flush(self) -> None:
        """Copy the events the store does not have yet (raises WriterStopped when stopping: kept for next time)."""
        events = self.log.unstored()
        if events:
            self.writer.write(events)
            self.log.mark_stored(event.seq for event in events)

    def close(self) -> None:
        self.log.close()
