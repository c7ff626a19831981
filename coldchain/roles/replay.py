"""Replaying rejected messages: each stored rejection's whole payload through the normal parser again.

``coldchain rejected replay`` (after a clock or inventory fix) parses every selected rejection with
its original topic and arrival time. A message the parser (or the append-only and bag-sequence
checks) rejects again stays rejected, and nothing new is stored for it; a message now accepted has
its records written to the store, where a record already there with the same values is the same
point (a second replay stores nothing twice). The run is recorded in the audit trail
(``rejected_replayed``: who, the selection, and each message's outcome).

The rules engine does not re-judge replayed records (they are past, and the engine judges by event
time only what arrives live): a replayed excursion shows in exports and dashboards, not as an alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coldchain.adapters.store.points import payload_bytes
from coldchain.adapters.store.port import Record, Store
from coldchain.config import Settings
from coldchain.contract.parser import MessageParser
from coldchain.contract.topics import Topics, topic_matches
from coldchain.core.records import BagEvent, Rejection, RejectReason
from coldchain.core.times import format_time
from coldchain.roles.fact_guard import FactGuard


@dataclass(frozen=True, slots=True)
class Rejected:
    """One stored rejection, as ``coldchain rejected list`` shows it."""

    at: datetime
    reason: str
    topic: str
    detail: str
    payload: bytes


def rejected_rows(
    store: Store, start: datetime, end: datetime, reason: str | None = None, topic: str | None = None
) -> list[Rejected]:
    """The stored rejections with ``start`` <= arrival < ``end``, of ``reason`` and matching the ``topic`` filter."""
    tags = {"reason": reason} if reason else None
    out = []
    for row in store.read_range("rejected", start, end, tags):
        item = Rejected(
            row["time"],
            str(row.get("reason", "")),
            str(row.get("topic") or ""),
            str(row.get("detail") or ""),
            payload_bytes(str(row.get("payload") or "")),
        )
        if topic is None or topic_matches(topic, item.topic):
            out.append(item)
    return out


@dataclass(slots=True)
class ReplayResult:
    """Each replayed message's outcome, and the records stored."""

    accepted: list[tuple[Rejected, int]] = field(default_factory=list)
    """Messages now accepted, with how many records each stored."""
    still_rejected: list[tuple[Rejected, str, str]] = field(default_factory=list)
    """Messages rejected again: the reason and why."""

    def details(self, selection: Mapping[str, Any]) -> dict[str, Any]:
        """What the audit event records."""
        return {
            **selection,
            "accepted": [{"topic": r.topic, "received_at": format_time(r.at), "records": n} for r, n in self.accepted],
            "still_rejected": [
                {"topic": r.topic, "received_at": format_time(r.at), "reason": reason}
                for r, reason, _ in self.still_rejected
            ],
        }


def replay(store: Store, settings: Settings, rejected: Iterable[Rejected]) -> ReplayResult:
    """Parse each rejection again with its original topic and arrival time; store what is now accepted."""
    parser = MessageParser(settings)
    guard = FactGuard(store, Topics(settings.mqtt.topic_prefix))
    result = ReplayResult()
    for item in sorted(rejected, key=lambda r: r.at):
        if item.reason == RejectReason.STORE_REJECTED.value or not item.topic:
            result.still_rejected.append((item, item.reason, "refused by the store itself; not a message to parse"))
            continue
        parsed = parser.parse(item.topic, item.payload, item.at)
        if isinstance(parsed, Rejection):
            result.still_rejected.append((item, parsed.reason.value, parsed.detail))
            continue
        events = [record for record in parsed if isinstance(record, BagEvent)]
        why = guard.bag_message(events) if events else None
        if why is not None:
            result.still_rejected.append((item, RejectReason.INVALID_SEQUENCE.value, why))
            continue
        records: list[Record] = list(parsed)
        screened = guard.screen(records, item.at)
        conflicts = [r for r in screened if isinstance(r, Rejection)]
        if conflicts:
            result.still_rejected.append((item, conflicts[0].reason.value, conflicts[0].detail))
            continue
        write = store.write(screened)
        if write.refused:
            result.still_rejected.append((item, RejectReason.STORE_REJECTED.value, write.refused[0].reason))
            continue
        result.accepted.append((item, len(screened)))
    return result
