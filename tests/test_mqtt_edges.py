"""The MQTT edge's limits and announcements, on a real mosquitto: Maximum Packet Size, retained inputs, status."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from coldchain.adapters.mqtt import MqttConnection
from coldchain.config import MqttConfig
from coldchain.contract.payloads import MAX_PACKET_BYTES, MAX_PAYLOAD_BYTES
from coldchain.contract.status import Status
from tests.publishing import wait_for
from tests.servers import Mosquitto
from tests.service_process import ColdchainProcess, write_config

pytestmark = pytest.mark.integration
TIMEOUT = 10.0


class Watcher:
    """A plain paho MQTT 5 client, as a siren or Home Assistant would be: what it got, and its CONNACK."""

    def __init__(self, port: int, *topics: str) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"w-{uuid.uuid4().hex[:8]}", protocol=5)
        self.messages: list[paho.MQTTMessage] = []
        self.connack: Any = None
        self.disconnected: list[ReasonCode] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_disconnect = lambda client, userdata, flags, reason, props: self.disconnected.append(reason)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, TIMEOUT, "CONNACK")
        if topics:
            self.client.subscribe([(topic, 1) for topic in topics])
            assert self._subscribed.wait(TIMEOUT)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        self.connack = properties

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def payloads(self, topic: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(m.payload) for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _connection(broker: Mosquitto, client_id: str, prefix: str, **options: Any) -> MqttConnection:
    config = MqttConfig(url=broker.url, topic_prefix=prefix, reconnect_max="1s")
    connection = MqttConnection(config, client_id, **options)
    connection.start()
    wait_for(connection.connected.is_set, TIMEOUT, f"{client_id} connected")
    return connection


def _drain(connection: MqttConnection) -> list[Any]:
    got = []
    while not connection.inbox.empty():
        message = connection.inbox.get()
        connection.ack(message)
        got.append(message)
    return got


def test_the_deploy_like_broker_announces_and_enforces_max_packet_size(mosquitto: Mosquitto) -> None:
    """The test broker (like deploy's) announces Maximum Packet Size and disconnects a publisher over it."""
    prefix = f"mp-{uuid.uuid4().hex[:6]}"
    publisher = Watcher(mosquitto.port)
    try:
        assert publisher.connack.MaximumPacketSize == MAX_PACKET_BYTES
        publisher.client.publish(f"{prefix}/sensors/t-1/temperature", b"x" * (MAX_PACKET_BYTES + 1), qos=1)
        wait_for(lambda: publisher.disconnected, TIMEOUT, "the broker to disconnect the oversized publisher")
    finally:
        publisher.close()


def test_coldchain_announces_max_packet_size_so_an_oversized_publish_never_reaches_it(
    fresh_mosquitto: Callable[..., Mosquitto],
) -> None:
    """On a broker with no limit, a 1 MB publish is not sent to coldchain; a payload just over 64 KiB is."""
    broker = fresh_mosquitto(max_packet_size=None)  # a stock broker: it takes anything
    prefix = f"mp-{uuid.uuid4().hex[:6]}"
    connection = _connection(broker, f"cc-{uuid.uuid4().hex[:8]}", prefix, subscriptions=[f"{prefix}/sensors/+/+"])
    publisher = Watcher(broker.port)
    try:
        topic = f"{prefix}/sensors/t-1/temperature"
        for payload in (b"x" * 1_000_000, b"y" * (MAX_PAYLOAD_BYTES + 10), b'{"marker": 1}'):
            publisher.client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
        got: list[Any] = []
        wait_for(
            lambda: got.extend(_drain(connection)) or any(m.payload == b'{"marker": 1}' for m in got),
            TIMEOUT,
            "the marker",
        )
        sizes = [len(m.payload) for m in got]
        assert sizes == [MAX_PAYLOAD_BYTES + 10, len(b'{"marker": 1}')]  # the 1 MB one was never sent to us
    finally:
        publisher.close()
        connection.stop()


def test_a_retained_input_is_delivered_once_not_again_on_reconnect(mosquitto: Mosquitto) -> None:
    """A retained reading reaches a new session once; reconnecting with the session kept does not replay it."""
    prefix = f"rh-{uuid.uuid4().hex[:6]}"
    topic = f"{prefix}/sensors/t-1/temperature"
    publisher = Watcher(mosquitto.port)
    publisher.client.publish(topic, b'{"retained": true}', qos=1, retain=True).wait_for_publish(TIMEOUT)
    client_id = f"cc-{uuid.uuid4().hex[:8]}"
    inputs = [f"{prefix}/sensors/+/+"]
    try:
        first = _connection(mosquitto, client_id, prefix, subscriptions=inputs)
        got = wait_for(lambda: _drain(first), TIMEOUT, "the retained reading on the first subscription")
        assert [m.retain for m in got] == [True]
        first.stop()  # the session (and its subscription) stays on the broker
        for round_ in range(2):
            again = _connection(mosquitto, client_id, prefix, subscriptions=inputs)
            marker = f'{{"marker": {round_}}}'.encode()
            publisher.client.publish(topic.replace("t-1", "t-2"), marker, qos=1).wait_for_publish(TIMEOUT)
            seen: list[Any] = []
            wait_for(lambda: seen.extend(_drain(again)) or any(m.payload == marker for m in seen), TIMEOUT, "marker")  # noqa: B023
            assert [m.payload for m in seen] == [marker], "the retained reading came again"
            again.stop()
    finally:
        publisher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(TIMEOUT)  # clear it
        publisher.close()


def test_status_is_online_while_connected_and_offline_after_a_clean_stop(mosquitto: Mosquitto) -> None:
    """A connection with a Status publishes retained online (version, start time) and offline when it stops."""
    prefix = f"st-{uuid.uuid4().hex[:6]}"
    client_id = f"cc-{uuid.uuid4().hex[:8]}"
    started = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)
    status = Status("ingest", client_id, "9.9.9", started)
    connection = _connection(mosquitto, client_id, prefix, status=status)
    topic = f"{prefix}/status/{client_id}"
    watcher = Watcher(mosquitto.port, f"{prefix}/status/#")
    try:
        online = wait_for(lambda: watcher.payloads(topic), TIMEOUT, "the retained online status")
        assert online[-1] == {
            "state": "online",
            "role": "ingest",
            "client_id": client_id,
            "version": "9.9.9",
            "started_at": "2026-12-01T21:00:00Z",
        }
        assert watcher.messages[-1].retain
        connection.stop()
        wait_for(lambda: watcher.payloads(topic)[-1]["state"] == "offline", TIMEOUT, "offline after stop")
        late = Watcher(mosquitto.port, f"{prefix}/status/#")  # someone who looks later sees it retained
        wait_for(lambda: late.payloads(topic), TIMEOUT, "the retained status")
        assert late.payloads(topic)[-1]["state"] == "offline"
        late.close()
    finally:
        watcher.close()


def test_a_killed_coldchain_is_announced_offline_by_its_last_will(mosquitto: Mosquitto, tmp_path) -> None:
    """coldchain run: both roles' status is online; after kill -9 the broker publishes each one's offline will."""
    prefix = f"will-{uuid.uuid4().hex[:6]}"
    config = write_config(
        tmp_path,
        mosquitto.url,
        "http://127.0.0.1:1",
        "unused",
        prefix,
        extra=f'[store]\nurl = "sqlite:///{tmp_path}/s.db"',
    )
    watcher = Watcher(mosquitto.port, f"{prefix}/status/#")
    service = ColdchainProcess(config, role="run").start()
    try:

        def states() -> dict[str, str]:
            return {m.topic.rsplit("/", 1)[1]: json.loads(m.payload)["state"] for m in list(watcher.messages)}

        online = wait_for(lambda: len(states()) == 2 and set(states().values()) == {"online"}, TIMEOUT, "both online")
        assert online
        roles = {json.loads(m.payload)["role"] for m in watcher.messages}
        assert roles == {"ingest", "rules"}
        service.kill()
        wait_for(lambda: set(states().values()) == {"offline"}, TIMEOUT, "both offline by their last wills")
        late = Watcher(mosquitto.port, f"{prefix}/status/#")  # a siren connecting later: the retained wills
        wait_for(lambda: len(late.messages) == 2, TIMEOUT, "both retained statuses")
        assert {json.loads(m.payload)["state"] for m in late.messages} == {"offline"}
        assert all(m.retain for m in late.messages)
        late.close()
    finally:
        service.kill()
        watcher.close()
