"""``coldchain run`` judges what ingest stored on ingest's one session (``roles/feed.py``), end to end.

Real mosquitto and influxd. The rules role no longer receives every message a second time: a message
is acked on ingest's session only once it is stored *and* the rules checkpoint covering it is durable,
so a crash in between loses nothing; shared ingest replicas still leave the rules their own session.
"""

from __future__ import annotations

import threading
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from coldchain.contract.topics import Topics
from coldchain.core.times import format_time
from tests.publishing import Collector, wait_for
from tests.service_process import ColdchainProcess, write_config
from tests.test_rules_integration import AlertWorld
from tests.world import gauge, iso

pytestmark = pytest.mark.integration

SLOW_CHECKPOINTS = {"COLDCHAIN_RULES__CHECKPOINT_EVERY": "1m"}
"""No checkpoint within a test's first minute (the first one falls due a minute after start)."""


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    w = AlertWorld(tmp_path, mosquitto, influxd, env=SLOW_CHECKPOINTS)
    yield w
    w.close()


def rules_client_id(config: Path) -> str:
    return str(tomllib.loads(config.read_text())["rules"]["client_id"])


def persistent_session(port: int, client_id: str) -> paho.Client:
    """A client on ``client_id``'s persistent session (kept for an hour after it disconnects)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    return client


def queued_for(port: int, client_id: str, marker_topic: str) -> list[str]:
    """The topics of the messages the broker holds queued for ``client_id``'s session (which it then delivers).

    The broker delivers a session's queue right after the CONNACK; a marker published to a filter
    subscribed afterwards arrives after all of them, so no blind wait is needed.
    """
    received: list[str] = []
    marker = threading.Event()

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == marker_topic:
            marker.set()
        else:
            received.append(message.topic)

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        client.subscribe(marker_topic, qos=1)[1]
        wait_for(lambda: client.publish(marker_topic, b"m", qos=1).wait_for_publish(5) or marker.wait(1), 15, "marker")
        client.unsubscribe(marker_topic)
    finally:
        client.disconnect()
        client.loop_stop()
    return received


def test_a_reading_stored_but_not_yet_checkpointed_is_judged_again_after_kill_9(world: AlertWorld) -> None:
    """kill -9 after ingest stored readings but before the rules checkpoint: the broker redelivers them and the
    excursion they began opens with its true start."""
    world.service.start()
    pub = world.publisher_for()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    for minute in range(3):  # above range for 2 minutes: pending (the delay is 15 min), no alert yet
        pub.send(world.topic("t-001"), {"ts": iso(start + timedelta(minutes=minute)), "celsius": 9.5})
    wait_for(lambda: world.count() == 3, 15, "the three readings stored")
    assert world.payloads("temperature_high", "t-001") == []
    # stored and judged, unacked until the rules checkpoint: what /metrics tells the operator
    assert gauge(world.service.get("/metrics").text, "coldchain_acks_pending") == 3
    world.service.kill()  # within the first minute: no rules checkpoint has covered them
    world.service.start()
    pub.send(world.topic("t-001"), {"ts": iso(start + timedelta(minutes=16)), "celsius": 9.6})
    opened = world.wait_alert("temperature_high", "t-001", "open", timeout=30)
    assert opened["started_at"] == format_time(start)  # judged from the redelivered first reading
    wait_for(lambda: world.count() == 4, 15, "the redelivered readings stored once more, not twice")


def test_the_rules_session_receives_no_inputs_and_drops_an_earlier_versions_subscriptions(
    world: AlertWorld, mosquitto: Any
) -> None:
    """What an earlier version's rules session had queued is judged once; after that the session queues nothing,
    and readings published while coldchain is down are judged from ingest's session after the restart."""
    rules = rules_client_id(world.config)
    earlier = persistent_session(mosquitto.port, rules)
    for topic in Topics(world.prefix).inputs:  # what the rules session subscribed to before this version
        earlier.subscribe(topic, qos=1)
    wait_for(lambda: earlier.is_connected(), 10, "the earlier session connected")
    earlier.disconnect()
    earlier.loop_stop()
    pub = world.publisher_for()
    frozen_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    pub.send(world.topic("t-001"), {"ts": iso(frozen_at), "celsius": -2.0})  # queued for the rules session only

    world.service.start()
    assert world.wait_alert("freezing", "t-001", "open")["started_at"] == format_time(frozen_at)
    assert world.service.stop() == 0

    pub.send(world.topic("t-002"), {"ts": iso(frozen_at + timedelta(seconds=30)), "celsius": -1.5})
    assert queued_for(mosquitto.port, rules, f"{world.prefix}/test-marker/{uuid.uuid4().hex[:6]}") == []
    world.service.start()
    assert world.wait_alert("freezing", "t-002", "open")["started_at"] == format_time(frozen_at + timedelta(seconds=30))
    assert [a["state"] for a in world.payloads("freezing", "t-001")] == ["open"]
    assert [a["state"] for a in world.payloads("freezing", "t-002")] == ["open"]


SIX_SENSORS = [(f"t-00{i}", "fridge-a" if i <= 3 else "fridge-b", "temperature") for i in range(1, 7)]


def test_with_shared_ingest_replicas_the_rules_still_judge_every_reading(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    """mqtt.shared_group: each ingest replica stores a share, yet every sensor's freezing alert opens (the rules
    role keeps a session of its own that receives every message)."""
    prefix, database = f"cc{uuid.uuid4().hex[:8]}", f"db_{uuid.uuid4().hex[:8]}"
    env = {"COLDCHAIN_MQTT__SHARED_GROUP": f"g{uuid.uuid4().hex[:6]}"}
    directories = [tmp_path / "run", tmp_path / "replica"]
    for directory in directories:
        directory.mkdir()
    configs = [write_config(d, mosquitto.url, influxd.url, database, prefix, sensors=SIX_SENSORS) for d in directories]
    run, replica = ColdchainProcess(configs[0], "run", env), ColdchainProcess(configs[1], "ingest", env)
    alerts = Collector("127.0.0.1", mosquitto.port, f"{prefix}/alerts/freezing/#")
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
    try:
        run.start()
        replica.start()
        pub.connect("127.0.0.1", mosquitto.port)
        pub.loop_start()
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        for sensor, _, _ in SIX_SENSORS:
            info = pub.publish(f"{prefix}/sensors/{sensor}/temperature", f'{{"ts": "{iso(at)}", "celsius": -2}}', qos=1)
            info.wait_for_publish(10)

        def frozen() -> set[str]:
            return {topic.rsplit("/", 1)[1] for topic, _, _ in alerts.snapshot()}

        wait_for(lambda: frozen() == {sensor for sensor, _, _ in SIX_SENSORS}, 30, "a freezing alert for every sensor")
        received = "coldchain_messages_received_total"
        shares = [gauge(process.get("/metrics").text, received) for process in (run, replica)]
        assert sum(shares) == 6 and min(shares) > 0, f"each ingested a share (else this shows nothing): {shares}"
    finally:
        pub.disconnect()
        pub.loop_stop()
        alerts.close()
        replica.kill()
        run.kill()


def test_a_rules_session_that_joined_ingests_share_group_leaves_it(world: AlertWorld, mosquitto: Any) -> None:
    """Earlier versions subscribed the rules session through ingest's $share group, which took readings away
    from ingest unstored: after the upgrade every reading is stored."""
    group = f"g{uuid.uuid4().hex[:6]}"
    earlier = persistent_session(mosquitto.port, rules_client_id(world.config))
    wait_for(lambda: earlier.is_connected(), 10, "the earlier session connected")
    for topic in Topics(world.prefix).inputs:
        earlier.subscribe(f"$share/{group}/{topic}", qos=1)
    earlier.disconnect()
    earlier.loop_stop()
    world.service.env["COLDCHAIN_MQTT__SHARED_GROUP"] = group
    world.service.start()
    pub = world.publisher_for()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    for i in range(6):
        pub.send(world.topic("t-001"), {"ts": iso(start + timedelta(seconds=i)), "celsius": 5.0})
    wait_for(lambda: world.count() == 6, 15, "all six readings stored by ingest")
