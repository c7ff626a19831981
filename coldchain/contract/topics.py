"""The contract's MQTT topics (CONTRACT §2, §4), built and parsed in one place; pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputKind = Literal["temperature", "shake", "bag"]


@dataclass(frozen=True, slots=True)
class InputRoute:
    """What an inbound topic names: a sensor's readings of one kind, or a bag's events."""

    kind: InputKind
    ident: str


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic under one ``mqtt.topic_prefix``."""

    prefix: str

    def sensor(self, sensor_id: str, kind: Literal["temperature", "shake"]) -> str:
        return f"{self.prefix}/sensors/{sensor_id}/{kind}"

    def bag_events(self, bag_id: str) -> str:
        return f"{self.prefix}/bags/{bag_id}/events"

    def alert(self, kind: str, subject: str) -> str:
        return f"{self.prefix}/alerts/{kind}/{subject}"

    def status(self, client_id: str) -> str:
        """A coldchain connection's retained ``online`` / ``offline`` (its last will)."""
        return f"{self.prefix}/status/{client_id}"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The filters that carry inbound data (alerts, published by us, are not among them)."""
        return (f"{self.prefix}/sensors/+/+", f"{self.prefix}/bags/+/events")

    @property
    def described(self) -> str:
        """The inbound topics, as an error message names them."""
        return f"{self.prefix}/sensors/<id>/temperature|shake or {self.prefix}/bags/<id>/events"

    def route(self, topic: str) -> InputRoute | None:
        """What an inbound topic names, or None when it is none of ``inputs``."""
        head = self.prefix + "/"
        levels = topic[len(head) :].split("/") if topic.startswith(head) else []
        if len(levels) == 3 and levels[1]:
            if levels[0] == "sensors" and levels[2] == "temperature":
                return InputRoute("temperature", levels[1])
            if levels[0] == "sensors" and levels[2] == "shake":
                return InputRoute("shake", levels[1])
            if levels[0] == "bags" and levels[2] == "events":
                return InputRoute("bag", levels[1])
        return None
