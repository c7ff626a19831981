"""Instants as coldchain stores and writes them: UTC, millisecond epochs and RFC 3339 text; pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_millis(ts: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime (exact integer arithmetic)."""
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(millis: int) -> datetime:
    """The aware UTC datetime of a millisecond epoch timestamp."""
    return EPOCH + timedelta(milliseconds=millis)


def format_time(ts: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; milliseconds only when non-zero (microseconds only if present)."""
    ts = ts.astimezone(UTC)
    head = f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    micro = ts.microsecond
    if micro == 0:
        return head + "Z"
    if micro % 1000 == 0:
        return f"{head}.{micro // 1000:03d}Z"
    return f"{head}.{micro:06d}Z"


def parse_time(text: str) -> datetime:
    """The aware UTC datetime of a ``format_time`` string."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no offset")
    return parsed.astimezone(UTC)
