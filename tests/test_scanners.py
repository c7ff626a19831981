"""Bag events carry who sent them: a scanner by its topic (tied to its broker account), the API, or nobody."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from coldchain.config import Settings
from coldchain.contract.parser import MessageParser
from coldchain.contract.topics import Topics, id_problem
from coldchain.core.records import BagEvent, Rejection, RejectReason

NOW = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)
SETTINGS = Settings(
    units=[{"id": "fridge-a", "site": "main"}, {"id": "fridge-z", "site": "annex"}],
    sensors=[{"id": "t-001", "unit": "fridge-a", "kind": "temperature"}],
    scanners=[{"id": "scan-01", "site": "main"}],
    mqtt={"topic_prefix": "cc"},
)
PARSER = MessageParser(SETTINGS)
BODY = {"ts": "2026-11-30T02:00:00Z", "event": "diluted", "unit": "fridge-a", "by": "j.doe"}


@pytest.mark.parametrize(
    ("topic", "body", "outcome"),
    [
        ("cc/scanners/scan-01/bags/B1/events", BODY, "scanner:scan-01"),  # its own topic: attributed
        ("cc/bags/B1/events", BODY, "mqtt"),  # the old topic: unattributed
        ("cc/api/bags/B1/events", BODY, "api:j.doe"),  # the API (only the service may publish there)
        ("cc/scanners/scan-99/bags/B1/events", BODY, RejectReason.UNKNOWN_SCANNER),  # not in the inventory
        ("cc/scanners/scan-01/bags/B1/events", {**BODY, "unit": "fridge-z"}, RejectReason.UNKNOWN_UNIT),  # other site
        ("cc/scanners//bags/B1/events", BODY, RejectReason.UNKNOWN_TOPIC),  # an empty scanner level
    ],
)
def test_source_of_a_bag_event(topic: str, body: dict[str, str], outcome: object) -> None:
    """Each bag topic gives its source, or a rejection naming what is wrong."""
    result = PARSER.parse(topic, json.dumps(body).encode(), NOW)
    if isinstance(outcome, RejectReason):
        assert isinstance(result, Rejection) and result.reason == outcome, result
    else:
        assert isinstance(result, list) and isinstance(result[0], BagEvent)
        assert result[0].source == outcome


@pytest.mark.parametrize(
    ("bag", "ok"),
    [
        ("B-0042", True),
        ("B1/x", False),  # %2F decoded: would publish two levels
        ("B+1", False),  # a wildcard in a topic name
        ("B#1", False),
        ("", False),
        ("x" * 64, True),  # the limit
        ("x" * 65, False),
    ],
)
def test_bag_id_as_a_topic_level(bag: str, ok: bool) -> None:
    """A bag id must be one topic level of at most 64 characters (checked after URL decoding by the API)."""
    assert (id_problem(bag) is None) == ok


def test_scanner_ids_are_checked() -> None:
    """A scanner whose id is also a sensor's, or at a site no unit is at, is a configuration error naming it."""
    with pytest.raises(ValueError, match=r"scanners\[0\] \(id 't-001'\): also a sensor id"):
        Settings(units=SETTINGS.units, sensors=SETTINGS.sensors, scanners=[{"id": "t-001", "site": "main"}])
    with pytest.raises(ValueError, match=r"scanners\[0\] \(id 'scan-02'\)\.site: no unit is at site 'moon'"):
        Settings(units=SETTINGS.units, scanners=[{"id": "scan-02", "site": "moon"}])
    assert Topics("cc").scanner_bag_events("scan-01", "B1") == "cc/scanners/scan-01/bags/B1/events"
