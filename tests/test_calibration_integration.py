"""Calibration alerts end to end: ``coldchain run`` (real mosquitto, real influxd) opens calibration_expired for
a certificate that ran out, keeps it across a restart, and resolves it when restarted with a new due date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coldchain.core.alert import alert_id
from coldchain.core.calibration_rules import expires_at
from coldchain.core.times import format_time, from_millis
from tests.test_rules_integration import AlertWorld

pytestmark = pytest.mark.integration

ZONE = "Europe/Berlin"
TODAY = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date()
RAN_OUT = TODAY - timedelta(days=3)
"""The certificate covered up to the end of this day (Berlin)."""


def calibrated(due: date) -> str:
    return (
        f'[[sites]]\nid = "main-pharmacy"\ntimezone = "{ZONE}"\n'
        '[[sensors]]\nid = "t-003"\nunit = "fridge-b"\nkind = "temperature"\n'
        f'calibration_due = "{due.isoformat()}"\ncalibration_certificate = "CERT-2024-0007"\n'
    )


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    w = AlertWorld(tmp_path, mosquitto, influxd, extra=calibrated(RAN_OUT))
    yield w
    w.close()


def test_expired_certificate_alert_survives_restart_and_resolves_with_a_new_date(world: AlertWorld) -> None:
    """calibration_expired opens at the Berlin midnight after the due date, keeps its id across a restart,
    and resolves when the service restarts with the new certificate's later due date."""
    world.service.start()
    opened = world.wait_alert("calibration_expired", "t-003", "open", timeout=40)
    expired_ms = expires_at(RAN_OUT, ZONE)
    assert opened["id"] == alert_id("calibration_expired", "t-003", from_millis(expired_ms))
    assert opened["started_at"] == format_time(from_millis(expired_ms))
    assert (opened["severity"], opened["sensor"], opened["unit"], opened["site"]) == (
        "critical",
        "t-003",
        "fridge-b",
        "main-pharmacy",
    )
    assert "CERT-2024-0007" in opened["message"] and RAN_OUT.isoformat() in opened["message"]
    world.wait_snapshot(lambda snap: opened["id"] in [a["id"] for a in snap["alerts"]], "the alert in the snapshot")

    assert world.service.stop() == 0
    world.service.start()  # the same configuration: the same episode, not announced again
    world.wait_snapshot(lambda snap: opened["id"] in [a["id"] for a in snap["alerts"]], "the alert kept")
    assert [a["state"] for a in world.payloads("calibration_expired", "t-003")] == ["open"]

    assert world.service.stop() == 0
    renewed = TODAY + timedelta(days=365)
    world.config.write_text(world.config.read_text().replace(RAN_OUT.isoformat(), renewed.isoformat()))
    world.service.start()
    resolved = world.wait_alert("calibration_expired", "t-003", "resolved", timeout=40)
    assert resolved["id"] == opened["id"]
    assert renewed.isoformat() in resolved["message"]
    assert world.payloads("calibration_due", "t-003") == []  # a year ahead: no warning either
