"""Ingest: MQTT in -> validated records -> durable storage -> ack.

One pipeline thread takes messages from the MQTT edge's inbox, parses them (``messages.py``),
gathers their records into a batch and hands the batch to the ``DurableWriter``. Only when the
writer returns (records in InfluxDB or in the on-disk spool) are the batch's messages acked, so a
reading the broker delivered is never lost to a crash: unacked messages are redelivered, and
redelivery overwrites the same points (series + sensor timestamp) instead of duplicating them.

How many messages may be unacked at once is bounded by the MQTT 5 Receive Maximum we announce
(``mqtt.receive_maximum``): the broker stops sending when that many await our ack.

With a ``feed`` (``coldchain run``: the rules role in the same process, ``feed.py``) a durable batch
is not acked here: its messages and their parse results go to the rules worker, which acks them on
this session after the checkpoint that covers them.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from coldchain import __version__
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.mqtt import InboundMessage, MqttConnection
from coldchain.adapters.store.durable import DurableWriter, WriterStopped
from coldchain.config import Settings
from coldchain.contract.parser import MessageParser
from coldchain.contract.status import Status
from coldchain.contract.topics import Topics
from coldchain.core.records import BagEvent, Record, Rejection, RejectReason, ShakeReading, TemperatureReading
from coldchain.core.times import from_millis, to_millis
from coldchain.roles.connected_loop import ConnectedLoop
from coldchain.roles.fact_guard import FactGuard
from coldchain.roles.feed import Feed, ParsedMessage
from coldchain.roles.rollup_keeper import RollupKeeper

log = logging.getLogger("coldchain.ingest")


class Ingest(ConnectedLoop):
    """The ingest role: owns its MQTT connection (client id ``mqtt.client_id``) and its pipeline thread."""

    role = "ingest"

    def __init__(self, settings: Settings, writer: DurableWriter, metrics: Metrics) -> None:
        super().__init__()
        self.settings = settings
        self.parser = MessageParser(settings)
        self.writer = writer
        self.metrics = metrics
        self.batch_size = settings.influx.batch_size
        self.linger = settings.influx.linger.total_seconds()
        self.connection = MqttConnection(
            settings.mqtt,
            client_id=settings.mqtt.client_id,
            subscriptions=self.parser.subscriptions,
            shared=True,  # replicas split the messages (mqtt.shared_group)
            on_connected=lambda up: metrics.broker_connected.labels("ingest").set(1 if up else 0),
            status=Status("ingest", settings.mqtt.client_id, __version__, datetime.now(UTC)),
        )
        self._records: list[Record] = []
        self._messages: list[InboundMessage] = []
        self._batch_started = 0.0
        self._last_rejection_ms = 0
        self.guard = FactGuard(writer.store, Topics(settings.mqtt.topic_prefix))
        metrics.fact_checks_skipped.set_function(lambda: self.guard.skipped)
        self.heartbeat: Callable[[], None] = lambda: None
        """Beaten on every turn of the pipeline (set by the service's supervisor)."""
        self.rollups: RollupKeeper | None = None
        """Told of every batch once it is durable (set by the service when ``rollups.enabled``)."""
        self.feed: Feed | None = None
        """Where durable batches go to be judged and acked (set by the service); None: acked here."""
        self._parsed: list[ParsedMessage] = []
        # in hand, plus what waits for the rules worker's checkpoint when it acks for us
        metrics.acks_pending.set_function(lambda: len(self._messages) + (self.feed.unacked if self.feed else 0))

    def holding(self) -> bool:
        """Whether a batch is in hand, taken from the inbox but not yet stored (read from other threads)."""
        return bool(self._messages)

    # -- the pipeline ----------------------------------------------------------------------

    def _run(self) -> None:
        """The pipeline; supervised, so it is entered again (the batch in hand kept) after an exception."""
        inbox = self.connection.inbox
        while not self._stopping.is_set():
            self.heartbeat()
            timeout = self._time_left()
            try:
                message = inbox.get(timeout=timeout)
            except queue.Empty:
                self._flush()
                continue
            self._take(message)
            # drain what is already waiting without blocking, up to a batch
            while len(self._records) < self.batch_size:
                try:
                    self._take(inbox.get_nowait())
                except queue.Empty:
                    break
            if len(self._records) >= self.batch_size or self._time_left() <= 0:
                self._flush()
        self._flush()

    def _time_left(self) -> float:
        if not self._messages:
            return 0.5
        return max(0.0, self._batch_started + self.linger - time.monotonic())

    def _take(self, message: InboundMessage) -> None:
        self.metrics.messages_received.inc()
        if not self._messages:
            self._batch_started = time.monotonic()
        self._messages.append(message)
        parsed = self.parser.parse(message.topic, message.payload, message.received_at)
        if self.feed is not None:  # the rules judge what the parser made of it, as their own session would
            self._parsed.append(ParsedMessage(message, parsed))
        if not isinstance(parsed, Rejection):
            events = [record for record in parsed if type(record) is BagEvent]
            why = self.guard.bag_message(events) if events else None
            if why is not None:
                parsed = Rejection(
                    RejectReason.INVALID_SEQUENCE, message.topic, why, bytes(message.payload), message.received_at
                )
        if isinstance(parsed, Rejection):
            parsed = self._unique_time(parsed)
            self._reject(parsed)
            self._records.append(parsed)
        else:
            self._records.extend(parsed)

    def _unique_time(self, rejection: Rejection) -> Rejection:
        """Give each rejection its own millisecond: points with equal tags and time would overwrite."""
        millis = to_millis(rejection.received_at)
        if millis <= self._last_rejection_ms:
            millis = self._last_rejection_ms + 1
            rejection = replace(rejection, received_at=from_millis(millis))
        self._last_rejection_ms = millis
        return rejection

    def _reject(self, rejection: Rejection) -> None:
        self.metrics.rejections.labels(rejection.reason.value).inc()
        log.warning(
            "rejected message: %s",
            rejection.detail,
            extra={"reason": rejection.reason.value, "topic": rejection.topic},
        )

    def _screen(self, records: list[Record]) -> list[Record]:
        """The batch without facts that would rewrite stored ones: those become ``conflicting_reading``."""
        screened = self.guard.screen(records, messages_time(self._messages))
        if screened is records:
            return records
        out: list[Record] = []
        for before, after in zip(records, screened, strict=True):
            if after is not before and isinstance(after, Rejection):
                after = self._unique_time(after)
                self._reject(after)
            out.append(after)
        return out

    def _flush(self) -> None:
        if not self._messages:
            return
        records, messages = self._screen(self._records), self._messages
        try:
            self.writer.write(records)
        except WriterStopped:
            log.warning("stopped before %d messages were stored; the broker will redeliver them", len(messages))
            self._records, self._messages, self._parsed = [], [], []
            return
        for record in records:
            if isinstance(record, TemperatureReading | ShakeReading):
                self.metrics.saw_reading(record.sensor, record.ts.timestamp())
        if self.rollups is not None:
            self.rollups.observe(records)
        if self.feed is not None:
            self.feed.put(self._parsed)  # acked by the rules worker once judged durably
        else:
            for message in messages:
                self.connection.ack(message)
        self._records, self._messages, self._parsed = [], [], []


def messages_time(messages: list[InboundMessage]) -> datetime:
    """When the batch's newest message arrived (the time its rejections are stored at)."""
    return max(message.received_at for message in messages)
