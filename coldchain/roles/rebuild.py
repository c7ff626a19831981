"""Rebuilding the rules engine's state from the store of record after its snapshot was lost.

When the snapshot cannot be read (moved aside by ``RulesState``) or cannot be used, the worker
starts a fresh engine and brings back what the store holds: every bag event of the last
``LOOKBACK`` (so running bag timers keep their deadlines and expire on time) and the alerts whose
last stored state is not ``resolved`` (so they stay visible, can be acknowledged and are not
opened twice). What cannot be rebuilt — excursions still in their delay, the silence timers — is
said in the ``state_reset`` alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from coldchain.adapters.store.port import Store
from coldchain.core.alert import Alert
from coldchain.core.records import BagEvent

LOOKBACK = timedelta(days=30)
"""How far back the store is read: the oldest reading the contract accepts."""


def _text(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    return None if value in (None, "") else str(value)


def bag_event_of(row: dict[str, Any]) -> BagEvent:
    """The bag event a ``bag_event`` row stores."""
    return BagEvent(
        bag=str(row["bag"]),
        event=row["event"],
        ts=row["time"],
        unit=_text(row, "unit"),
        site=_text(row, "site"),
        product=_text(row, "product"),
        lot=_text(row, "lot"),
        by=_text(row, "by"),
    )


def alert_of(row: dict[str, Any]) -> Alert:
    """The alert state an ``alert`` row stores."""
    payload = {
        "id": row["id"],
        "kind": row["kind"],
        "subject": row["subject"],
        "state": row["state"],
        "severity": row["severity"],
        "site": row.get("site") or "",
        "unit": row.get("unit") or "",
        "sensor": _text(row, "sensor"),
        "bag": _text(row, "bag"),
        "started_at": row["started_at"],
        "updated_at": row["updated_at"],
        "resolved_at": _text(row, "resolved_at"),
        "value": row.get("value"),
        "message": row.get("message") or "",
        "acknowledged_by": _text(row, "acknowledged_by"),
        "note": _text(row, "note"),
        "affected_bags": [bag for bag in str(row.get("affected_bags") or "").split(",") if bag],
        "disposition": _text(row, "disposition"),
        "acknowledged_at": _text(row, "acknowledged_at"),
    }
    return Alert.from_payload(payload)


def stored_bag_events(store: Store, now: datetime) -> list[BagEvent]:
    """Every bag event stored in the last ``LOOKBACK``, oldest first."""
    return [bag_event_of(row) for row in store.read_range("bag_event", now - LOOKBACK, now + timedelta(minutes=5))]


def open_alerts(rows: Iterable[dict[str, Any]]) -> list[Alert]:
    """The alerts whose newest stored state is not ``resolved``."""
    latest: dict[str, Alert] = {}
    for row in rows:
        alert = alert_of(row)
        known = latest.get(alert.id)
        if known is None or alert.updated_at >= known.updated_at:
            latest[alert.id] = alert
    return [alert for alert in latest.values() if alert.state != "resolved"]


def stored_open_alerts(store: Store, now: datetime) -> list[Alert]:
    """The alerts stored in the last ``LOOKBACK`` that were not resolved."""
    return open_alerts(store.read_range("alert", now - LOOKBACK, now + timedelta(minutes=5)))
