"""Assembles the service's roles (ingest, rules, HTTP; alerting joins later) and runs them until a signal."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from coldchain import __version__
from coldchain.adapters.http.ack_links import LinkSigner, load_link_key
from coldchain.adapters.http.ack_page import AckPage
from coldchain.adapters.http.api import HttpApi
from coldchain.adapters.http.server import HttpServer
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.notice_text import Renderer
from coldchain.adapters.notify import Notifier
from coldchain.adapters.outbox import Outbox
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.factory import open_store
from coldchain.adapters.store.port import Store, StoreError
from coldchain.adapters.store.spool import Spool
from coldchain.adapters.watchdog import HealthCheck, Watchdog
from coldchain.config import Settings
from coldchain.core.policy import Policy
from coldchain.roles.dispatch import Dispatcher
from coldchain.roles.ingest import Ingest
from coldchain.roles.rules_worker import RulesWorker

if TYPE_CHECKING:
    from coldchain.adapters.broker import EmbeddedBroker

log = logging.getLogger("coldchain.service")

ROLES = ("ingest", "rules", "api")


class _CachedPing:
    """Ask the store whether it answers at most every ``interval`` seconds (readiness is polled often)."""

    def __init__(self, store: Store, interval: float = 2.0) -> None:
        self.store = store
        self.interval = interval
        self._checked = 0.0
        self._problem: str | None = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._checked >= self.interval:
                try:
                    self.store.ping()
                    self._problem = None
                except StoreError as exc:
                    self._problem = f"store unreachable: {exc}"
                self._checked = time.monotonic()
            return self._problem


class Service:
    """The roles of one coldchain process, sharing metrics, the store and the spool."""

    def __init__(
        self,
        settings: Settings,
        roles: Iterable[str] = ROLES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        health: HealthCheck | None = None,
    ) -> None:
        """``clock`` is the ``now`` of the rules, the notifier and its messages (the demo passes a simulated one);
        ``health`` gates the watchdog's heartbeat (default: ``readiness``)."""
        self.settings = settings
        self.roles = tuple(roles)
        self.metrics = Metrics()
        # the process that ingests runs the embedded broker (mqtt.url = "embedded://…"); others connect to it
        self.broker: EmbeddedBroker | None = None
        if settings.mqtt.embedded and "ingest" in self.roles:
            from coldchain.adapters.broker import EmbeddedBroker  # amqtt is imported only when used

            self.broker = EmbeddedBroker(settings.mqtt.host, settings.mqtt.port)
        self.store = open_store(settings)
        # ingest and rules in one process share one writer; a rules-only process spools to a file of its own
        spool_path = settings.spool.path if "ingest" in self.roles else settings.rules.spool_path
        self.spool = Spool(spool_path, settings.spool.max_bytes)
        self.writer = DurableWriter(self.store, self.spool, self.metrics)
        self.ingest = Ingest(settings, self.writer, self.metrics) if "ingest" in self.roles else None
        self.rules = RulesWorker(settings, self.writer, self.metrics, clock) if "rules" in self.roles else None
        self._ping = _CachedPing(self.store)
        self.api = (
            HttpApi(settings, self.metrics, self.readiness, self.store, self.rules) if "api" in self.roles else None
        )
        self.link_signer: LinkSigner | None = None
        self.outbox: Outbox | None = None
        self.notifier: Notifier | None = None
        if self.rules is not None:
            # the role that owns alerts also notifies people and serves the acknowledge links
            key = load_link_key(settings.api, settings.notify.state_path.parent)
            self.link_signer = LinkSigner(key, settings.api.link_valid_for)
            units = {unit.id: unit.display_name for unit in settings.units}
            self.outbox = Outbox(settings.notify.state_path)
            render = Renderer(settings.api, self.link_signer, unit_names=units, clock=clock)
            self.notifier = Notifier(settings.notify, self.outbox, self.writer, self.metrics, render, clock=clock)
            self.rules.add_listener(Dispatcher(Policy(settings.notify, settings.oncall), self.outbox, self.notifier))
            if self.api is not None:
                page = AckPage(
                    self.link_signer,
                    self.rules,
                    public_url=settings.api.public_url,
                    unit_names=units,
                    gate=self.api.gate,
                )
                self.api.extra_routes.append(page.route)
        self.http = HttpServer(settings.api, self.api, self.metrics) if self.api is not None else None
        self.watchdog = Watchdog(settings.watchdog, health or self.readiness, self.metrics, os.environ)
        self._stop = threading.Event()

    def readiness(self) -> list[str]:
        """Why the service is not ready (empty when it is)."""
        problems: list[str] = []
        connections = [role.connection for role in (self.ingest, self.rules) if role is not None]
        if any(not connection.connected.is_set() for connection in connections):
            problems.append(f"broker unreachable: {self.settings.mqtt.url}")
        store_problem = self._ping.problem()
        if store_problem:
            problems.append(store_problem)
        if self.spool.full:
            problems.append(f"spool full ({self.spool.size_bytes} of {self.spool.max_bytes} bytes)")
        return problems

    def start(self) -> None:
        log.info(
            "coldchain %s starting",
            __version__,
            extra={
                "roles": ",".join(self.roles),
                "units": len(self.settings.units),
                "sensors": len(self.settings.sensors),
            },
        )
        if self.broker is not None:
            self.broker.start()
        self.writer.start()
        if self.ingest is not None:
            self.ingest.start()
        if self.notifier is not None:
            self.notifier.start()
        if self.rules is not None:
            self.rules.start()
        if self.http is not None:
            self.http.start()
        self.watchdog.start()

    def stop(self) -> None:
        """Flush and stop every role; spooled data stays on disk for the next start."""
        log.info("coldchain stopping")
        self.watchdog.stop()
        for role in (self.ingest, self.rules):
            if role is not None:
                role.request_stop()
        self.writer.stop()
        for role in (self.ingest, self.rules):
            if role is not None:
                role.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.outbox is not None:
            self.outbox.close()
        if self.http is not None:
            self.http.stop()
        self.store.close()
        self.spool.close()
        if self.broker is not None:
            self.broker.stop()
        log.info("coldchain stopped")

    def request_stop(self) -> None:
        self._stop.set()

    def run_until_signal(self) -> None:
        """Start, wait for SIGTERM or SIGINT, stop cleanly."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.request_stop())
        self.start()
        # everything built at start-up lives for the whole run: keep it out of full collections,
        # which otherwise pause every thread for up to ~100 ms (measured by bench/alerts.py)
        gc.freeze()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()
