"""Seen from outside: a heartbeat URL requested only while coldchain is healthy, and systemd's notify protocol.

A dead-man's switch pages when the heartbeat *stops*: a killed, hung or unhealthy coldchain stops
requesting ``watchdog.heartbeat_url`` and the outside service (healthchecks.io, Uptime Kuma push,
Better Stack…) raises the alarm. "Healthy" is whatever ``health()`` says (the reasons it is not;
empty when it is), by default the service's readiness.

Under systemd (``Type=notify``, ``NOTIFY_SOCKET`` set) coldchain sends ``READY=1`` once started,
``WATCHDOG=1`` from the same loop, and ``STOPPING=1`` on the way out: sd_notify(3) is one datagram on
a unix socket, written here in a few lines. ``WATCHDOG=1`` says the process is alive and its loop
turns (``alive()``, by default always true when the loop runs); it is not held back while the broker
or the store is away, since restarting coldchain would not bring them back and the running process is
the one that alerts about them. With ``WatchdogSec`` set, systemd's ``WATCHDOG_USEC`` makes the loop
turn at least twice per watchdog period.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping

import httpx

from coldchain.adapters.metrics import Metrics
from coldchain.config import WatchdogConfig

log = logging.getLogger("coldchain.watchdog")

HealthCheck = Callable[[], list[str]]
"""The reasons the service is not healthy; empty when it is."""


def sd_notify(socket_path: str, message: str) -> bool:
    """Send one sd_notify(3) datagram (``READY=1``, ``WATCHDOG=1``…); False (logged) when it cannot be sent."""
    address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)  # a listener that stopped reading must not block the watchdog, or a stop
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", socket_path, exc)
        return False
    return True


class Watchdog:
    """Beats every ``heartbeat_every`` while ``health()`` is empty; tells systemd it is ready and alive."""

    def __init__(
        self,
        config: WatchdogConfig,
        health: HealthCheck,
        metrics: Metrics,
        environ: Mapping[str, str],
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        """``environ`` is the process environment (``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` come from systemd)."""
        self.url = config.heartbeat_url.get_secret_value()
        self.every = config.heartbeat_every.total_seconds()
        self.timeout = config.heartbeat_timeout.total_seconds()
        self.health = health
        self.alive = alive
        self.metrics = metrics
        self.notify_socket = environ.get("NOTIFY_SOCKET") or None
        watchdog_usec = environ.get("WATCHDOG_USEC", "")
        self.tick = self.every
        if self.notify_socket and watchdog_usec.isdigit() and int(watchdog_usec) > 0:
            self.tick = min(self.every, int(watchdog_usec) / 1e6 / 2)
        self.ticks = 0
        """Turns of the loop so far (tests wait on it rather than on the clock)."""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._unhealthy_since_logged = False

    @property
    def active(self) -> bool:
        return bool(self.url or self.notify_socket)

    def start(self) -> None:
        """Call once every role has started: tells systemd READY=1 and begins the heartbeat."""
        if self.notify_socket:
            sd_notify(self.notify_socket, "READY=1")
        if self.active:
            self._thread.start()

    def stop(self) -> None:
        if self.notify_socket:
            sd_notify(self.notify_socket, "STOPPING=1")
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout + 1)

    def _run(self) -> None:
        next_url = 0.0
        while True:
            now = time.monotonic()
            url_due = now >= next_url - self.tick / 10
            if url_due:
                next_url = now + self.every
            try:
                self.beat(url_due=url_due)
            except Exception:  # the watchdog must outlive any one bad turn
                log.exception("watchdog turn failed")
            self.ticks += 1
            if self._stopping.wait(self.tick):
                return

    def beat(self, *, url_due: bool = True) -> None:
        """One turn: WATCHDOG=1 to systemd while alive; the heartbeat URL (when due) while healthy."""
        if self.notify_socket and self.alive():
            sd_notify(self.notify_socket, "WATCHDOG=1")
        if not self.url or not url_due:
            return
        problems = self.health()
        if problems:
            self.metrics.heartbeats.labels("withheld").inc()
            if not self._unhealthy_since_logged:
                log.warning("heartbeat withheld: not healthy (%s)", "; ".join(problems))
                self._unhealthy_since_logged = True
            return
        if self._unhealthy_since_logged:
            log.info("healthy again: heartbeat resumed")
            self._unhealthy_since_logged = False
        try:
            response = httpx.get(self.url, timeout=self.timeout)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.metrics.heartbeats.labels("failed").inc()
            # the URL carries the check's token: name the error's class and status, never the URL
            status = getattr(getattr(exc, "response", None), "status_code", None)
            log.warning("heartbeat request failed: %s%s", type(exc).__name__, f" {status}" if status else "")
            return
        self.metrics.heartbeats.labels("sent").inc()
