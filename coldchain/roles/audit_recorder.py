"""The rules worker's audit recorder: what operators and devices did, as hash-chained events.

At start it records ``config_loaded``; every bag event the worker judges and every acknowledgement
becomes an event in the local ``AuditLog`` (a redelivered message or a replayed action carries the
same dedupe key and is recorded once), then goes to the store (measurement ``audit``) through the
durable writer. Events a crash kept from the store are sent at the next start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

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
            }
            key = f"bag:{e.bag}:{e.event}:{to_millis(e.ts)}"
            self.log.append(e.by or "unknown", "bag_event", e.bag, details, self.clock(), dedupe_key=key)
        self.flush()

    def acknowledged(self, alert: Alert, by: str, at: datetime) -> None:
        """The acknowledgement just made (the last of the alert's history); a signed one holds its signature."""
        entry = alert.history[-1] if alert.history else None
        details: dict[str, Any] = {
            "note": entry.note if entry is not None else alert.note,
            "disposition": entry.disposition if entry is not None else alert.disposition,
            "kind": alert.kind,
            "unit": alert.unit,
            "site": alert.site,
            "subject": alert.subject,
            "state": alert.state,
        }
        if entry is not None and entry.signature is not None:
            details["signature"] = entry.signature.to_payload()
        self.log.append(by, "acknowledged", alert.id, details, at, dedupe_key=f"ack:{alert.id}:{to_millis(at)}")
        self.flush()

    def security(self, action: str, user: str, details: dict[str, Any], at: datetime) -> None:
        """A failed signature (``signature_failed``) or a locked signing (``signing_locked``), §11.300(d)."""
        self.log.append(user, action, user, details, at)
        self.flush()

    def flush(self) -> None:
        """Copy the events the store does not have yet (raises WriterStopped when stopping: kept for next time)."""
        events = self.log.unstored()
        if events:
            self.writer.write(events)
            self.log.mark_stored(event.seq for event in events)

    def close(self) -> None:
        self.log.close()
