"""Sample records and expectations shared by several test modules."""

from __future__ import annotations

from datetime import UTC, datetime

from coldchain.core.alert import Alert

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
