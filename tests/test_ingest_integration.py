"""Ingest end to end: real mosquitto, real influxd, ``coldchain ingest`` as a real process."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.publishing import Publisher, wait_for
from tests.service_process import ColdchainProcess, write_config

pytestmark = pytest.mark.integration


def influxql(url: str, database: str, query: str) -> list[dict[str, Any]]:
    """Rows of the first series of an InfluxQL query, as dicts."""
    response = httpx.get(f"{url}/query", params={"db": database, "q": query, "epoch": "ms"}, timeout=10)
    response.raise_for_status()
    result = response.json()["results"][0]
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            row.update(series.get("tags") or {})
            rows.append(row)
    return rows


def count(url: str, database: str, measurement: str, field: str) -> int:
    try:
        rows = influxql(url, database, f'SELECT count("{field}") FROM "{measurement}"')
    except httpx.HTTPError:
        return 0
    return int(rows[0]["count"]) if rows else 0


class Scenario:
    """One test's world: a topic prefix, a database, a config and the ingest process."""

    def __init__(self, tmp_path: Path, mqtt: Any, influx: Any, env: dict[str, str] | None = None) -> None:
        self.mqtt = mqtt
        self.influx = influx
        self.prefix = f"cc{uuid.uuid4().hex[:8]}"
        self.database = f"db_{uuid.uuid4().hex[:8]}"
        self.config = write_config(tmp_path, mqtt.url, influx.url, self.database, self.prefix)
        self.ingest = ColdchainProcess(self.config, "ingest", env)
        self.publisher: Publisher | None = None

    def publisher_for(self) -> Publisher:
        if self.publisher is None:
            self.publisher = Publisher("127.0.0.1", self.mqtt.port)
        return self.publisher

    def topic(self, sensor: str, kind: str = "temperature") -> str:
        return f"{self.prefix}/sensors/{sensor}/{kind}"

    def count(self, measurement: str = "temperature", field: str = "celsius") -> int:
        return count(self.influx.url, self.database, measurement, field)

    def rows(self, query: str) -> list[dict[str, Any]]:
        return influxql(self.influx.url, self.database, query)

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        self.ingest.kill()


@pytest.fixture
def scenario(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[Scenario]:
    world = Scenario(tmp_path, mosquitto, influxd)
    yield world
    world.close()


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def test_readings_round_trip_with_tags_and_types(scenario: Scenario) -> None:
    """Readings, shake samples, array uploads and bag events land with the right tags and field types."""
    scenario.ingest.start()
    pub = scenario.publisher_for()
    now = datetime.now(UTC).replace(microsecond=0)
    pub.send(scenario.topic("t-001"), {"ts": iso(now), "celsius": 4, "seq": 1031, "battery_pct": 88})
    upload = [{"ts": iso(now - timedelta(minutes=m)), "celsius": 5.0 + m / 10} for m in range(1, 11)]
    pub.send(scenario.topic("t-002"), upload)
    pub.send(scenario.topic("s-001", "shake"), {"ts": now.timestamp(), "peak_g": 0.04, "seq": 77})
    pub.send(
        f"{scenario.prefix}/bags/B-0042/events",
        {"ts": iso(now), "event": "diluted", "unit": "fridge-a", "lot": "L123", "by": "j.doe"},
    )
    wait_for(lambda: scenario.count() == 11, 15, "11 temperature points")
    wait_for(lambda: scenario.count("shake", "peak_g") == 1, 15, "the shake point")
    wait_for(lambda: scenario.count("bag_event", "event") == 1, 15, "the bag event")

    first = scenario.rows('SELECT * FROM "temperature" WHERE "sensor" = \'t-001\'')
    assert first == [
        {
            "time": int(now.timestamp() * 1000),
            "battery_pct": 88,
            "celsius": 4,
            "seq": 1031,
            "sensor": "t-001",
            "site": "main-pharmacy",
            "unit": "fridge-a",
        }
    ]
    types = {row["fieldKey"]: row["fieldType"] for row in scenario.rows('SHOW FIELD KEYS FROM "temperature"')}
    assert types == {"battery_pct": "float", "celsius": "float", "seq": "integer"}
    tags = {row["tagKey"] for row in scenario.rows('SHOW TAG KEYS FROM "temperature"')}
    assert tags == {"site", "unit", "sensor"}
    bag = scenario.rows('SELECT * FROM "bag_event"')[0]
    assert (bag["bag"], bag["event"], bag["unit"], bag["product"], bag["lot"], bag["by"]) == (
        "B-0042",
        "diluted",
        "fridge-a",
        "natalizumab",
        "L123",
        "j.doe",
    )
    metrics = scenario.ingest.get("/metrics").text
    assert 'coldchain_records_stored_total{measurement="temperature"} 11.0' in metrics
    assert 'coldchain_sensor_seconds_since_last_reading{sensor="t-001"}' in metrics


def test_rejections_are_stored_with_reasons_and_ingest_goes_on(scenario: Scenario) -> None:
    """Every rejection class is stored in `rejected` with its reason; the next good reading is stored."""
    scenario.ingest.start()
    pub = scenario.publisher_for()
    now = datetime.now(UTC).replace(microsecond=0)
    bad: list[tuple[str, object, str]] = [
        (scenario.topic("t-001"), b"{not json", "invalid_json"),
        (scenario.topic("t-001"), {"ts": iso(now), "celsius": "warm"}, "invalid_schema"),
        (scenario.topic("t-001"), b'{"ts": 1, "celsius": NaN}', "not_finite"),
        (scenario.topic("t-001"), {"ts": iso(now), "celsius": 150.0}, "out_of_range"),
        (scenario.topic("s-001", "shake"), {"ts": iso(now), "peak_g": -1.0}, "out_of_range"),
        (scenario.topic("t-001"), {"ts": iso(now + timedelta(minutes=6)), "celsius": 4.0}, "ts_in_future"),
        (scenario.topic("t-001"), {"ts": iso(now - timedelta(days=31)), "celsius": 4.0}, "ts_too_old"),
        (scenario.topic("t-999"), {"ts": iso(now), "celsius": 4.0}, "unknown_sensor"),
        (scenario.topic("t-001", "shake"), {"ts": iso(now), "peak_g": 0.1}, "wrong_kind"),
        (scenario.topic("t-001"), b"[" + b" " * 70_000 + b"]", "payload_too_large"),
    ]
    for topic, payload, _ in bad:
        pub.send(topic, payload)
    pub.send(scenario.topic("t-001"), {"ts": iso(now), "celsius": 4.5})
    wait_for(lambda: scenario.count() == 1, 15, "the good reading after the bad ones")
    wait_for(lambda: scenario.count("rejected", "detail") == len(bad), 15, f"{len(bad)} rejections")
    rows = scenario.rows('SELECT * FROM "rejected"')
    stored = sorted(row["reason"] for row in rows)
    assert stored == sorted(reason for _, _, reason in bad)
    for row in rows:
        assert row["detail"] and row["topic"].startswith(scenario.prefix)
        assert len(row["payload"].encode()) <= 1024 * 3  # 1 KiB of bytes, decoded
    assert scenario.ingest.process is not None and scenario.ingest.process.poll() is None
    metrics = scenario.ingest.get("/metrics").text
    assert 'coldchain_rejections_total{reason="out_of_range"} 2.0' in metrics
    logged = [e for e in scenario.ingest.log_entries() if e.get("message", "").startswith("rejected message")]
    assert len(logged) == len(bad)


def test_redelivered_reading_is_stored_once(scenario: Scenario) -> None:
    """The same reading delivered three times is one point (the sensor's ts is its identity)."""
    scenario.ingest.start()
    pub = scenario.publisher_for()
    reading = {"ts": iso(datetime.now(UTC)), "celsius": 6.25, "seq": 9}
    for _ in range(3):
        pub.send(scenario.topic("t-001"), reading)
    pub.send(scenario.topic("t-002"), reading)  # a marker: once it is stored, the three are too
    wait_for(lambda: scenario.count() >= 2, 15, "the readings")
    assert scenario.count() == 2


def steady_stream(
    pub: Publisher, topic: str, stop: threading.Event, start: datetime, sent: list[int], period: float = 0.002
) -> None:
    """Publish a reading every ``period`` with unique 1 ms-spaced timestamps; ``sent`` counts PUBACKs."""
    index = 0
    while not stop.is_set():
        ts = start + timedelta(milliseconds=index)
        info = pub.send(topic, {"ts": iso(ts), "celsius": 4.0 + (index % 40) / 10, "seq": index}, wait=False)
        info.wait_for_publish(30)
        if info.is_published():
            sent[0] += 1
        index += 1
        time.sleep(period)


def test_kill_9_loses_nothing_the_broker_acknowledged(scenario: Scenario) -> None:
    """kill -9 of ingest under a steady stream: after restart every PUBACKed reading is stored, exactly."""
    scenario.ingest.start()
    pub = scenario.publisher_for()
    stop = threading.Event()
    sent = [0]
    start = datetime.now(UTC) - timedelta(minutes=1)
    thread = threading.Thread(target=steady_stream, args=(pub, scenario.topic("t-001"), stop, start, sent))
    thread.start()
    try:
        wait_for(lambda: scenario.count() > 200, 20, "readings flowing")
        scenario.ingest.kill()
        wait_for(lambda: sent[0] > scenario.count() + 200, 20, "a backlog while ingest is dead")
        scenario.ingest.start()
        wait_for(lambda: scenario.count() > sent[0] - 50, 30, "ingest catching up")
    finally:
        stop.set()
        thread.join()
    wait_for(lambda: scenario.count() == sent[0], 30, f"all {sent[0]} acknowledged readings stored")
    assert scenario.count() == sent[0]


def test_influxdb_down_30s_then_everything_is_stored(tmp_path: Path, mosquitto: Any, fresh_influxd: Any) -> None:
    """InfluxDB stopped for 30 s under a steady stream: the spool holds it, and all of it lands later."""
    influx = fresh_influxd()
    world = Scenario(tmp_path, mosquitto, influx)
    try:
        world.ingest.start()
        pub = world.publisher_for()
        stop = threading.Event()
        sent = [0]
        start = datetime.now(UTC) - timedelta(minutes=2)
        thread = threading.Thread(target=steady_stream, args=(pub, world.topic("t-001"), stop, start, sent, 0.01))
        thread.start()
        try:
            wait_for(lambda: world.count() > 50, 20, "readings flowing")
            influx.stop()
            down_since = time.monotonic()
            wait_for(lambda: "store unreachable" in world.ingest.get("/readyz").text, 15, "/readyz reporting the store")
            assert world.ingest.get("/readyz").status_code == 503
            metrics = wait_for(
                lambda: _gauge(world.ingest.get("/metrics").text, "coldchain_spool_depth_records") > 0,
                15,
                "records in the spool",
            )
            assert metrics
            time.sleep(max(0.0, 30 - (time.monotonic() - down_since)))  # the outage itself lasts 30 s
            influx.start()
            wait_for(lambda: world.count() > 0 and world.ingest.get("/readyz").status_code == 200, 60, "recovery")
        finally:
            stop.set()
            thread.join()
        wait_for(lambda: world.count() == sent[0], 60, f"all {sent[0]} readings stored after the outage")
        wait_for(
            lambda: _gauge(world.ingest.get("/metrics").text, "coldchain_spool_depth_records") == 0, 15, "empty spool"
        )
    finally:
        world.close()


def test_full_spool_holds_acks_instead_of_dropping(tmp_path: Path, mosquitto: Any, fresh_influxd: Any) -> None:
    """With InfluxDB down and the spool at its cap, ingest stops acking; the broker keeps the rest."""
    influx = fresh_influxd()
    world = Scenario(tmp_path, mosquitto, influx, env={"COLDCHAIN_SPOOL__MAX_BYTES": "65536"})
    try:
        influx.stop()
        world.ingest.start()
        pub = world.publisher_for()
        start = datetime.now(UTC) - timedelta(hours=1)
        total = 3000  # about 3 x the spool's 64 KiB
        for i in range(total):
            reading = {"ts": iso(start + timedelta(seconds=i)), "celsius": 5.5, "seq": i}
            pub.send(world.topic("t-001"), reading, wait=i % 500 == 499)
        wait_for(lambda: "spool full" in world.ingest.get("/readyz").text, 30, "/readyz reporting the full spool")
        metrics = world.ingest.get("/metrics").text
        assert _gauge(metrics, "coldchain_spool_full_total") > 0
        assert _gauge(metrics, "coldchain_acks_pending") > 0
        assert any("SPOOL FULL" in str(e.get("message")) for e in world.ingest.log_entries())
        world.ingest.kill()  # even a crash while acks are held loses nothing
        influx.start()
        world.ingest.start()
        wait_for(lambda: world.count() == total, 60, f"all {total} readings once InfluxDB is back")
    finally:
        world.close()


def test_broker_restart_loses_nothing(tmp_path: Path, fresh_mosquitto: Any, influxd: Any) -> None:
    """The broker restarts mid-stream: ingest reconnects to its persistent session and nothing is lost."""
    broker = fresh_mosquitto()
    world = Scenario(tmp_path, broker, influxd)
    try:
        world.ingest.start()
        pub = world.publisher_for()
        now = datetime.now(UTC) - timedelta(minutes=5)
        for i in range(100):
            pub.send(world.topic("t-001"), {"ts": iso(now + timedelta(seconds=i)), "celsius": 5.0}, wait=False)
        wait_for(lambda: world.count() == 100, 20, "the first 100")
        world.ingest.kill()  # offline: the broker must queue for its persistent session...
        for i in range(100, 300):
            pub.send(world.topic("t-001"), {"ts": iso(now + timedelta(seconds=i)), "celsius": 5.0})
        pub.close()
        world.publisher = None
        broker.restart()  # ...and keep the queue across its own restart
        world.ingest.start()
        wait_for(lambda: world.count() == 300, 30, "the 200 queued during the restart")
        pub = world.publisher_for()
        for i in range(300, 350):
            pub.send(world.topic("t-001"), {"ts": iso(now + timedelta(seconds=i)), "celsius": 5.0})
        wait_for(lambda: world.count() == 350, 20, "readings after the restart")
    finally:
        world.close()


def test_sigterm_flushes_and_exits_cleanly(scenario: Scenario) -> None:
    """SIGTERM stops ingest with exit code 0 after storing what it had received."""
    scenario.ingest.start()
    pub = scenario.publisher_for()
    now = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(500):
        pub.send(scenario.topic("t-001"), {"ts": iso(now + timedelta(milliseconds=i)), "celsius": 5.0}, wait=False)
    pub.send(scenario.topic("t-002"), {"ts": iso(now), "celsius": 5.0})
    assert scenario.ingest.stop() == 0
    scenario.ingest.start()
    wait_for(lambda: scenario.count() == 501, 20, "all 501 readings")


def test_health_endpoints(scenario: Scenario) -> None:
    """/healthz answers while running; /readyz is 200 with broker and store up; /metrics is Prometheus text."""
    scenario.ingest.start()
    assert scenario.ingest.get("/healthz").status_code == 200
    wait_for(lambda: scenario.ingest.get("/readyz").status_code == 200, 15, "ready")
    text = scenario.ingest.get("/metrics").text
    assert 'coldchain_broker_connected{role="ingest"} 1.0' in text
    assert "coldchain_spool_depth_records 0.0" in text


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
