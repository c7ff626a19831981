"""The contract's MQTT topics (CONTRACT §2, §4), built and parsed in one place; pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

InputKind = Literal["temperature", "shake", "bag"]
MAX_ID_LENGTH = 64
"""The longest bag (or scanner) id a topic level may carry."""


def id_problem(ident: str, what: str = "bag id") -> str | None:
    """Why ``ident`` cannot be one topic level (``/``, ``+``, ``#``, NUL, empty, over 64 characters), or None."""
    if not ident:
        return f"{what} is empty"
    if len(ident) > MAX_ID_LENGTH:
        return f"{what} is {len(ident)} characters; the limit is {MAX_ID_LENGTH}"
    bad = sorted({c for c in ident if c in "/+#\x00"})
    if bad:
        return f"{what} {ident[:80]!r} contains {' '.join(repr(c) for c in bad)}, which a topic level cannot hold"
    return None


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT topic filter ``pattern`` (``+`` one level, ``#`` the rest)."""
    want, have = pattern.split("/"), topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or (level != "+" and level != have[index]):
            return False
    return len(want) == len(have)


@dataclass(frozen=True, slots=True)
class InputRoute:
    """What an inbound topic names: a sensor's readings of one kind, or a bag's events (with who sent them:
    ``scanner`` for ``<prefix>/scanners/<id>/bags/<bag>/events``, ``api`` for the service's own
    ``<prefix>/api/bags/<bag>/events``, neither for the unattributed ``<prefix>/bags/<bag>/events``)."""

    kind: InputKind
    ident: str
    scanner: str | None = None
    api: bool = False


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic under one ``mqtt.topic_prefix``."""

    prefix: str

    def sensor(self, sensor_id: str, kind: Literal["temperature", "shake"]) -> str:
        return f"{self.prefix}/sensors/{sensor_id}/{kind}"

    def bag_events(self, bag_id: str) -> str:
        return f"{self.prefix}/bags/{bag_id}/events"

    def scanner_bag_events(self, scanner_id: str, bag_id: str) -> str:
        return f"{self.prefix}/scanners/{scanner_id}/bags/{bag_id}/events"

    def api_bag_events(self, bag_id: str) -> str:
        """Where the API publishes (only the service's broker account may: deploy's ACL)."""
        return f"{self.prefix}/api/bags/{bag_id}/events"

    @property
    def audit_head(self) -> str:
        """The audit chain's anchored head (retained)."""
        return f"{self.prefix}/audit/head"

    def audit_head_of(self, chain: str) -> str:
        """The anchored head of ``chain``: ``audit_head``, or ``<prefix>/audit/head/<chain>`` for a partition's."""
        return f"{self.audit_head}/{chain}" if chain else self.audit_head

    def alert(self, kind: str, subject: str) -> str:
        return f"{self.prefix}/alerts/{kind}/{subject}"

    def status(self, client_id: str) -> str:
        """A coldchain connection's retained ``online`` / ``offline`` (its last will)."""
        return f"{self.prefix}/status/{client_id}"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The filters that carry inbound data (alerts, published by us, are not among them)."""
        return (
            f"{self.prefix}/sensors/+/+",
            f"{self.prefix}/bags/+/events",
            f"{self.prefix}/scanners/+/bags/+/events",
            f"{self.prefix}/api/bags/+/events",
        )

    @property
    def described(self) -> str:
        """The inbound topics, as an error message names them."""
        return (
            f"{self.prefix}/sensors/<id>/temperature|shake, {self.prefix}/bags/<id>/events"
            f" or {self.prefix}/scanners/<scanner>/bags/<id>/events"
        )

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
        scanner = len(levels) == 5 and levels[0] == "scanners" and levels[2] == "bags" and levels[4] == "events"
        if scanner and levels[1] and levels[3]:
            return InputRoute("bag", levels[3], scanner=levels[1])
        if len(levels) == 4 and levels[:2] == ["api", "bags"] and levels[3] == "events" and levels[2]:
            return InputRoute("bag", levels[2], api=True)
        return None
