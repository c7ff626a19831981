"""The watchdog seen from outside: a heartbeat URL only while healthy, systemd READY=1 / WATCHDOG=1."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.watchdog import Watchdog
from coldchain.config import WatchdogConfig
from tests.publishing import wait_for
from tests.servers import Mosquitto
from tests.service_process import ColdchainProcess, write_config

TIMEOUT = 10.0


class NotifySocket:
    """What systemd would listen on: a unix datagram socket; ``messages`` are what coldchain told it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + path[1:] if path.startswith("@") else path)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


def _pings(httpserver: HTTPServer) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == "/ping/check-1")


def _withheld(service: ColdchainProcess) -> float:
    for line in service.get("/metrics").text.splitlines():
        if line.startswith('coldchain_watchdog_heartbeats_total{outcome="withheld"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _watchdog(url: str, health: Callable[[], list[str]], environ: dict[str, str] | None = None) -> Watchdog:
    config = WatchdogConfig(heartbeat_url=url, heartbeat_every="100ms", heartbeat_timeout="2s")
    return Watchdog(config, health, Metrics(), environ or {})


def test_the_heartbeat_url_is_requested_only_while_healthy(httpserver: HTTPServer) -> None:
    """Pings every heartbeat_every while health() is empty; none while it names a problem; resumes after."""
    httpserver.expect_request("/ping/check-1").respond_with_data("OK")
    problems: list[str] = []
    watchdog = _watchdog(httpserver.url_for("/ping/check-1"), lambda: list(problems))
    watchdog.start()
    try:
        wait_for(lambda: _pings(httpserver) >= 3, TIMEOUT, "three heartbeats while healthy")
        problems.append("broker unreachable: mqtt://127.0.0.1:1")
        ticks = watchdog.ticks
        wait_for(lambda: watchdog.ticks >= ticks + 1, TIMEOUT, "the watchdog to see the problem")
        withheld_from = _pings(httpserver)
        wait_for(lambda: watchdog.ticks >= ticks + 6, TIMEOUT, "five more turns while unhealthy")
        assert _pings(httpserver) == withheld_from, "a heartbeat went out while not healthy"
        assert watchdog.metrics.heartbeats.labels("withheld")._value.get() >= 4
        problems.clear()
        wait_for(lambda: _pings(httpserver) >= withheld_from + 2, TIMEOUT, "heartbeats again once healthy")
    finally:
        watchdog.stop()


def test_a_failing_heartbeat_endpoint_is_counted_and_the_watchdog_goes_on(httpserver: HTTPServer) -> None:
    """A 500 from the heartbeat service is logged and counted; the next turns try again."""
    httpserver.expect_request("/ping/check-1").respond_with_data("down", status=500)
    watchdog = _watchdog(httpserver.url_for("/ping/check-1"), lambda: [])
    watchdog.start()
    try:
        wait_for(lambda: watchdog.metrics.heartbeats.labels("failed")._value.get() >= 2, TIMEOUT, "two failures")
        assert watchdog.metrics.heartbeats.labels("sent")._value.get() == 0
    finally:
        watchdog.stop()


@pytest.mark.parametrize("abstract", [False, True])
def test_systemd_hears_ready_then_watchdog_then_stopping(tmp_path: Path, abstract: bool) -> None:
    """With NOTIFY_SOCKET (a path or @abstract) and WATCHDOG_USEC: READY=1, WATCHDOG=1 every half period, STOPPING=1."""
    path = f"@coldchain-test-{uuid.uuid4().hex}" if abstract else str(tmp_path / "notify.sock")
    listener = NotifySocket(path)
    config = WatchdogConfig(heartbeat_every="1h")  # no URL; the systemd period (0.4 s) sets the pace
    watchdog = Watchdog(config, lambda: [], Metrics(), {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    assert watchdog.tick == pytest.approx(0.2)
    watchdog.start()
    try:
        wait_for(lambda: listener.poll().count("WATCHDOG=1") >= 3, TIMEOUT, "three WATCHDOG=1")
        assert listener.messages[0] == "READY=1"
    finally:
        watchdog.stop()
        assert listener.poll()[-1] == "STOPPING=1"
        listener.close()


@pytest.mark.integration
def test_coldchain_run_under_systemd_pings_while_ready_and_stops_pinging_when_the_broker_is_gone(
    fresh_mosquitto: Callable[..., Mosquitto], httpserver: HTTPServer, notify_socket: NotifySocket, tmp_path: Path
) -> None:
    """coldchain run: READY=1 to systemd, heartbeats while ready; broker stopped -> no heartbeat; back -> again."""
    httpserver.expect_request("/ping/check-1").respond_with_data("OK")
    broker = fresh_mosquitto()
    extra = "\n".join(
        [
            "[store]",
            f'url = "sqlite:///{tmp_path}/store.db"',
            "[watchdog]",
            f'heartbeat_url = "{httpserver.url_for("/ping/check-1")}"',
            'heartbeat_every = "200ms"',
        ]
    )
    config = write_config(tmp_path, broker.url, "http://127.0.0.1:1", "unused", f"wd-{uuid.uuid4().hex[:6]}", extra)
    service = ColdchainProcess(config, role="run", env={"NOTIFY_SOCKET": notify_socket.path}).start()
    try:
        wait_for(lambda: "READY=1" in notify_socket.poll(), TIMEOUT, "READY=1")
        wait_for(lambda: notify_socket.poll() and _pings(httpserver) >= 3, TIMEOUT, "heartbeats while ready")
        broker.stop()
        wait_for(lambda: notify_socket.poll() and service.get("/readyz").status_code == 503, TIMEOUT, "/readyz 503")
        # one heartbeat may have been on its way when the broker went; from the first withheld turn on, silence
        withheld = _withheld(service)
        wait_for(lambda: notify_socket.poll() and _withheld(service) > withheld, TIMEOUT, "a withheld heartbeat")
        silent_from = _pings(httpserver)
        told = notify_socket.poll().count("WATCHDOG=1")
        wait_for(
            lambda: notify_socket.poll().count("WATCHDOG=1") >= told + 10, TIMEOUT, "systemd still told it is alive"
        )
        assert _pings(httpserver) == silent_from, "heartbeat sent while the broker was down"
        broker.start()
        wait_for(lambda: notify_socket.poll() and _pings(httpserver) >= silent_from + 2, 30, "heartbeats again")
    finally:
        service.stop()
    assert notify_socket.poll()[-1] == "STOPPING=1"


def test_a_listener_that_stops_reading_never_blocks_the_watchdog_or_its_stop(notify_socket: NotifySocket) -> None:
    """With systemd's socket full (nobody reading), turns go on and stop() returns: notifications time out."""
    watchdog = Watchdog(WatchdogConfig(), lambda: [], Metrics(), {"NOTIFY_SOCKET": notify_socket.path})
    watchdog.tick = 0.01
    watchdog.start()
    try:
        wait_for(lambda: watchdog.ticks >= 15, TIMEOUT, "turns past the socket's queue length (10 datagrams)")
    finally:
        watchdog.stop()
    assert not watchdog._thread.is_alive()


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("", True),  # no heartbeat: the default
        ("https://hc-ping.example/2f7c1d3e", True),  # healthchecks.io style
        ("http://kuma.local:3001/api/push/AbC?status=up", True),  # Uptime Kuma push
        ("ftp://example/ping", False),  # not HTTP
        ("hc-ping.example/uuid", False),  # no scheme: would never be requested
        ("https://", False),  # no host
    ],
)
def test_the_heartbeat_url_must_be_http_or_https(url: str, accepted: bool) -> None:
    """watchdog.heartbeat_url takes http(s) URLs with a host; anything else is a configuration error."""
    if accepted:
        assert WatchdogConfig(heartbeat_url=url).heartbeat_url.get_secret_value() == url
    else:
        with pytest.raises(ValueError, match="heartbeat_url"):
            WatchdogConfig(heartbeat_url=url)
