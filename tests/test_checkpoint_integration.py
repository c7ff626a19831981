"""Checkpoints that cost what changed, end to end: ``coldchain run`` against real mosquitto and influxd.

The rules worker's state file holds a base snapshot and a change log (``adapters/rules_snapshot.py``);
these tests read it beside the running process and through ``/metrics``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coldchain.core.alert import alert_id
from coldchain.core.times import format_time
from tests.publishing import wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import gauge, iso

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    w = AlertWorld(tmp_path, mosquitto, influxd)  # offline_after 15 min everywhere: a grain of 90 s
    yield w
    w.close()


def change_rows(world: AlertWorld) -> int:
    """Rows in the state file's change log right now."""
    with sqlite3.connect(world.config.parent / "rules.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM changes").fetchone()[0])


def figures(world: AlertWorld) -> tuple[float, float, float]:
    """(durable checkpoint commits, checkpoint bytes written, messages acked) from /metrics."""
    text = world.service.get("/metrics").text
    prefix = "coldchain_rules_checkpoint_bytes_total{"
    written = sum(float(line.split()[1]) for line in text.splitlines() if line.startswith(prefix))
    return gauge(text, "coldchain_rules_checkpoints_total"), written, world.acked()


def test_steady_state_writes_no_checkpoint_and_a_change_writes_one_record(world: AlertWorld) -> None:
    """Readings that change nothing are acked without any commit; an excursion starting writes one small record."""
    world.service.start()
    pub = world.publisher_for()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    for sensor in ("t-001", "t-002"):
        pub.send(world.topic(sensor), {"ts": iso(start), "celsius": 5.0})
    wait_for(lambda: world.acked() >= 2, 15, "the first readings judged and acked")
    commits, written, acked = figures(world)
    assert commits >= 1 and written > 0  # the base snapshot (and the first readings' last-seen)
    rows = change_rows(world)
    upload = [{"ts": iso(start + timedelta(milliseconds=100 * i)), "celsius": 4.0 + i / 100} for i in range(1, 100)]
    for sensor in ("t-001", "t-002"):
        for reading in upload:
            pub.send(world.topic(sensor), reading, wait=False)
    wait_for(lambda: world.acked() >= acked + 198, 20, "198 readings in range judged and acked")
    assert figures(world)[:2] == (commits, written)
    assert change_rows(world) == rows
    pub.send(world.topic("t-001"), {"ts": iso(start + timedelta(seconds=20)), "celsius": 9.5})
    wait_for(lambda: figures(world)[0] == commits + 1, 15, "one commit for the excursion starting")
    assert change_rows(world) == rows + 1
    assert 0 < figures(world)[1] - written < 2000  # the sensor's state and the stats, not the whole engine


def test_kill_9_during_a_stream_keeps_the_pending_episode_and_judges_nothing_twice(world: AlertWorld) -> None:
    """kill -9 mid-stream with a change log: the pending excursion opens once with its id, the open one stays."""
    world.service.start()
    pub = world.publisher_for()
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=14, seconds=30)
    pub.send(world.topic("t-001"), {"ts": iso(now - timedelta(minutes=20)), "celsius": -2.0})
    frozen = world.wait_alert("freezing", "t-001", "open")
    world.wait_snapshot(lambda snap: frozen["id"] in [a["id"] for a in snap["alerts"]], "the open alert on disk")
    stop = threading.Event()

    def stream() -> None:
        """t-002 above range every 5 s of event time from ``start`` (the 15 min delay falls due 30 s from now)."""
        for i in range(170):
            pub.send(world.topic("t-002"), {"ts": iso(start + timedelta(seconds=5 * i)), "celsius": 9.5})
            if i < 60:
                stop.wait(0.03)
            elif i == 60:
                stop.wait(30)  # held until the kill and restart: the rest arrive while the service is down or up

    publisher = threading.Thread(target=stream)
    publisher.start()
    try:
        world.wait_snapshot(
            lambda snap: snap["sensors"]["t-002"]["high"]["phase"] == "pending", "the pending excursion on disk"
        )
        assert change_rows(world) > 0  # restored below from the base plus the change log
        world.service.kill()
        stop.set()  # the stream goes on while coldchain is dead
    finally:
        stop.set()
        publisher.join(30)
    world.service.start()
    opened = world.wait_alert("temperature_high", "t-002", "open", timeout=60)
    assert opened["started_at"] == format_time(start)
    assert opened["id"] == alert_id("temperature_high", "t-002", start)
    wait_for(lambda: world.acked() >= 1, 15, "the restarted worker acking the redelivered stream")
    assert [a["state"] for a in world.payloads("temperature_high", "t-002")] == ["open"]
    assert [a["state"] for a in world.payloads("freezing", "t-001")] == ["open"]
    assert world.payloads("freezing", "t-001")[0]["id"] == frozen["id"]
