"""The MQTT edge: one paho-mqtt 2.x client with a persistent MQTT 5 session and manual acks.

With ``mqtt.url = "embedded://…"`` the broker is coldchain's own (``broker.py``), which speaks MQTT
3.1.1 only: the same client then connects with MQTT 3.1.1 and ``clean_session=False`` (the 3.1.1
persistent session). MQTT 5's session expiry and Receive Maximum do not exist there.

Every MQTT 5 connect announces a Maximum Packet Size (``MAX_PACKET_BYTES``), so the broker never
sends us a packet bigger than the payload limit allows; input topics are subscribed with Retain
Handling 1 (retained messages only for a new subscription), so a retained input is delivered once
when the session is created, not again on every reconnect. A connection given a ``Status``
announces itself retained on ``<prefix>/status/<client_id>``: ``online`` at each connect,
``offline`` at a clean stop and, as its last will, when it dies.

Callbacks only convert paho's message into our frozen ``InboundMessage`` and hand it over on a
queue; parsing, rules and storage happen elsewhere. Acks are explicit (``ack``) and only for the
connection the message arrived on: after a reconnect the broker redelivers whatever we had not
acked, so a stale ack is skipped rather than sent for a packet id the new session may reuse.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from coldchain.config import MqttConfig
from coldchain.contract.payloads import MAX_PACKET_BYTES
from coldchain.contract.status import Status
from coldchain.contract.topics import Topics

log = logging.getLogger("coldchain.mqtt")


class MqttError(Exception):
    """Base of the MQTT edge's errors."""


class PublishError(MqttError):
    """A publish could not be queued or was not acknowledged in time."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message as the rest of coldchain sees it; ``epoch`` names the connection it came on."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    dup: bool
    retain: bool
    received_at: datetime
    epoch: int


def new_client(
    config: MqttConfig, client_id: str, *, persistent: bool = False, manual_ack: bool = False
) -> paho.Client:
    """The one place a paho client is made: the protocol the broker speaks (MQTT 5, or 3.1.1 for the
    embedded broker, where ``clean_session=False`` keeps a persistent session), credentials and TLS."""
    v311 = config.embedded
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv311 if v311 else paho.MQTTv5,
        clean_session=(not persistent) if v311 else None,
        manual_ack=manual_ack,
    )
    if config.username:
        client.username_pw_set(config.username, config.password.get_secret_value() or None)
    if config.tls:
        client.tls_set_context(_tls_context(config))
    return client


def _tls_context(config: MqttConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(config.tls_ca_file) if config.tls_ca_file else None)
    if config.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_SUBSCRIBE_CHUNK = 500
"""Most topic filters in one SUBSCRIBE packet (500 filters of ~60 bytes stay far under MAX_PACKET_BYTES)."""


class MqttConnection:
    """A long-lived broker connection that reconnects by itself with backoff and never gives up."""

    def __init__(
        self,
        config: MqttConfig,
        client_id: str,
        subscriptions: Sequence[str] = (),
        inbox: queue.SimpleQueue[InboundMessage] | None = None,
        unsubscribe: Sequence[str] = (),
        shared: bool = False,
        on_connected: Callable[[bool], None] | None = None,
        status: Status | None = None,
    ) -> None:
        self.config = config
        self.status = status
        self.status_topic = Topics(config.topic_prefix).status(client_id)
        self.client_id = client_id
        self.subscriptions = tuple(
            f"$share/{config.shared_group}/{topic}" if shared and config.shared_group else topic
            for topic in subscriptions
        )
        """``shared`` (ingest replicas): through ``$share/<mqtt.shared_group>/`` when a group is configured."""
        self.unsubscribe = tuple(unsubscribe)
        """Filters a persistent session may hold from an earlier run that it must no longer receive."""
        # SimpleQueue: C-implemented, no per-put wake-up bookkeeping (about 5% of ingest CPU, measured)
        self.inbox: queue.SimpleQueue[InboundMessage] = inbox if inbox is not None else queue.SimpleQueue()
        self._on_connected = on_connected
        self._epoch = 0
        self._epoch_lock = threading.Lock()
        self.connected = threading.Event()
        """Set once connected *and* subscribed: what readiness reports."""
        self._link_up = False
        self._closing = False
        self._subacks_pending = 0
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        client = new_client(self.config, self.client_id, persistent=True, manual_ack=True)
        client.reconnect_delay_set(
            max(1, int(self.config.reconnect_min.total_seconds())),
            max(1, int(self.config.reconnect_max.total_seconds())),
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        if self.status is not None:
            # the broker publishes this when we vanish without a clean DISCONNECT (kill -9, network loss)
            client.will_set(self.status_topic, self.status.payload("offline"), qos=1, retain=True)
        return client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers) and keep the session."""
        if self.config.embedded:  # MQTT 3.1.1: no properties; the session is kept by clean_session=False
            self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive)
            self._client.loop_start()
            return
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = int(self.config.session_expiry.total_seconds())
        properties.ReceiveMaximum = self.config.receive_maximum
        # the broker must not send us more than a maximal payload with its topic (a 256 MB publish
        # would otherwise be held whole in memory before the 64 KiB check)
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        # clean_start=False on *every* connect: the default (first only) would wipe our session on restart
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect (keeping the session on the broker) and stop the network thread."""
        self._closing = True
        if self.status is not None and self._link_up:
            # a clean DISCONNECT discards the will: say "offline" ourselves
            info = self._client.publish(self.status_topic, self.status.payload("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline status: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    # -- callbacks: convert and hand over, nothing more -----------------------------------

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason, extra={"client_id": self.client_id})
            return
        with self._epoch_lock:
            self._epoch += 1
        self._link_up = True  # acks may flow from now on, even before the SUBACK
        session_present = bool(getattr(flags, "session_present", False))
        log.info(
            "connected to broker",
            extra={"client_id": self.client_id, "session_present": session_present, "broker": self.config.url},
        )
        if self.status is not None:
            client.publish(self.status_topic, self.status.payload("online"), qos=1, retain=True)
        if self.unsubscribe and session_present:  # what the session still queues is delivered, then nothing
            for i in range(0, len(self.unsubscribe), _SUBSCRIBE_CHUNK):
                client.unsubscribe(list(self.unsubscribe[i : i + _SUBSCRIBE_CHUNK]))
        if self.subscriptions:
            # "connected" only once the broker confirms the subscriptions: before that, messages could miss us.
            # A rules partition subscribes to each of its sensors' topics: in SUBSCRIBE packets of at most
            # _SUBSCRIBE_CHUNK filters, so none exceeds the broker's maximum packet size.
            options = self._subscribe_options()
            chunks = [options[i : i + _SUBSCRIBE_CHUNK] for i in range(0, len(options), _SUBSCRIBE_CHUNK)]
            self._subacks_pending = len(chunks)
            for chunk in chunks:
                client.subscribe(chunk)
        else:
            self._mark_connected()

    def _subscribe_options(self) -> list[tuple[str, Any]]:
        if self.config.embedded:  # MQTT 3.1.1: QoS only
            return [(topic, 1) for topic in self.subscriptions]
        # Retain Handling 1: retained messages only when the subscription is new (a new session), never
        # again on a reconnect that finds the session (and so the subscription) in place
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        return [(topic, options) for topic in self.subscriptions]

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        failed = [str(reason) for reason in reasons if reason.is_failure]
        if failed:
            log.error("broker refused our subscriptions %s: %s", self.subscriptions[:20], ", ".join(failed))
            return
        self._subacks_pending -= 1
        if self._subacks_pending <= 0:
            self._mark_connected()

    def _mark_connected(self) -> None:
        self.connected.set()
        if self._on_connected is not None:
            self._on_connected(True)

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self._link_up = False
        if self._closing:  # our own stop(): the broker's "reason" is meaningless here, nothing is wrong
            log.info("disconnected from broker", extra={"client_id": self.client_id})
        elif self.connected.is_set():
            log.warning("disconnected from broker: %s; reconnecting", reason, extra={"client_id": self.client_id})
        self.connected.clear()
        if self._on_connected is not None:
            self._on_connected(False)

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.inbox.put(
            InboundMessage(
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                mid=message.mid,
                dup=bool(message.dup),
                retain=bool(message.retain),
                received_at=datetime.now(UTC),
                epoch=self._epoch,
            )
        )

    def caught_up(self) -> bool:
        """Connected (and subscribed) with nothing waiting in the inbox: the session's backlog has been taken."""
        return self.connected.is_set() and self.inbox.empty()

    @property
    def epoch(self) -> int:
        """Which connection this is (counted from 1): a message is acked only on the connection it came on."""
        return self._epoch

    # -- outbound --------------------------------------------------------------------------

    def ack(self, message: InboundMessage) -> bool:
        """Acknowledge a QoS-1 message; False (and no ack) if it came on an earlier connection."""
        if message.qos == 0:
            return True
        if message.epoch != self._epoch or not self._link_up:
            return False
        return self._client.ack(message.mid, message.qos) == MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> Delivery:
        """Queue a message (sent now, or after a reconnect); the Delivery tells when the broker has it."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise PublishError(f"cannot publish to {topic}: {paho.error_string(info.rc)}")
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos > 0:
            # queued while disconnected: paho sends it, in order, on reconnect; "not yet", not "failed"
            # (with NO_CONN its is_published() would raise for ever, even after the PUBACK)
            info.rc = MQTTErrorCode.MQTT_ERR_AGAIN
        return Delivery(topic, info)


class Delivery:
    """An outbound message on its way; ``done`` once the broker acknowledged it (QoS 1)."""

    __slots__ = ("_info", "topic")

    def __init__(self, topic: str, info: paho.MQTTMessageInfo) -> None:
        self.topic = topic
        self._info = info

    def done(self) -> bool:
        return self._info.is_published()

    def wait(self, timeout: float) -> None:
        """Block until the broker has it; raise PublishError after ``timeout`` seconds."""
        try:
            self._info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"publish to {self.topic} failed: {exc}") from exc
        if not self._info.is_published():
            raise PublishError(f"broker did not acknowledge {self.topic} within {timeout}s")


def _connect_throwaway(client: paho.Client, config: MqttConfig) -> paho.Client:
    """Connect ``client`` with a clean session and start its network loop; MqttError if unreachable."""
    try:
        if config.embedded:  # MQTT 3.1.1: clean_session defaults to True
            client.connect(config.host, config.port, keepalive=config.keepalive)
        else:
            client.connect(config.host, config.port, keepalive=config.keepalive, clean_start=True)
    except OSError as exc:
        raise MqttError(f"cannot reach the broker at {config.url}: {exc}") from exc
    client.loop_start()
    return client


def publish_once(config: MqttConfig, topic: str, payload: bytes, *, timeout: float = 10.0) -> None:
    """Connect with a throwaway clean session, publish one QoS-1 message, wait for PUBACK, disconnect.

    For command-line tools (``coldchain bag …``). Raises MqttError when the broker cannot be reached
    or does not acknowledge within ``timeout``.
    """
    client = _connect_throwaway(new_client(config, f"coldchain-cli-{uuid.uuid4().hex[:10]}"), config)
    try:
        Delivery(topic, client.publish(topic, payload, qos=1)).wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()


def read_retained(config: MqttConfig, topic: str, *, timeout: float = 5.0) -> bytes | None:
    """The retained message of ``topic`` (None when there is none), with a throwaway clean session.

    The broker sends a subscription's retained message right after its SUBACK; a second subscription's
    SUBACK marks the point by which it has arrived, or never will. Raises MqttError when the broker
    cannot be reached or does not answer within ``timeout``.
    """
    client = new_client(config, f"coldchain-cli-{uuid.uuid4().hex[:10]}")
    found: list[bytes] = []
    acked: set[int] = set()
    answered = threading.Condition()
    marker = f"{topic}/.coldchain-marker-{uuid.uuid4().hex[:8]}"

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == topic and message.retain:
            found.append(bytes(message.payload))

    def on_subscribe(client: paho.Client, userdata: Any, mid: int, *rest: Any) -> None:
        with answered:
            acked.add(mid)
            answered.notify_all()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    _connect_throwaway(client, config)
    try:
        client.subscribe(topic, qos=1)
        mid = client.subscribe(marker, qos=1)[1]
        with answered:
            if not answered.wait_for(lambda: mid in acked, timeout):
                raise MqttError(f"the broker at {config.url} did not answer a subscription within {timeout:.0f}s")
    finally:
        client.disconnect()
        client.loop_stop()
    return found[-1] if found else None
