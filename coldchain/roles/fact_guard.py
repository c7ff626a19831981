"""Ingest's guard over stored facts: no reading or bag event is rewritten, no impossible bag event stored.

- Readings and bag events: ``core/append_only.RecentFacts`` decides; what it does not hold in its
  window is read from the store once per batch (one query per measurement, filtered by tag when
  a single series needs it).
- Bag events: ``core/bag_sequence.BagLedger`` decides per message; a bag not seen since the start is
  looked up in the store (its ``bag_event`` rows of the last ``twice MAX_AGE``).

When the store cannot be asked, the batch is judged on what is in memory, logged and counted
(``coldchain_fact_checks_skipped_total``): ingest keeps storing (into the spool if need be) rather
than holding every sensor's data on an outage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from coldchain.adapters.store.port import Record, Store, StoreError
from coldchain.contract.topics import Topics
from coldchain.core.append_only import Fact, Need, RecentFacts, need_range, rows_to_values
from coldchain.core.bag_sequence import BagFacts, BagLedger, fold
from coldchain.core.records import (
    MAX_AGE,
    MAX_FUTURE,
    BagEvent,
    Rejection,
    RejectReason,
    ShakeReading,
    TemperatureReading,
)
from coldchain.core.times import format_time, to_millis

log = logging.getLogger("coldchain.ingest")

_TAG = {"temperature": "sensor", "shake": "sensor", "bag_event": "bag"}


def contract_payload(fact: Fact) -> bytes:
    """The fact in the contract's JSON (what a device would publish), kept with its rejection."""
    body: dict[str, object]
    if isinstance(fact, TemperatureReading):
        body = {"ts": format_time(fact.ts), "celsius": fact.celsius, "seq": fact.seq, "battery_pct": fact.battery_pct}
    elif isinstance(fact, ShakeReading):
        body = {"ts": format_time(fact.ts), "peak_g": fact.peak_g, "seq": fact.seq}
    else:
        body = {
            "ts": format_time(fact.ts),
            "event": fact.event,
            "unit": fact.unit,
            "product": fact.product,
            "lot": fact.lot,
            "by": fact.by,
        }
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def fact_topic(topics: Topics, fact: Fact) -> str:
    if isinstance(fact, TemperatureReading):
        return topics.sensor(fact.sensor, "temperature")
    if isinstance(fact, ShakeReading):
        return topics.sensor(fact.sensor, "shake")
    return topics.bag_events(fact.bag)


class FactGuard:
    """Screens ingest's batches against what is stored."""

    def __init__(self, store: Store, topics: Topics) -> None:
        self.store = store
        self.topics = topics
        self.recent = RecentFacts()
        self.bags = BagLedger(self._stored_bag)
        self.skipped = 0
        """Checks judged on memory alone because the store could not be asked."""

    def _stored_bag(self, bag: str) -> BagFacts:
        now = datetime.now(UTC)
        rows = self.store.read_range("bag_event", now - 2 * MAX_AGE, now + MAX_FUTURE, tags={"bag": bag})
        events = [
            BagEvent(bag, row["event"], row["time"], row.get("unit"), row.get("site"), None, None, None)
            for row in rows
            if row.get("event") in ("diluted", "infusion_started", "infusion_completed", "discarded")
        ]
        return fold(events)

    def bag_message(self, events: Sequence[BagEvent]) -> str | None:
        """Why one message's bag events cannot have happened (refuse it whole), or None."""
        try:
            return self.bags.admit(events)
        except StoreError as exc:
            self.skipped += 1
            log.warning("could not read a bag's stored events; its events are stored unchecked: %s", exc)
            return None

    def screen(self, records: list[Record], received_at: datetime) -> list[Record]:
        """``records`` without the facts that would rewrite a stored one: those become rejections (``records``
        itself when there are none)."""
        keyed = self.recent.keyed(records)
        if not keyed:
            return records
        self._ask_store(self.recent.missing(keyed))
        conflicts = self.recent.screen(keyed)
        self.recent.trim({series for series, _, _ in keyed})
        if not conflicts:
            return records
        details = {id(fact): detail for fact, detail in conflicts}
        out: list[Record] = []
        for record in records:
            detail = details.get(id(record))
            if detail is None:
                out.append(record)
                continue
            fact: Fact = record  # type: ignore[assignment]
            out.append(
                Rejection(
                    RejectReason.CONFLICTING_READING,
                    fact_topic(self.topics, fact),
                    detail,
                    contract_payload(fact),
                    received_at,
                )
            )
        return out

    def _ask_store(self, needs: list[Need]) -> None:
        """Load what the store holds for ``needs``: per measurement, one query for the series whose gap starts
        within the window (recent: e.g. every series after a restart), one tag-filtered query per series
        reaching further back (a late upload), so an old upload never reads every sensor's history."""
        if not needs:
            return
        latest_ms = to_millis(datetime.now(UTC) + MAX_FUTURE) + 1
        recent_from = latest_ms - self.recent.window_ms
        groups: dict[tuple[str, str | None], list[Need]] = {}
        for need in needs:
            key = (need.series[0], None if need.start_ms >= recent_from else need.series[1])
            groups.setdefault(key, []).append(need)
        for (measurement, ident), group in groups.items():
            self._load(measurement, ident, group, latest_ms)

    def _load(self, measurement: str, ident: str | None, group: list[Need], latest_ms: int) -> None:
        ranges = [need_range(n, latest_ms) for n in group]
        start, end = min(s for s, _ in ranges), max(e for _, e in ranges)
        tag = _TAG[measurement]
        single = ident if ident is not None else (group[0].series[1] if len(group) == 1 else None)
        tags = {tag: single} if single is not None else None
        try:
            rows = list(self.store.read_range(measurement, start, end + timedelta(milliseconds=1), tags))
        except StoreError as exc:
            self.skipped += 1
            log.warning("could not read stored %s to check for rewrites; judged on memory: %s", measurement, exc)
            return
        wanted = {need.series[1]: need for need in group}
        per_series: dict[str, list[dict[str, object]]] = {name: [] for name in wanted}
        for row in rows:
            name = str(row.get(tag, ""))
            if name in per_series:
                per_series[name].append(row)
        for name, need in wanted.items():
            self.recent.load(need, rows_to_values(measurement, per_series[name]))
