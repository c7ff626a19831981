"""The rules worker's alert publisher: every transition retained on its topic, stored, logged, counted.

Each state change goes out on ``<prefix>/alerts/<kind>/<subject>`` with QoS 1 and ``retain`` (the
retained message is the alert's current state) and into measurement ``alert``. The publisher keeps
the deliveries the broker has not confirmed yet: the worker checkpoints only once they are all
confirmed, so a snapshot never runs ahead of what subscribers can see.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.mqtt import Delivery, MqttConnection, PublishError
from coldchain.adapters.store.durable import DurableWriter
from coldchain.contract.topics import Topics
from coldchain.core.alert import Transition

log = logging.getLogger("coldchain.rules")


class AlertPublisher:
    """Publishes and stores alert transitions; tracks which publishes the broker has confirmed."""

    def __init__(self, connection: MqttConnection, writer: DurableWriter, metrics: Metrics, topics: Topics) -> None:
        self.connection = connection
        self.writer = writer
        self.metrics = metrics
        self.topics = topics
        self._unconfirmed: list[Delivery] = []

    def publish(self, transitions: Sequence[Transition]) -> None:
        for transition in transitions:
            alert = transition.alert
            payload = json.dumps(alert.to_payload(), ensure_ascii=False).encode()
            topic = self.topics.alert(alert.kind, alert.subject)
            self._unconfirmed.append(self.connection.publish(topic, payload, retain=True))
            self.metrics.alert_transitions.labels(alert.kind, transition.change).inc()
            level = logging.WARNING if transition.change == "opened" else logging.INFO
            log.log(
                level,
                "alert %s: %s",
                transition.change,
                alert.message,
                extra={"alert_id": alert.id, "kind": alert.kind, "subject": alert.subject, "state": alert.state},
            )
        self.writer.write([t.alert for t in transitions])

    def all_confirmed(self, wait: bool = False) -> bool:
        """Whether the broker confirmed every publish so far; ``wait`` gives them up to 5 s in all (stopping, acks).

        While the broker is unreachable the publishes wait in the client's queue, in order, and go out on
        reconnect; until then this is False and the worker holds its snapshot and acks.
        """
        if wait:
            deadline = time.monotonic() + 5.0
            for delivery in self._unconfirmed:
                try:
                    delivery.wait(max(0.1, deadline - time.monotonic()))
                except PublishError as exc:
                    log.warning("alert not confirmed by the broker yet: %s", exc)
                    return False
        self._unconfirmed = [d for d in self._unconfirmed if not d.done()]
        return not self._unconfirmed
