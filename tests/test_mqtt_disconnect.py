"""The MQTT edge's log on disconnect: a deliberate stop is an INFO line, losing the broker a WARNING."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest

from coldchain.adapters.mqtt import MqttConnection
from coldchain.config import MqttConfig
from tests.publishing import wait_for
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration


def _connected(mosquitto: Mosquitto) -> MqttConnection:
    connection = MqttConnection(MqttConfig(url=mosquitto.url), f"disconnect-{uuid.uuid4().hex[:8]}")
    connection.start()
    wait_for(connection.connected.is_set, 10.0, "connected")
    return connection


def test_a_clean_stop_logs_disconnected_at_info_and_nothing_alarming(
    fresh_mosquitto: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    """stop() logs 'disconnected from broker' (INFO), never 'Unspecified error; reconnecting'."""
    connection = _connected(fresh_mosquitto())
    with caplog.at_level(logging.INFO, logger="coldchain.mqtt"):
        connection.stop()
    messages = [(record.levelno, record.getMessage()) for record in caplog.records if record.name == "coldchain.mqtt"]
    assert (logging.INFO, "disconnected from broker") in messages
    assert not [message for level, message in messages if level >= logging.WARNING]


def test_losing_the_broker_is_still_a_warning(
    fresh_mosquitto: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    """When the broker goes away under us, the WARNING (and the reconnecting) stays."""
    broker = fresh_mosquitto()
    connection = _connected(broker)
    try:
        with caplog.at_level(logging.INFO, logger="coldchain.mqtt"):
            broker.close()
            wait_for(lambda: not connection.connected.is_set(), 10.0, "disconnected")
        assert any(
            record.levelno == logging.WARNING and "reconnecting" in record.getMessage() for record in caplog.records
        )
    finally:
        connection.stop()
