"""Fail loud, with real faults: the broker killed, the state disk full with InfluxDB stopped, a corrupt
snapshot, a spool batch that cannot be replayed, a role that keeps failing, sensors whose clock is ahead.

Each test shows what a user sees: the alert at a webhook target, ``/readyz``, the metrics, the service
log, and after recovery every reading the broker accepted stored.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.influx import InfluxStore
from coldchain.adapters.store.spool import Spool
from coldchain.config import InfluxConfig, Settings
from coldchain.core.records import TemperatureReading
from coldchain.roles.service import EXIT_ROLE_DEAD, Service
from tests.publishing import Collector, Publisher, wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import iso

pytestmark = pytest.mark.integration

TOKEN = "token-of-j-doe-123"
USERS = f'\n[[api.users]]\nname = "j.doe"\ntoken = "{TOKEN}"\n'


def hook_env(hook_url: str) -> dict[str, str]:
    """Every alert to one webhook target."""
    targets = [{"name": "ward-hook", "url": hook_url.replace("http://", "json://")}]
    return {
        "COLDCHAIN_NOTIFY__TARGETS": json.dumps(targets),
        "COLDCHAIN_NOTIFY__DEFAULT_TARGETS": json.dumps(["ward-hook"]),
        "COLDCHAIN_NOTIFY__RETRY_MAX": "1s",
    }


def hook_titles(server: HTTPServer) -> list[str]:
    return [str(json.loads(request.get_data())["title"]) for request, _ in server.log]


def readiness(world: AlertWorld) -> tuple[int, list[str]]:
    response = world.service.get("/readyz")
    return response.status_code, list(response.json()["problems"])


class Sensors:
    """The inventory's temperature sensors reporting every ``every`` seconds from a thread, counting PUBACKs."""

    def __init__(self, world: AlertWorld, every: float = 0.5) -> None:
        self.world = world
        self.every = every
        self.publisher = Publisher("127.0.0.1", world.mqtt.port)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = iso(datetime.now(UTC))
            for sensor in ("t-001", "t-002"):
                self.publisher.send(self.world.topic(sensor), {"ts": now, "celsius": 4.5}, wait=False)
            self._stop.wait(self.every)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.publisher.close()


def test_broker_killed_pages_once_while_down_and_sensors_are_grouped_under_it(
    tmp_path: Path, fresh_mosquitto: Any, influxd: Any, hook: HTTPServer
) -> None:
    """mosquitto killed: broker_unreachable reaches the webhook while the broker is down, the silenced
    sensors' sensor_offline alerts are stored but grouped under it (no page each), /readyz is 503; after
    the restart the alerts queued during the outage are published, and it resolves."""
    broker = fresh_mosquitto()
    world = AlertWorld(
        tmp_path,
        broker,
        influxd,
        unit_options={"fridge-a": ['offline_after = "4s"'], "fridge-b": ['offline_after = "4s"']},
        env={**hook_env(hook.url_for("/hook")), "COLDCHAIN_MQTT__OUTAGE_ALERT_AFTER": "3s"},
    )
    sensors: Sensors | None = None
    try:
        world.service.start()
        sensors = Sensors(world)
        wait_for(lambda: world.count() >= 6, 20, "readings stored before the outage")
        # the shake sensor never reports: its own offline page, before the outage, as usual
        wait_for(lambda: any("Sensor offline" in t for t in hook_titles(hook)), 40, "s-001's offline page")
        before = len(hook_titles(hook))
        broker.kill()
        killed = time.monotonic()
        titles = wait_for(
            lambda: [t for t in hook_titles(hook) if "MQTT broker unreachable" in t], 20, "the broker_unreachable page"
        )
        took = time.monotonic() - killed
        assert "RESOLVED" not in titles[0]
        status, problems = readiness(world)
        assert status == 503 and any("broker unreachable" in p for p in problems)
        time.sleep(6)  # sensors t-001 and t-002 go offline (4 s) by the clock while the broker is down
        during = hook_titles(hook)[before:]
        assert [t for t in during if "Sensor offline" in t] == [], during
        broker.start()
        wait_for(
            lambda: any("RESOLVED" in t and "MQTT broker unreachable" in t for t in hook_titles(hook)),
            40,
            "the broker_unreachable resolution",
        )
        # the alert messages queued while the broker was down went out on reconnect, in order: the retained
        # broker_unreachable is resolved, and t-001's sensor_offline opened and resolved (stored too)
        late = Collector("127.0.0.1", broker.port, f"{world.prefix}/alerts/#")
        try:
            wait_for(lambda: late.snapshot(), 10, "retained alerts")
            retained = {
                (json.loads(p)["kind"], json.loads(p)["subject"]): json.loads(p)["state"] for _, p, _ in late.snapshot()
            }
        finally:
            late.close()
        client = next(s for k, s in retained if k == "broker_unreachable")
        assert retained[("broker_unreachable", client)] == "resolved"
        stored = wait_for(
            lambda: [r["state"] for r in world.stored_alerts("t-001") if r["kind"] == "sensor_offline"],
            20,
            "t-001's offline alert stored",
        )
        assert stored[0] == "open"
        wait_for(
            lambda: (
                [r["state"] for r in world.stored_alerts("t-001") if r["kind"] == "sensor_offline"][-1] == "resolved"
            ),
            20,
            "t-001 back online after the broker returned",
        )
        time.sleep(3)
        after = hook_titles(hook)[before:]
        assert [t for t in after if "Sensor offline" in t and "s-001" not in t] == [], after
        assert took < 15, f"broker_unreachable paged {took:.1f} s after the kill"
        log = world.service.log_tail(400)
        assert "grouped under broker_unreachable" in log
    finally:
        if sensors is not None:
            sensors.close()
        world.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs (unmounted afterwards): the state directory that fills up."""
    directory = tmp_path / "state"
    directory.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path, leave: int) -> Path:
    """Fill ``directory``'s filesystem until about ``leave`` bytes are free; the filler file."""
    import shutil

    filler = directory / "filler"
    free = shutil.disk_usage(directory).free
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave))
    return filler


def test_disk_full_with_influx_down_holds_acks_says_so_and_loses_nothing(
    tmp_path: Path, small_disk: Path, fresh_influxd: Any, mosquitto: Any
) -> None:
    """State disk full and InfluxDB stopped: DISK FULL in the log with the path, /readyz 503, disk_low open,
    the process alive; once space and InfluxDB are back, every reading the broker accepted is stored."""
    influx = fresh_influxd()
    world = AlertWorld(tmp_path, mosquitto, influx)
    text = world.config.read_text()
    for name in ("spool.sqlite", "rules.sqlite", "rules-spool.sqlite", "notify.sqlite", "rollups.sqlite"):
        text = text.replace(str(tmp_path / name), str(small_disk / name))
    world.config.write_text(text)
    try:
        world.service.start()
        publisher = world.publisher_for()
        start = datetime.now(UTC) - timedelta(hours=1)
        publisher.send(world.topic("t-001"), {"ts": iso(start), "celsius": 4.0})
        wait_for(lambda: world.count() == 1, 20, "the first reading stored")
        subject = str(small_disk).replace("/", "%2F")
        world.wait_alert("disk_low", subject, "open", timeout=30)  # 3 MB is under the 500 MB minimum
        influx.stop()
        filler = fill(small_disk, leave=64 * 1024)
        total = 3000
        infos = [
            publisher.send(
                world.topic("t-002"), {"ts": iso(start + timedelta(seconds=i + 1)), "celsius": 5.0}, wait=False
            )
            for i in range(total)
        ]
        for info in infos:
            info.wait_for_publish(30)
        assert all(info.is_published() for info in infos)  # the broker accepted all 3,000
        wait_for(lambda: "DISK FULL" in world.service.log_tail(2000), 60, "DISK FULL in the log")
        assert str(small_disk) in next(
            line for line in world.service.log_tail(2000).splitlines() if "DISK FULL" in line
        )
        status, _ = wait_for(
            lambda: (r := readiness(world))[0] == 503 and any("DISK FULL" in p for p in r[1]) and r, 30, "/readyz 503"
        )
        assert status == 503
        assert world.service.get("/healthz").status_code == 200  # alive: holding, not dead
        metrics = world.service.get("/metrics").text
        assert "coldchain_disk_full_total" in metrics
        filler.unlink()
        influx.start()
        wait_for(lambda: world.count() == total + 1, 120, f"all {total + 1} readings stored")
        wait_for(lambda: readiness(world)[0] == 200, 60, "/readyz 200 again")
        assert world.service.process is not None and world.service.process.poll() is None
    finally:
        world.close()


def test_a_corrupt_snapshot_is_moved_aside_state_reset_raised_and_bag_timers_rebuilt(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    """Garbage in the rules snapshot: the service starts, keeps the file aside, raises state_reset saying
    what was lost, and the diluted bag's timer is rebuilt from the stored bag event."""
    world = AlertWorld(tmp_path, mosquitto, influxd, extra=USERS)
    try:
        world.service.start()
        diluted = datetime.now(UTC) - timedelta(hours=1)
        body = {"ts": iso(diluted), "event": "diluted", "unit": "fridge-a", "by": "j.doe"}
        world.publisher_for().send(f"{world.prefix}/bags/B-0042/events", body)
        wait_for(lambda: world.count("bag_event", "event") == 1, 20, "the bag event stored")
        world.wait_snapshot(lambda s: bool(s.get("bags")), "the bag in the snapshot")
        assert world.service.stop() == 0
        snapshot = tmp_path / "rules.sqlite"
        for part in tmp_path.glob("rules.sqlite-*"):
            part.unlink()
        snapshot.write_bytes(b"this is not a database" * 100)
        world.service.start()
        reset = world.wait_alert("state_reset", "rules-snapshot", "open", timeout=20)
        assert reset["severity"] == "critical"
        assert "moved to rules.sqlite.unreadable-" in reset["message"]
        assert "1 running bag timer" in reset["message"]
        kept = list(tmp_path.glob("rules.sqlite.unreadable-*"))
        assert kept and kept[0].read_bytes().startswith(b"this is not a database")
        units = httpx.get(
            world.service.api + "/api/units", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        ).json()
        bags = next(unit for unit in units if unit["id"] == "fridge-a")["bags"]
        assert [bag["bag"] for bag in bags] == ["B-0042"]
        deadline = datetime.fromisoformat(bags[0]["deadline"].replace("Z", "+00:00"))
        assert abs((deadline - (diluted + timedelta(hours=8))).total_seconds()) < 1
        assert readiness(world)[0] == 200
    finally:
        world.close()


def test_a_spool_batch_that_cannot_be_replayed_is_dead_lettered_whole(tmp_path: Path, influx_config: Any) -> None:
    """A damaged spooled batch fails spool.max_attempts times, moves whole to dead_letter, and the batch
    behind it reaches InfluxDB."""
    spool = Spool(tmp_path / "spool.sqlite", 1 << 24)
    damaged = b'{"not": "a batch"'
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        db.execute("INSERT INTO batch (created_at, n, body) VALUES (?, ?, ?)", (time.time(), 7, damaged))
    spool.close()
    spool = Spool(tmp_path / "spool.sqlite", 1 << 24)
    reading = TemperatureReading("t-001", "fridge-a", "main", datetime.now(UTC) - timedelta(minutes=1), 4.0)
    spool.append([reading])
    metrics = Metrics()
    store = InfluxStore(influx_config)
    writer = DurableWriter(store, spool, metrics, max_attempts=3)
    writer.start()
    try:
        wait_for(lambda: spool.batches == 0, 60, "the spool emptied")
        [(_, records, error, body)] = spool.dead_letters()
        assert body == damaged and records == 7 and error
        rows = list(
            store.read_range("temperature", reading.ts - timedelta(seconds=1), reading.ts + timedelta(seconds=1))
        )
        assert len(rows) == 1
        assert metrics.registry.get_sample_value("coldchain_spool_dead_lettered_records_total") == 7
    finally:
        writer.stop()
        store.close()
        spool.close()


def test_a_role_that_keeps_failing_is_named_then_the_service_exits_non_zero(
    tmp_path: Path, mosquitto: Any, influx_config: InfluxConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules loop raising every time: counted per role, /readyz names it, then exit status 70."""
    settings = Settings.model_validate(
        {
            "mqtt": {"url": mosquitto.url, "client_id": f"cc-{uuid.uuid4().hex[:8]}", "topic_prefix": "ccdead"},
            "influx": influx_config.model_dump(),
            "spool": {"path": str(tmp_path / "spool.sqlite")},
            "rules": {
                "client_id": f"ccr-{uuid.uuid4().hex[:8]}",
                "state_path": str(tmp_path / "rules.sqlite"),
                "spool_path": str(tmp_path / "rules-spool.sqlite"),
            },
            "notify": {"state_path": str(tmp_path / "notify.sqlite")},
            "api": {"listen": "127.0.0.1:0"},
        }
    )
    service = Service(settings, roles=("rules", "api"))
    assert service.rules is not None and service.http is not None

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("checkpoint broken")

    monkeypatch.setattr(service.rules, "_checkpoint", broken)
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(service.run()), daemon=True)
    runner.start()
    api = f"http://127.0.0.1:{service.http.port}"
    problems = wait_for(
        lambda: [p for p in httpx.get(api + "/readyz", timeout=2).json()["problems"] if "role rules" in p],
        10,
        "/readyz naming the rules role",
    )
    assert "checkpoint broken" in problems[0]
    metrics = httpx.get(api + "/metrics", timeout=2).text
    assert 'coldchain_role_errors_total{role="rules"}' in metrics
    runner.join(60)
    assert result == [EXIT_ROLE_DEAD]


def test_a_burst_of_readings_from_the_future_raises_clock_skew(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """Ten readings stamped an hour ahead (our clock behind the sensors'): rejected, and clock_skew opens."""
    world = AlertWorld(tmp_path, mosquitto, influxd)
    try:
        world.service.start()
        ahead = datetime.now(UTC) + timedelta(hours=1)
        for i in range(10):
            world.publisher_for().send(world.topic("t-001"), {"ts": iso(ahead + timedelta(seconds=i)), "celsius": 4.0})
        skew = world.wait_alert("clock_skew", "ts_in_future", "open", timeout=20)
        assert skew["severity"] == "warning" and "NTP" in skew["message"]
    finally:
        world.close()


def test_an_unreadable_outbox_and_spool_are_moved_aside_and_the_service_starts(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    """Garbage in the outbox and the spool files: both kept aside, a state_reset for each, and the service works."""
    world = AlertWorld(tmp_path, mosquitto, influxd)
    for name in ("notify.sqlite", "spool.sqlite"):
        (tmp_path / name).write_bytes(b"\x00garbage, not SQLite" * 64)
    try:
        world.service.start()
        outbox = world.wait_alert("state_reset", "outbox", "open", timeout=20)
        assert "Notices still pending in it were not sent" in outbox["message"]
        spool = world.wait_alert("state_reset", "spool", "open", timeout=20)
        assert "spool.sqlite.unreadable-" in spool["message"]
        for name in ("notify.sqlite", "spool.sqlite"):
            [kept] = tmp_path.glob(f"{name}.unreadable-*")
            assert kept.read_bytes().startswith(b"\x00garbage")
        world.publisher_for().send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": 4.0})
        wait_for(lambda: world.count() == 1, 20, "a reading stored after the reset")
    finally:
        world.close()


def test_a_freezing_alert_is_paged_once_even_while_the_outbox_disk_is_full(
    tmp_path: Path, small_disk: Path, mosquitto: Any, influxd: Any, hook: HTTPServer
) -> None:
    """Outbox on a full disk: the freezing page still reaches the webhook (sent from memory), exactly once,
    and is recorded as delivered once space returns, so it is never sent again."""
    world = AlertWorld(tmp_path, mosquitto, influxd, env=hook_env(hook.url_for("/hook")))
    text = world.config.read_text()
    for name in ("rules.sqlite", "notify.sqlite"):
        text = text.replace(str(tmp_path / name), str(small_disk / name))
    world.config.write_text(text + '\n[state]\nmin_free = "1kB"\n')
    try:
        world.service.start()
        filler = fill(small_disk, leave=8 * 1024)
        world.publisher_for().send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -1.0})
        pages = wait_for(lambda: [t for t in hook_titles(hook) if "Freezing" in t], 20, "the freezing page")
        assert len(pages) == 1
        wait_for(lambda: "DISK FULL" in world.service.log_tail(2000), 20, "DISK FULL in the log")
        filler.unlink()
        time.sleep(6)  # several ticks and notifier passes with the outbox writable again
        assert [t for t in hook_titles(hook) if "Freezing" in t] == pages
        wait_for(lambda: readiness(world)[0] == 200, 30, "/readyz 200 again")
    finally:
        world.close()
