"""The rules worker end to end: real mosquitto, real influxd, ``coldchain run`` as a real process.

Each scenario publishes sensor traffic (often back-dated: rules judge event time, so a buffered
upload replays a past excursion in a moment) and observes the alert messages on
``<prefix>/alerts/#`` and the points stored in measurement ``alert``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coldchain.adapters.rules_snapshot import RulesState
from coldchain.core.alert import alert_id
from coldchain.core.times import format_time
from tests.publishing import Collector, wait_for
from tests.world import Scenario, gauge, iso

pytestmark = pytest.mark.integration


class AlertWorld(Scenario):
    """A Scenario running ``coldchain run`` with a collector on the alert topics."""

    def __init__(
        self,
        tmp_path: Path,
        mqtt: Any,
        influx: Any,
        unit_options: dict[str, list[str]] | None = None,
        extra: str = "",
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(tmp_path, mqtt, influx, env=env, role="run", unit_options=unit_options, extra=extra)
        self.alerts = Collector("127.0.0.1", mqtt.port, f"{self.prefix}/alerts/#")

    def payloads(self, kind: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        found = []
        for topic, payload, _ in self.alerts.snapshot():
            alert = json.loads(payload)
            assert topic == f"{self.prefix}/alerts/{alert['kind']}/{alert['subject']}"
            if (kind is None or alert["kind"] == kind) and (subject is None or alert["subject"] == subject):
                found.append(alert)
        return found

    def wait_alert(self, kind: str, subject: str, state: str, timeout: float = 15) -> dict[str, Any]:
        def match() -> dict[str, Any] | None:
            states = [a for a in self.payloads(kind, subject) if a["state"] == state]
            return states[-1] if states else None

        found = wait_for(match, timeout, f"{kind} {state} for {subject}")
        assert found is not None
        return found

    def stored_alerts(self, subject: str) -> list[dict[str, Any]]:
        return self.rows(f'SELECT * FROM "alert" WHERE "subject" = \'{subject}\' ORDER BY time')

    def checkpoints(self) -> float:
        return gauge(self.service.get("/metrics").text, "coldchain_rules_checkpoints_total")

    def acked(self) -> float:
        """Messages the rules worker judged and acked (each after the checkpoint covering it)."""
        return gauge(self.service.get("/metrics").text, "coldchain_rules_messages_acked_total")

    def snapshot(self) -> dict[str, Any]:
        """The rules worker's durable snapshot as it is on disk now (read beside the running process)."""
        state = RulesState(self.config.parent / "rules.sqlite")
        try:
            return state.load() or {}
        finally:
            state.close()

    def wait_snapshot(self, holds: Callable[[dict[str, Any]], bool], what: str) -> None:
        """Wait until the snapshot on disk shows ``what``: only then is a kill -9 after it meaningful."""

        def shown() -> bool:
            snapshot = self.snapshot()
            return bool(snapshot) and holds(snapshot)

        wait_for(shown, 15, what)

    def close(self) -> None:
        self.alerts.close()
        super().close()


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    w = AlertWorld(
        tmp_path,
        mosquitto,
        influxd,
        unit_options={"fridge-a": ['overrides = { agitation_clear = "2s" }'], "fridge-b": ['offline_after = "3s"']},
    )
    yield w
    w.close()


def minutes_ago(now: datetime, minutes: float) -> datetime:
    return now - timedelta(minutes=minutes)


def test_buffered_upload_opens_and_resolves_temperature_high_with_true_times(world: AlertWorld) -> None:
    """A buffered upload revealing a past 20-minute excursion yields open and resolved with true times."""
    world.service.start()
    now = datetime.now(UTC).replace(microsecond=0)
    start = minutes_ago(now, 40)
    upload = [{"ts": iso(start + timedelta(minutes=m)), "celsius": 9.0 + m / 10} for m in range(20)]
    upload += [{"ts": iso(start + timedelta(minutes=m)), "celsius": 5.0} for m in range(20, 40)]
    world.publisher_for().send(world.topic("t-001"), upload)

    opened = world.wait_alert("temperature_high", "t-001", "open")
    resolved = world.wait_alert("temperature_high", "t-001", "resolved")
    assert opened["started_at"] == format_time(start)
    assert opened["updated_at"] == format_time(start + timedelta(minutes=15))
    assert opened["id"] == resolved["id"] == alert_id("temperature_high", "t-001", start)
    assert (opened["severity"], opened["site"], opened["unit"], opened["sensor"]) == (
        "critical",
        "main-pharmacy",
        "fridge-a",
        "t-001",
    )
    assert resolved["resolved_at"] == format_time(start + timedelta(minutes=25))  # 5 min back in range
    assert resolved["value"] == pytest.approx(10.9)
    assert "Infusion fridge A" in opened["message"]
    stored = wait_for(lambda: len(world.stored_alerts("t-001")) == 2 and world.stored_alerts("t-001"), 15, "2 points")
    assert [(p["state"], p["kind"], p["severity"], p["id"]) for p in stored] == [
        ("open", "temperature_high", "critical", opened["id"]),
        ("resolved", "temperature_high", "critical", opened["id"]),
    ]
    assert stored[0]["started_at"] == opened["started_at"]


def test_retained_message_is_the_current_state(world: AlertWorld) -> None:
    """A subscriber arriving later gets the alert's current state as the retained message."""
    world.service.start()
    now = datetime.now(UTC).replace(microsecond=0)
    world.publisher_for().send(world.topic("t-001"), {"ts": iso(now), "celsius": -0.5})
    world.wait_alert("freezing", "t-001", "open")
    late = Collector("127.0.0.1", world.mqtt.port, f"{world.prefix}/alerts/freezing/t-001")
    try:
        retained = wait_for(late.snapshot, 10, "the retained alert")
        _topic, payload, retain = retained[0]
        assert retain and json.loads(payload)["state"] == "open"
    finally:
        late.close()


@pytest.mark.parametrize(
    ("readings", "kind", "value"),
    [
        # 16 minutes continuously between freezing and 2.0 °C
        ([(m, 1.5) for m in range(17)], "temperature_low", 1.5),
        # a single reading at 0.0 °C is freezing at once
        ([(0, 0.0)], "freezing", 0.0),
    ],
)
def test_low_and_freezing(world: AlertWorld, readings: list[tuple[int, float]], kind: str, value: float) -> None:
    """Below 2.0 °C for the delay opens temperature_low; at or below 0.0 °C opens freezing at once."""
    world.service.start()
    now = datetime.now(UTC).replace(microsecond=0)
    start = minutes_ago(now, 20)
    upload = [{"ts": iso(start + timedelta(minutes=m)), "celsius": c} for m, c in readings]
    world.publisher_for().send(world.topic("t-001"), upload)
    alert = world.wait_alert(kind, "t-001", "open")
    assert alert["started_at"] == format_time(start)
    assert alert["value"] == value and alert["severity"] == "critical"


def test_agitation_opens_at_once_and_clears_by_the_clock(world: AlertWorld) -> None:
    """A shake at exactly 0.5 g opens agitation; quiet for agitation_clear (2 s here) resolves it."""
    world.service.start()
    now = datetime.now(UTC)
    world.publisher_for().send(world.topic("s-001", "shake"), {"ts": iso(now), "peak_g": 0.5})
    opened = world.wait_alert("agitation", "s-001", "open")
    assert opened["value"] == 0.5 and opened["sensor"] == "s-001"
    resolved = world.wait_alert("agitation", "s-001", "resolved", timeout=15)
    assert resolved["id"] == opened["id"]


def test_sensor_offline_by_the_clock_and_back(world: AlertWorld) -> None:
    """A sensor silent for its unit's offline_after (3 s) is offline; its next reading resolves it."""
    world.service.start()
    pub = world.publisher_for()
    pub.send(world.topic("t-002"), {"ts": iso(datetime.now(UTC)), "celsius": 5.0})
    opened = world.wait_alert("sensor_offline", "t-002", "open", timeout=20)
    assert opened["severity"] == "warning" and opened["unit"] == "fridge-b"
    pub.send(world.topic("t-002"), {"ts": iso(datetime.now(UTC)), "celsius": 5.0})
    resolved = world.wait_alert("sensor_offline", "t-002", "resolved")
    assert resolved["id"] == opened["id"]


def bag_cli(world: AlertWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "bag", *args, "--config", str(world.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_bag_timers_and_use_after_expiry(world: AlertWorld) -> None:
    """A bag diluted 8 h ago minus 3 s warns at once, expires by the clock, and flags a late infusion."""
    world.service.start()
    pub = world.publisher_for()
    diluted = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8) + timedelta(seconds=3)
    deadline = diluted + timedelta(hours=8)
    pub.send(
        f"{world.prefix}/bags/B-0042/events",
        {"ts": iso(diluted), "event": "diluted", "unit": "fridge-a", "lot": "L123", "by": "j.doe"},
    )
    expiring = world.wait_alert("bag_expiring", "B-0042", "open")
    assert expiring["severity"] == "warning" and expiring["bag"] == "B-0042" and expiring["unit"] == "fridge-a"
    expired = world.wait_alert("bag_expired", "B-0042", "open", timeout=20)
    assert expired["severity"] == "critical"
    assert expired["updated_at"] == format_time(deadline)

    # a temperature alert in the same fridge names the bag as affected
    pub.send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -1.0})
    freezing = world.wait_alert("freezing", "t-001", "open")
    assert freezing["affected_bags"] == ["B-0042"]

    started = bag_cli(world, "start", "B-0042", "--by", "n.nurse")
    assert started.returncode == 0, started.stderr
    used = world.wait_alert("bag_used_after_expiry", "B-0042", "open")
    assert used["severity"] == "critical"
    discarded = bag_cli(world, "discard", "B-0042", "--by", "j.doe")
    assert discarded.returncode == 0, discarded.stderr
    world.wait_alert("bag_expiring", "B-0042", "resolved")
    world.wait_alert("bag_expired", "B-0042", "resolved")
    stored = wait_for(
        lambda: {(row["kind"], row["state"]) for row in world.stored_alerts("B-0042")} >= {("bag_expired", "resolved")},
        15,
        "stored bag alerts",
    )
    assert stored
    wait_for(lambda: world.count("bag_event", "event") == 3, 15, "the three bag events stored")
    timer = wait_for(
        lambda: [row for row in world.rows('SELECT * FROM "bag_timer"') if row["state"] == "done"], 15, "bag_timer"
    )
    assert (timer[0]["bag"], timer[0]["unit"], timer[0]["time"]) == (
        "B-0042",
        "fridge-a",
        int(deadline.timestamp() * 1000),
    )
    events = world.rows('SELECT * FROM "bag_event"')
    assert [(row["event"], row.get("by")) for row in events] == [
        ("diluted", "j.doe"),
        ("infusion_started", "n.nurse"),
        ("discarded", "j.doe"),
    ]


def test_kill_9_mid_excursion_keeps_the_pending_episode(world: AlertWorld) -> None:
    """kill -9 while an excursion is pending: after restart it opens with its true start and id."""
    world.service.start()
    pub = world.publisher_for()
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=14, seconds=30)
    pub.send(world.topic("t-001"), [{"ts": iso(start + timedelta(minutes=m)), "celsius": 9.5} for m in range(15)])
    world.wait_snapshot(
        lambda snap: snap["sensors"]["t-001"]["high"]["phase"] != "idle", "the pending excursion in the snapshot"
    )
    assert world.payloads("temperature_high") == []
    world.service.kill()
    world.service.start()
    pub.send(world.topic("t-001"), {"ts": iso(start + timedelta(minutes=15)), "celsius": 9.7})
    opened = world.wait_alert("temperature_high", "t-001", "open")
    assert opened["started_at"] == format_time(start)
    assert opened["id"] == alert_id("temperature_high", "t-001", start)


def test_kill_9_with_open_alert_does_not_announce_it_again(world: AlertWorld) -> None:
    """An open alert survives kill -9 with its id and is not published again as new."""
    world.service.start()
    pub = world.publisher_for()
    pub.send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -2.0})
    opened = world.wait_alert("freezing", "t-001", "open")
    world.wait_snapshot(
        lambda snap: opened["id"] in [a["id"] for a in snap["alerts"]], "the open alert in the snapshot"
    )
    world.service.kill()
    world.service.start()
    pub.send(world.topic("t-002"), {"ts": iso(datetime.now(UTC)), "celsius": 5.0})
    wait_for(lambda: world.acked() >= 1, 15, "the restarted worker judging new traffic")
    pub.send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -2.5})
    wait_for(lambda: world.acked() >= 2, 15, "another checkpoint")
    freezing = world.payloads("freezing", "t-001")
    assert [a["state"] for a in freezing] == ["open"]
    assert freezing[0]["id"] == opened["id"]
    metrics = world.service.get("/metrics").text
    assert gauge(metrics, "coldchain_alerts_open") >= 1


def test_kill_9_mid_bag_timer(world: AlertWorld) -> None:
    """kill -9 while a bag's timer runs: after restart it still expires at its deadline, warning not repeated."""
    world.service.start()
    pub = world.publisher_for()
    diluted = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8) + timedelta(seconds=6)
    pub.send(f"{world.prefix}/bags/B-7/events", {"ts": iso(diluted), "event": "diluted", "unit": "fridge-b"})
    world.wait_alert("bag_expiring", "B-7", "open")
    world.wait_snapshot(
        lambda snap: any(b["bag"] == "B-7" and b["expiring"] for b in snap["bags"]), "the bag timer in the snapshot"
    )
    world.service.kill()
    world.service.start()
    expired = world.wait_alert("bag_expired", "B-7", "open", timeout=20)
    assert expired["updated_at"] == format_time(diluted + timedelta(hours=8))
    assert [a["state"] for a in world.payloads("bag_expiring", "B-7")] == ["open"]
