"""Ingest end to end: real mosquitto, real influxd, ``coldchain ingest`` as a real process."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.publishing import Publisher, wait_for
from tests.service_process import ColdchainProcess, free_port
from tests.world import Scenario, gauge, iso

pytestmark = pytest.mark.integration


def test_readings_round_trip_with_tags_and_types(scenario: Scenario) -> None:
    """Readings, shake samples, array uploads and bag events land with the right tags and field types."""
    scenario.service.start()
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
    metrics = scenario.service.get("/metrics").text
    assert 'coldchain_records_stored_total{measurement="temperature"} 11.0' in metrics
    assert 'coldchain_sensor_seconds_since_last_reading{sensor="t-001"}' in metrics


def test_rejections_are_stored_with_reasons_and_ingest_goes_on(scenario: Scenario) -> None:
    """Every rejection class is stored in `rejected` with its reason; the next good reading is stored."""
    scenario.service.start()
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
        # over 64 KiB, under the broker's max_packet_size (a bigger publish is refused at the publisher)
        (scenario.topic("t-001"), b"[" + b" " * 66_000 + b"]", "payload_too_large"),
    ]
    for topic, payload, _ in bad:
        pub.send(topic, payload)
    pub.send(scenario.topic("t-001"), {"ts": iso(now), "celsius": 4.5})
    wait_for(lambda: scenario.count() == 1, 15, "the good reading after the bad ones")
    wait_for(lambda: scenario.count("rejected", "detail") == len(bad), 15, f"{len(bad)} rejections")
    rows = scenario.rows('SELECT * FROM "rejected"')
    stored = sorted(row["reason"] for row in rows)
    assert stored == sorted(reason for _, _, reason in bad)
    sent = {reason: payload for _, payload, reason in bad}
    for row in rows:
        assert row["detail"] and row["topic"].startswith(scenario.prefix)
        if row["reason"] == "payload_too_large":
            assert len(row["payload"]) == 64 * 1024  # kept up to the limit
        elif row["reason"] != "out_of_range":  # (two of those)
            raw = sent[row["reason"]]
            assert row["payload"].encode() == (raw if isinstance(raw, bytes) else json.dumps(raw).encode())
    assert scenario.service.process is not None and scenario.service.process.poll() is None
    metrics = scenario.service.get("/metrics").text
    assert 'coldchain_rejections_total{reason="out_of_range"} 2.0' in metrics
    logged = [e for e in scenario.service.log_entries() if e.get("message", "").startswith("rejected message")]
    assert len(logged) == len(bad)


def test_redelivered_reading_is_stored_once(scenario: Scenario) -> None:
    """The same reading delivered three times is one point (the sensor's ts is its identity)."""
    scenario.service.start()
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
    scenario.service.start()
    pub = scenario.publisher_for()
    stop = threading.Event()
    sent = [0]
    start = datetime.now(UTC) - timedelta(minutes=1)
    thread = threading.Thread(target=steady_stream, args=(pub, scenario.topic("t-001"), stop, start, sent))
    thread.start()
    try:
        wait_for(lambda: scenario.count() > 200, 20, "readings flowing")
        scenario.service.kill()
        wait_for(lambda: sent[0] > scenario.count() + 200, 20, "a backlog while ingest is dead")
        scenario.service.start()
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
        world.service.start()
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
            wait_for(
                lambda: "store unreachable" in world.service.get("/readyz").text, 15, "/readyz reporting the store"
            )
            assert world.service.get("/readyz").status_code == 503
            metrics = wait_for(
                lambda: gauge(world.service.get("/metrics").text, "coldchain_spool_depth_records") > 0,
                15,
                "records in the spool",
            )
            assert metrics
            time.sleep(max(0.0, 30 - (time.monotonic() - down_since)))  # the outage itself lasts 30 s
            influx.start()
            wait_for(lambda: world.count() > 0 and world.service.get("/readyz").status_code == 200, 60, "recovery")
        finally:
            stop.set()
            thread.join()
        wait_for(lambda: world.count() == sent[0], 60, f"all {sent[0]} readings stored after the outage")
        wait_for(
            lambda: gauge(world.service.get("/metrics").text, "coldchain_spool_depth_records") == 0, 15, "empty spool"
        )
    finally:
        world.close()


def test_full_spool_holds_acks_instead_of_dropping(tmp_path: Path, mosquitto: Any, fresh_influxd: Any) -> None:
    """With InfluxDB down and the spool at its cap, ingest stops acking; the broker keeps the rest."""
    influx = fresh_influxd()
    world = Scenario(tmp_path, mosquitto, influx, env={"COLDCHAIN_SPOOL__MAX_BYTES": "65536"})
    try:
        influx.stop()
        world.service.start()
        pub = world.publisher_for()
        start = datetime.now(UTC) - timedelta(hours=1)
        total = 3000  # about 3 x the spool's 64 KiB
        for i in range(total):
            reading = {"ts": iso(start + timedelta(seconds=i)), "celsius": 5.5, "seq": i}
            pub.send(world.topic("t-001"), reading, wait=i % 500 == 499)
        wait_for(lambda: "spool full" in world.service.get("/readyz").text, 30, "/readyz reporting the full spool")
        metrics = world.service.get("/metrics").text
        assert gauge(metrics, "coldchain_spool_full_total") > 0
        assert gauge(metrics, "coldchain_acks_pending") > 0
        assert any("SPOOL FULL" in str(e.get("message")) for e in world.service.log_entries())
        world.service.kill()  # even a crash while acks are held loses nothing
        influx.start()
        world.service.start()
        wait_for(lambda: world.count() == total, 60, f"all {total} readings once InfluxDB is back")
    finally:
        world.close()


def test_broker_restart_loses_nothing(tmp_path: Path, fresh_mosquitto: Any, influxd: Any) -> None:
    """The broker restarts mid-stream: ingest reconnects to its persistent session and nothing is lost."""
    broker = fresh_mosquitto()
    world = Scenario(tmp_path, broker, influxd)
    try:
        world.service.start()
        pub = world.publisher_for()
        now = datetime.now(UTC) - timedelta(minutes=5)
        for i in range(100):
            pub.send(world.topic("t-001"), {"ts": iso(now + timedelta(seconds=i)), "celsius": 5.0}, wait=False)
        wait_for(lambda: world.count() == 100, 20, "the first 100")
        world.service.kill()  # offline: the broker must queue for its persistent session...
        for i in range(100, 300):
            pub.send(world.topic("t-001"), {"ts": iso(now + timedelta(seconds=i)), "celsius": 5.0})
        pub.close()
        world.publisher = None
        broker.restart()  # ...and keep the queue across its own restart
        world.service.start()
        wait_for(lambda: world.count() == 300, 30, "the 200 queued during the restart")
        pub = world.publisher_for()
        for i in range(300, 350):
            pub.send(world.topic("t-001"), {"ts": iso(now + timedelta(seconds=i)), "celsius": 5.0})
        wait_for(lambda: world.count() == 350, 20, "readings after the restart")
    finally:
        world.close()


def test_sigterm_flushes_and_exits_cleanly(scenario: Scenario) -> None:
    """SIGTERM stops ingest with exit code 0 after storing what it had received."""
    scenario.service.start()
    pub = scenario.publisher_for()
    now = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(500):
        pub.send(scenario.topic("t-001"), {"ts": iso(now + timedelta(milliseconds=i)), "celsius": 5.0}, wait=False)
    pub.send(scenario.topic("t-002"), {"ts": iso(now), "celsius": 5.0})
    assert scenario.service.stop() == 0
    scenario.service.start()
    wait_for(lambda: scenario.count() == 501, 20, "all 501 readings")


def test_health_endpoints(scenario: Scenario) -> None:
    """/healthz answers while running; /readyz is 200 with broker and store up; /metrics is Prometheus text."""
    scenario.service.start()
    assert scenario.service.get("/healthz").status_code == 200
    wait_for(lambda: scenario.service.get("/readyz").status_code == 200, 15, "ready")
    text = scenario.service.get("/metrics").text
    assert 'coldchain_broker_connected{role="ingest"} 1.0' in text
    assert "coldchain_spool_depth_records 0.0" in text


def test_a_drained_backlog_is_not_redelivered(scenario: Scenario) -> None:
    """After ingest drains a large backlog and stops cleanly, the broker redelivers nothing: every ack arrived."""
    scenario.service.start()
    scenario.service.stop()
    pub = scenario.publisher_for()
    start = datetime.now(UTC) - timedelta(hours=2)
    total = 20_000  # more than a batch arrives before the SUBACK on a reconnect
    for i in range(total):
        reading = {"ts": iso(start + timedelta(milliseconds=300 * i)), "celsius": 5.0}
        pub.send(scenario.topic(("t-001", "t-002")[i % 2]), reading, wait=i % 2000 == 1999)
    scenario.service.start()
    wait_for(lambda: scenario.count() == total, 60, f"all {total} readings stored")
    assert scenario.service.stop() == 0
    scenario.service.start()
    pub.send(scenario.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": 4.0})  # queued after any redelivery
    wait_for(lambda: scenario.count() == total + 1, 20, "the marker reading")
    received = gauge(scenario.service.get("/metrics").text, "coldchain_messages_received_total")
    assert received == 1, f"{received - 1:.0f} messages were redelivered after a clean drain"


def test_shared_subscription_splits_the_load_between_replicas(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """Two ingest replicas in one shared group each take part of the stream; together they store all of it once."""
    world = Scenario(tmp_path, mosquitto, influxd, env={"COLDCHAIN_MQTT__SHARED_GROUP": "ingest"})
    second = ColdchainProcess(
        world.config,
        "ingest",
        env={
            "COLDCHAIN_MQTT__SHARED_GROUP": "ingest",
            "COLDCHAIN_MQTT__CLIENT_ID": f"replica-2-{world.prefix}",
            "COLDCHAIN_API__LISTEN": f"127.0.0.1:{free_port()}",
            "COLDCHAIN_SPOOL__PATH": str(tmp_path / "spool-2.sqlite"),
        },
    )
    second.api = "http://" + second.env["COLDCHAIN_API__LISTEN"]
    second.log_path = tmp_path / "coldchain-ingest-2.log"
    try:
        world.service.start()
        second.start()
        pub = world.publisher_for()
        start = datetime.now(UTC) - timedelta(hours=1)
        for i in range(1000):
            pub.send(
                world.topic("t-001"), {"ts": iso(start + timedelta(seconds=i)), "celsius": 5.0}, wait=i % 200 == 199
            )
        wait_for(lambda: world.count() == 1000, 30, "all 1000 readings")
        got = [gauge(p.get("/metrics").text, "coldchain_messages_received_total") for p in (world.service, second)]
        assert sum(got) == 1000 and min(got) > 0, got
    finally:
        second.kill()
        world.close()
