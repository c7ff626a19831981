"""Ingest's stored batches handed to the rules role in the same process: one MQTT session, not two.

When one process runs both roles (``coldchain run``) and ingest receives every message (no
``mqtt.shared_group``, no ``rules.sites`` partition), a second session that receives and decodes
every message again only for the rules costs about half of the process's CPU at fleet size. So
ingest parses each message once and, once its batch is durable (in the store or the spool), puts
the messages with their parse results here instead of acking them; the rules worker judges them
and acks them **on ingest's session** after the checkpoint that covers them. A message is
therefore acked only when it is both stored and judged durably: after ``kill -9`` at any moment
the broker redelivers it to ingest, which stores it again (the same point, overwritten) and hands
it on again (judged again in event-time order: deterministic alert ids, no second episode).

How many messages wait in between is bounded by ingest's MQTT Receive Maximum: the broker stops
sending when that many await our ack.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from coldchain.adapters.mqtt import InboundMessage, MqttConnection
from coldchain.contract.parser import ParsedRecord
from coldchain.core.records import Rejection

T = TypeVar("T")


def take_waiting(source: queue.SimpleQueue[T], timeout: float, most: int | None = None) -> list[T]:
    """Wait up to ``timeout`` (0: not at all) for an item, then take whatever else is already waiting, at most
    ``most`` in all."""
    try:
        items = [source.get(timeout=timeout)]
    except queue.Empty:
        return []
    while most is None or len(items) < most:
        try:
            items.append(source.get_nowait())
        except queue.Empty:
            break
    return items


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message and what the parser made of it (its records, or the one rejection)."""

    message: InboundMessage
    parsed: list[ParsedRecord] | Rejection


class Feed:
    """Stored batches on their way from ingest to the rules worker, acked on ``connection`` (ingest's)."""

    def __init__(self, connection: MqttConnection, holding: Callable[[], bool]) -> None:
        self.connection = connection
        self._holding = holding
        """Whether ingest holds a batch not yet stored (its messages are no longer in the inbox)."""
        self._batches: queue.SimpleQueue[Sequence[ParsedMessage]] = queue.SimpleQueue()
        self._unacked = 0
        self._lock = threading.Lock()

    @property
    def unacked(self) -> int:
        """Messages handed over and not yet acked (or let go unacked, for redelivery) by the rules worker."""
        return self._unacked

    def put(self, batch: Sequence[ParsedMessage]) -> None:
        """Hand over a batch ingest made durable (ingest's thread)."""
        with self._lock:
            self._unacked += len(batch)
        self._batches.put(batch)

    def done(self, count: int) -> None:
        """``count`` handed-over messages were acked, or let go for redelivery (the worker's thread)."""
        with self._lock:
            self._unacked -= count

    def take(self, timeout: float) -> list[Sequence[ParsedMessage]]:
        """Wait up to ``timeout`` for a batch, then take every other batch already waiting (the worker's thread)."""
        return take_waiting(self._batches, timeout)

    def drained(self) -> bool:
        """The broker's backlog for ingest's session is read and judged: connected, nothing queued or in hand."""
        return self.connection.caught_up() and not self._holding() and self._batches.empty()
