"""The rules worker's audit recorder: what operators and devices did, as hash-chained, MAC'd events.

At start it records ``config_loaded``; every bag event the worker judges, every bag conflict and every
acknowledgement becomes an event in the local ``AuditLog`` (a redelivered message or a replayed action
carries the same dedupe key and is recorded once), then goes to the store (measurement ``audit``)
through the durable writer, and the new head (seq, hash, time) is published retained on
``<prefix>/audit/head`` (an anchor). Events a crash kept from the store are sent at the next start.

A wiped state directory (an empty local log while the store holds a chain) does not restart the
chain at seq 1: the recorder verifies the store's chain, continues from its head and records
``state_reset`` with what it found.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from coldchain import __version__
from coldchain.adapters.audit_log import AuditLog, settings_digest
from coldchain.adapters.store.durable import DurableWriter
from coldchain.config import Settings
from coldchain.core.alert import Alert
from coldchain.core.audit_chain import verify_chain, verify_macs
from coldchain.core.records import AuditEvent, BagEvent, Review
from coldchain.core.review import review_document
from coldchain.core.times import format_time, to_millis
from coldchain.reporting.audit_trail import read_chain

log = logging.getLogger("coldchain.audit")

HeadPublisher = Callable[[bytes], None]
"""Publishes the head's JSON retained on ``<prefix>/audit/head``."""


def head_payload(event: AuditEvent) -> bytes:
    """The anchored head: seq, hash and time (and its MAC's key id)."""
    body = {"seq": event.seq, "hash": event.hash, "time": format_time(event.at), "key_id": event.mac.partition(":")[0]}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(eq=False)
class AuditRecorder:
    """Turns the worker's facts into audit events and copies them to the store."""

    log: AuditLog
    writer: DurableWriter
    clock: Callable[[], datetime]
    publish_head: HeadPublisher | None = None
    chain: str = ""
    """The chain the events link into in the store ("" unless the rules are partitioned)."""
    _continued: bool = field(default=False, init=False, repr=False)

    def _continue_chain(self) -> None:
        """In an empty local log, continue from the store's chain (recording ``state_reset``) instead of seq 1.
        Raises StoreError when the store cannot be read (nothing is appended then)."""
        if self._continued:
            return
        if self.log.head() is None:
            chain = read_chain(self.writer.store, chain=self.chain)
            if chain:
                broken = verify_chain(chain)
                if broken is None and self.log.key is not None:
                    broken = verify_macs(chain, [self.log.key])
                head = chain[-1]
                self.log.adopt(head)
                details = {
                    "reason": "the local audit log was empty (state directory wiped or replaced); continued from"
                    " the store's chain",
                    "store_head_seq": head.seq,
                    "store_head_hash": head.hash,
                    "store_events": len(chain),
                    "store_chain_verified": broken is None,
                    "first_problem": None if broken is None else str(broken),
                }
                (log.error if broken is not None else log.warning)(
                    "audit log was empty: continuing the store's chain from seq %d (%s)",
                    head.seq,
                    "verified" if broken is None else f"NOT verified: {broken}",
                )
                self.log.append("coldchain", "state_reset", "audit", details, self.clock())
        self._continued = True

    def config_loaded(self, settings: Settings, source: str) -> None:
        """Record the configuration this worker runs with (secrets masked), and store what a crash held back."""
        self._continue_chain()
        details = {
            "settings_sha256": settings_digest(settings),
            "units": len(settings.units),
            "sensors": len(settings.sensors),
            "coldchain_version": __version__,
        }
        self.log.append("coldchain", "config_loaded", source, details, self.clock())
        self.flush()

    def bag_events(self, events: Sequence[BagEvent]) -> None:
        self._continue_chain()
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
        self._continue_chain()
        for alert in alerts:
            details = {"message": alert.message, "alert_id": alert.id, "unit": alert.unit, "site": alert.site}
            key = f"bag_conflict:{alert.id}"
            self.log.append("coldchain", "bag_conflict", alert.subject, details, self.clock(), dedupe_key=key)
        self.flush()

    def acknowledged(self, alert: Alert, by: str, at: datetime) -> None:
        """The acknowledgement just made (the last of the alert's history); a signed one holds its signature."""
        self._continue_chain()
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

    def reviewed(self, review: Review) -> None:
        """A signed daily review (``reviewed``, subject the unit): the signature and the figures it covered."""
        self._continue_chain()
        details = review_document(review)
        key = f"review:{review.unit}:{to_millis(review.at)}"
        self.log.append(review.by, "reviewed", review.unit, details, review.at, dedupe_key=key)
        self.flush()

    def security(
        self, action: str, user: str, details: dict[str, Any], at: datetime, subject: str | None = None
    ) -> None:
        """A failed signature (``signature_failed``) or a locked signing (``signing_locked``), §11.300(d); also
        what coldchain did on its own (a scheduled report's ``report_run``, ``report_failed``: ``subject`` its name)."""
        self._continue_chain()
        self.log.append(user, action, subject or user, details, at)
        self.flush()

    def flush(self) -> None:
        """Copy the events the store does not have yet (raises WriterStopped when stopping: kept for next time)."""
        events = self.log.unstored()
        if self.chain:
            events = [replace(event, chain=self.chain) for event in events]
        if events:
            self.writer.write(events)
            self.log.mark_stored(event.seq for event in events)
            if self.publish_head is not None:
                self.publish_head(head_payload(events[-1]))

    def close(self) -> None:
        self.log.close()
