"""The audit trail as the store holds it (measurement ``audit``), read back for verification and exports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from coldchain.core.audit_chain import event_from_row
from coldchain.core.records import AuditEvent

AUDIT_MEASUREMENT = "audit"


_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)


_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def read_chain(store: Any, until: datetime = _FAR_FUTURE) -> list[AuditEvent]:
    """Every audit event in ``store`` (a ``Store``) before ``until``, sorted by seq (then time)."""
    events = [event_from_row(row) for row in store.read_range(AUDIT_MEASUREMENT, _FAR_PAST, until)]
    events.sort(key=lambda e: (e.seq, e.at))
    return events
