"""The embedded broker (amqtt in-process): plain paho clients, persistent sessions, ingest through it."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from coldchain.adapters.broker import BrokerError, EmbeddedBroker
from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.config import Settings
from coldchain.roles.service import Service
from tests.publishing import Inbox, Received, wait_for
from tests.servers import free_ports
from tests.world import iso

pytestmark = pytest.mark.integration


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    """An embedded broker on a free port."""
    with EmbeddedBroker("127.0.0.1", free_ports(1)[0]) as running:
        yield running


class Client:
    """A plain paho MQTT 3.1.1 client that keeps what it receives."""

    def __init__(self, port: int, client_id: str | None = None, clean_session: bool = True) -> None:
        self.inbox = Inbox()
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
            clean_session=clean_session,
        )
        self.client.on_message = self.inbox.on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_connect = lambda *args: self.connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"

    def received(self) -> list[Received]:
        return self.inbox.snapshot()

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), "no PUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_plain_paho_client_publishes_and_subscribes(broker: EmbeddedBroker) -> None:
    """QoS-1 messages reach a subscriber; a retained message reaches a later one."""
    sub, pub = Client(broker.port), Client(broker.port)
    try:
        sub.subscribe("cc/#")
        for i in range(20):
            pub.publish(f"cc/sensors/t-{i}/temperature", f"{i}".encode())
        pub.publish("cc/alerts/freezing/t-1", b'{"state":"open"}', retain=True)
        wait_for(lambda: len(sub.received()) == 21, 10, "21 messages")
        assert [payload for _, payload, _ in sub.received()[:20]] == [f"{i}".encode() for i in range(20)]
        late = Client(broker.port)
        late.subscribe("cc/alerts/#")
        wait_for(late.received, 10, "the retained alert")
        # amqtt 0.12 may send it twice (at connect, for another client's matching filter, and at SUBACK)
        assert set(late.received()) == {("cc/alerts/freezing/t-1", b'{"state":"open"}', True)}
        late.close()
    finally:
        sub.close()
        pub.close()


def test_a_persistent_session_gets_what_was_published_while_away(broker: EmbeddedBroker) -> None:
    """A client with clean_session=False that reconnects receives the QoS-1 messages queued meanwhile."""
    sub = Client(broker.port, client_id="ingest-like", clean_session=False)
    sub.subscribe("cc/#")
    sub.close()
    pub = Client(broker.port)
    for i in range(5):
        pub.publish("cc/x", f"away-{i}".encode())
    pub.close()
    back = Client(broker.port, client_id="ingest-like", clean_session=False)
    try:
        wait_for(lambda: len(back.received()) == 5, 10, "the 5 queued messages")
        assert [payload for _, payload, _ in back.received()] == [f"away-{i}".encode() for i in range(5)]
    finally:
        back.close()


def test_an_mqtt5_client_is_refused(broker: EmbeddedBroker) -> None:
    """amqtt speaks MQTT 3.1.1 only: an MQTT 5 CONNECT gets no successful CONNACK (this pins the limitation)."""
    answers: list[Any] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="v5", protocol=paho.MQTTv5)
    client.on_connect = lambda c, u, flags, reason, props: answers.append(reason)
    client.on_disconnect = lambda *args: answers.append("disconnected")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        wait_for(lambda: answers, 10, "an answer to the MQTT 5 CONNECT")
        assert all(answer == "disconnected" or answer.is_failure for answer in answers)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_taken_port_is_a_broker_error() -> None:
    """Starting on a port another socket holds raises BrokerError naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BrokerError, match=f"127.0.0.1:{port}"):
            EmbeddedBroker("127.0.0.1", port).start()


def test_ingest_through_the_embedded_broker_stores_readings_in_sqlite(tmp_path: Path) -> None:
    """``embedded://`` + ``sqlite:///``: the service starts the broker, a sensor publishes, the readings are stored."""
    (port,) = free_ports(1)
    db = tmp_path / "coldchain.db"
    settings = Settings(
        mqtt={"url": f"embedded://127.0.0.1:{port}", "topic_prefix": "cc"},
        store={"url": f"sqlite:///{db}"},
        spool={"path": tmp_path / "spool.sqlite"},
        units=[{"id": "fridge-a", "site": "main"}],
        sensors=[{"id": "t-001", "unit": "fridge-a", "kind": "temperature"}],
    )
    service = Service(settings, roles=("ingest",))
    service.start()
    sensor: Client | None = None
    try:
        assert service.ingest is not None
        wait_for(service.ingest.connection.connected.is_set, 15, "ingest subscribed to the embedded broker")
        sensor = Client(port)
        now = datetime.now(UTC).replace(microsecond=0)
        for i in range(10):
            body = {"ts": iso(now - timedelta(minutes=10 - i)), "celsius": 4.0 + i / 10, "seq": i}
            sensor.publish("cc/sensors/t-001/temperature", json.dumps(body).encode())
        store = SqliteStore(db)
        rows = wait_for(
            lambda: (r := list(store.read_range("temperature", now - timedelta(hours=1), now))) and len(r) == 10 and r,
            15,
            "10 stored readings",
        )
        assert [row["seq"] for row in rows] == list(range(10))
        assert rows[0] | {"time": None} == {
            "time": None,
            "sensor": "t-001",
            "site": "main",
            "unit": "fridge-a",
            "celsius": 4.0,
            "seq": 0,
        }
        store.close()
    finally:
        if sensor is not None:
            sensor.close()
        service.stop()
