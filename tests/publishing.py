"""Test-side MQTT publisher and subscriber (plain paho), and a poll-with-deadline helper."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = condition()
    return last


class Publisher:
    """A sensor-like QoS-1 publisher that counts PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str | None = None) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"test-pub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self.acked += 1

    def send(self, topic: str, payload: object, wait: bool = True, retain: bool = False) -> paho.MQTTMessageInfo:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        info = self.client.publish(topic, raw, qos=1, retain=retain)
        if wait:
            info.wait_for_publish(10)
            assert info.is_published(), f"broker did not ack {topic}"
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


Received = tuple[str, bytes, bool]
"""A message as a test client keeps it: topic, payload, retain flag."""


class Inbox:
    """The messages a test client received, in order; ``on_message`` is its paho callback."""

    def __init__(self) -> None:
        self._messages: list[Received] = []
        self._lock = threading.Lock()

    def on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, message.payload, bool(message.retain)))

    def snapshot(self) -> list[Received]:
        """What arrived so far (paho's network thread may be adding to it meanwhile)."""
        with self._lock:
            return list(self._messages)


class Collector:
    """Subscribes and keeps every message it receives (for alert topics)."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.inbox = Inbox()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
        )
        self.client.on_message = self.inbox.on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self._subscribed.wait(10), "subscription not confirmed"

    def snapshot(self) -> list[Received]:
        return self.inbox.snapshot()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
