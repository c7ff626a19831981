"""How coldchain words things for people: alert kinds, values, moments and durations; pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coldchain.core.alert import AlertKind

KIND_WORDS: dict[AlertKind, str] = {
    "temperature_high": "Too warm",
    "temperature_low": "Too cold",
    "freezing": "Freezing",
    "agitation": "Shaken",
    "sensor_offline": "Sensor offline",
    "bag_expiring": "Bag expiring",
    "bag_expired": "Bag expired",
    "bag_used_after_expiry": "Bag used after expiry",
    "signing_locked": "Signing locked",
    "bag_conflict": "Bag records disagree",
    "review_missed": "Daily review missed",
    "calibration_due": "Calibration due",
    "calibration_expired": "Calibration expired",
    "report_failed": "Scheduled report failed",
    "broker_unreachable": "MQTT broker unreachable",
    "store_unreachable": "Store unreachable",
    "disk_low": "Disk space low",
    "state_reset": "State reset",
    "role_failed": "Role failed",
    "clock_skew": "Clock skew",
}
"""How people read each kind (titles of notifications and of the acknowledge page)."""

VALUE_UNITS: dict[AlertKind, str] = {
    "temperature_high": "°C",
    "temperature_low": "°C",
    "freezing": "°C",
    "agitation": "g",
}
"""The unit of an alert's ``value``, for the kinds that have one."""


def say_span(span: timedelta, *, to_the_minute: bool = False) -> str:
    """A duration as staff read it in a message: ``45 s``, ``15 min``, ``1 h 5 min``.

    ``to_the_minute`` says ``under 1 min`` instead of seconds (notifications, where seconds are noise).
    A negative span (clocks apart) reads as zero.
    """
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 60:
        return "under 1 min" if to_the_minute else f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def say_time(ts: datetime, *, seconds: bool = False) -> str:
    """A moment in a message: ``2026-11-30 02:10 UTC`` (seconds when not zero, or always with ``seconds``)."""
    ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC" if ts.second or seconds else "%Y-%m-%d %H:%M UTC")


def say_clock(span: timedelta) -> str:
    """A span on a stopwatch: ``1:05``, ``-0:10`` (hours and minutes; the demo's live view)."""
    total = int(span.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    return f"{sign}{total // 3600}:{total % 3600 // 60:02d}"


def say_number(value: float) -> str:
    """A measurement in a message: one decimal at least, two at most (``8.0``, ``9.65``)."""
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text
