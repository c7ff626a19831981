"""Fixtures: one real influxd and one real mosquitto per test session, fresh ones on demand, and the
worlds and receivers several integration modules share."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from pytest_httpserver import HTTPServer

from coldchain.config import InfluxConfig
from tests.servers import Influxd, Mosquitto

if TYPE_CHECKING:
    from tests.world import Scenario


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean COLDCHAIN_* environment for each test that asks for it (pydantic-settings' own test style)."""
    for key in list(os.environ):
        if key.startswith("COLDCHAIN_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def influxd() -> Iterator[Influxd]:
    """The session's shared influxd (no auth); tests keep apart through their own database."""
    with Influxd() as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """The session's shared broker; tests keep apart through their own client ids and topics."""
    with Mosquitto() as server:
        yield server


S = TypeVar("S", Influxd, Mosquitto)


def _started_servers(kind: type[S]) -> Iterator[Callable[..., S]]:
    """A factory of started servers of ``kind``, each closed when the test ends."""
    servers: list[S] = []

    def make(**options: Any) -> S:
        server = kind(**options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def fresh_influxd() -> Iterator[Callable[..., Influxd]]:
    """Factory of started influxd servers that this test alone may stop, kill or restart."""
    yield from _started_servers(Influxd)


@pytest.fixture
def fresh_mosquitto() -> Iterator[Callable[..., Mosquitto]]:
    """Factory of started brokers that this test alone may stop, kill or restart."""
    yield from _started_servers(Mosquitto)


@pytest.fixture
def influx_config(influxd: Influxd) -> Iterator[InfluxConfig]:
    """Settings for the shared influxd with a database of this test's own (dropped afterwards)."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    yield InfluxConfig(url=influxd.url, database=database)
    if influxd.running:
        influxd.query(f'DROP DATABASE "{database}"')


@pytest.fixture
def scenario(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd) -> Iterator[Scenario]:
    """One test's world on the session's servers: its own topic prefix, database and ingest process."""
    from tests.world import Scenario  # here, not above: tests.world hashes a password when imported

    world = Scenario(tmp_path, mosquitto, influxd)
    yield world
    world.close()


@pytest.fixture
def hook(httpserver: HTTPServer) -> HTTPServer:
    """A webhook receiver answering 200 to every POST on /hook (test_notify.py has its own, with /broken)."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that call the CLI in-process install a handler on the captured stderr: take it away again,
    or a later thread (an SMTP server's, say) logs into a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
