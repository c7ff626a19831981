"""Sample records and expectations shared by several test modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from coldchain.core.alert import Alert
from coldchain.core.records import (
    AuditEvent,
    BagEvent,
    BagStatus,
    NotificationAttempt,
    Record,
    Rejection,
    RejectReason,
    Review,
    SensorAvailability,
    ShakeReading,
    TemperatureReading,
)
from coldchain.core.rollups import Rollup

T0 = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)

DEMO_OPENED = [
    ("agitation", "s-001"),
    ("bag_expired", "B-1003"),
    ("bag_expiring", "B-1003"),
    ("freezing", "t-002"),
    ("sensor_offline", "t-002"),
    ("temperature_high", "t-001"),
    ("temperature_low", "t-002"),
]
"""The alerts (kind, subject) the demo's scenario opens on its two fridges, sorted: one per incident."""


ONE_FRIDGE = """
[[units]]
id = "fridge-a"
site = "main-pharmacy"
name = "Infusion fridge A"

[[sensors]]
id = "t-001"
unit = "fridge-a"
kind = "temperature"
"""
"""The smallest inventory, as TOML: fridge-a at main-pharmacy with its one temperature probe t-001."""


def freezing_alert(aid: str, state: str = "open", **changes: object) -> Alert:
    """fridge-a's freezing alert at ``T0`` (-0.5 °C, bags B-0042 and B-0043 inside), with ``changes``."""
    values: dict[str, object] = {
        "id": aid,
        "kind": "freezing",
        "subject": "t-001",
        "state": state,
        "severity": "critical",
        "site": "main-pharmacy",
        "unit": "fridge-a",
        "sensor": "t-001",
        "bag": None,
        "started_at": T0,
        "updated_at": T0,
        "resolved_at": None,
        "value": -0.5,
        "message": "Infusion fridge A at or below 0.0 °C (reading -0.5 °C)",
        "affected_bags": ("B-0042", "B-0043"),
    }
    values.update(changes)
    return Alert(**values)  # type: ignore[arg-type]


EVERY_RECORD_TYPE: list[Record] = [
    TemperatureReading("t-001", "fridge-a", "main-pharmacy", T0, 4.0, seq=1031, battery_pct=88),
    ShakeReading("s-001", "fridge-a", "main-pharmacy", T0, 0.75, seq=12),
    BagEvent("B-0042", "diluted", T0, "fridge-a", "main-pharmacy", "natalizumab", "L1", "j.doe"),
    BagStatus("B-0042", "fridge-a", "main-pharmacy", T0 - timedelta(hours=8), T0, "running"),
    Rejection(RejectReason.INVALID_JSON, "coldchain/sensors/x/temperature", "not JSON", b"{oops \xff", T0),
    NotificationAttempt(
        "a1b2", "freezing", "critical", "main-pharmacy", "fridge-a", "mailto://x", "email", "opened", 1,
        "failed", "timeout", 2, T0,
    ),
    AuditEvent(7, T0, "j.doe", "alert.acknowledge", "a1b2", '{"note":"binned"}', "0" * 64, "f" * 64),
    SensorAvailability("z-001", "fridge-a", "main-pharmacy", T0, online=False),
    Review("fridge-a", "main-pharmacy", T0, "k.tech", "Kim Tech", "daily review", "min 3.1, max 6.0: checked",
           "2026-11-30", T0 - timedelta(days=1), T0, '{"sensors":[]}', "fridge-a-r1"),
    Rollup("t-001", "fridge-a", "main-pharmacy", "temperature", "5m", T0, 5, 4.0, 5.0, 22.0, 4.4, 0),
    Rollup("t-001", "fridge-a", "main-pharmacy", "temperature", "1d", T0, 5, 4.0, 5.0, 22.0, 4.4, 0),
    freezing_alert(
        "a1b2", "acknowledged", bag="B-0042", resolved_at=T0, acknowledged_by="j.doe", note="binned",
        disposition="quarantined", acknowledged_at=T0,
    ),
]  # fmt: skip
"""One record of each type the store holds (both rollup grains), every optional attribute set so each tag and
field is written: an int battery (stored as a float) and a rejected payload that is not UTF-8 among them."""
