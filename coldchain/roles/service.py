"""Assembles the service's roles (ingest, rules, notification delivery, HTTP) and runs them until a signal.

Every role loop runs under the ``Supervisor`` (``supervision.py``): it survives its exceptions and
beats a heartbeat that ``/readyz`` reads. A role that cannot recover ends ``run_until_signal`` with
exit code ``EXIT_ROLE_DEAD``, so the process supervisor restarts coldchain. The facts about
coldchain itself (broker and store reachable, free disk space, roles healthy, state reset) go to
the rules worker every tick, which turns them into system alerts (``core/system_rules.py``).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from coldchain import __version__
from coldchain.adapters.http.ack_links import LinkSigner, load_link_key
from coldchain.adapters.http.ack_page import AckPage
from coldchain.adapters.http.api import HttpApi
from coldchain.adapters.http.review_page import ReviewPage
from coldchain.adapters.http.server import HttpServer
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.notice_text import Renderer
from coldchain.adapters.notify import Notifier
from coldchain.adapters.outbox import Outbox, OutboxError
from coldchain.adapters.rollup_marks import RollupMarks
from coldchain.adapters.sqlite_files import move_aside
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.factory import open_store
from coldchain.adapters.store.port import Store, StoreError
from coldchain.adapters.store.spool import Spool
from coldchain.adapters.watchdog import HealthCheck, Watchdog
from coldchain.config import Settings
from coldchain.core.policy import Policy
from coldchain.core.rollups import local_day
from coldchain.core.system_rules import DiskSpace, Fact, Link, RoleHealth
from coldchain.roles.dispatch import Dispatcher
from coldchain.roles.feed import Feed
from coldchain.roles.ingest import Ingest
from coldchain.roles.report_scheduler import ReportScheduler
from coldchain.roles.rollup_keeper import RollupKeeper
from coldchain.roles.rules_worker import RulesWorker
from coldchain.roles.steady_clock import SteadyClock
from coldchain.roles.stop_request import StopRequest
from coldchain.roles.supervision import Supervisor

if TYPE_CHECKING:
    from coldchain.adapters.broker import EmbeddedBroker

log = logging.getLogger("coldchain.service")

ROLES = ("ingest", "rules", "api")

EXIT_ROLE_DEAD = 70
"""Exit status when a role cannot recover (EX_SOFTWARE): the process supervisor restarts coldchain."""


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
        clock: Callable[[], datetime] | None = None,
        health: HealthCheck | None = None,
    ) -> None:
        """``clock`` is the ``now`` of the rules, the notifier and its messages (the demo passes a simulated one);
        by default the wall clock steadied by the monotonic one (``steady_clock.py``). ``health`` gates the
        watchdog's heartbeat (default: ``readiness``, which names every late, failing or dead role)."""
        clock = clock if clock is not None else SteadyClock()
        self.settings = settings
        self.roles = tuple(roles)
        self.metrics = Metrics()
        self.supervisor = Supervisor(self.metrics)
        self.exit_code = 0
        # the process that ingests runs the embedded broker (mqtt.url = "embedded://…"); others connect to it
        self.broker: EmbeddedBroker | None = None
        if settings.mqtt.embedded and "ingest" in self.roles:
            from coldchain.adapters.broker import EmbeddedBroker  # amqtt is imported only when used

            self.broker = EmbeddedBroker(settings.mqtt.host, settings.mqtt.port)
        self.store = open_store(settings)
        # ingest and rules in one process share one writer; a rules-only process spools to a file of its own
        spool_path = settings.spool.path if "ingest" in self.roles else settings.rules.spool_path
        self.spool = Spool(spool_path, settings.spool.max_bytes)
        self.writer = DurableWriter(
            self.store,
            self.spool,
            self.metrics,
            max_attempts=settings.spool.max_attempts,
            heartbeat=self.supervisor.beat_current,
        )
        self.ingest = Ingest(settings, self.writer, self.metrics) if "ingest" in self.roles else None
        self.rollups: RollupKeeper | None = None
        self._rollups_thread: threading.Thread | None = None
        if self.ingest is not None and settings.rollups.enabled:
            marks = RollupMarks(settings.rollups.state_path)
            inventory = settings.frozen_inventory()
            self.rollups = RollupKeeper(
                settings,
                self.writer,
                self.metrics,
                clock=clock,
                marks=marks,
                day_of=lambda site: local_day(inventory.site(site).timezone),  # the daily tables' local days
            )
            self.ingest.rollups = self.rollups
        self.rules = (
            RulesWorker(settings, self.writer, self.metrics, clock, feed=self._feed(settings))
            if "rules" in self.roles
            else None
        )
        self.reports = (
            ReportScheduler(settings, self.store, self.rules, clock)
            if self.rules is not None and settings.reports
            else None
        )
        self._ping = _CachedPing(self.store)
        self.api = (
            HttpApi(settings, self.metrics, self.readiness, self.store, self.rules) if "api" in self.roles else None
        )
        self.link_signer: LinkSigner | None = None
        self.outbox: Outbox | None = None
        self.notifier: Notifier | None = None
        self.dispatcher: Dispatcher | None = None
        self._disk_checked = float("-inf")
        self._disk_facts: list[Fact] = []
        if self.ingest is not None:
            self.ingest.heartbeat = functools.partial(self.supervisor.beat, "ingest")
        if self.rules is not None:
            self.rules.heartbeat = functools.partial(self.supervisor.beat, "rules")
            self.rules.facts = self.system_facts
            if self.spool.reset is not None:
                self.rules.note_reset(
                    "spool", f"{self.spool.reset}. Its records are kept there but were not replayed into the store."
                )
            # the role that owns alerts also notifies people and serves the acknowledge links
            key = load_link_key(settings.api, settings.notify.state_path.parent)
            self.link_signer = LinkSigner(key, settings.api.link_valid_for)
            units = {unit.id: unit.display_name for unit in settings.units}
            self.outbox = self._open_outbox(settings.notify.state_path)
            render = Renderer(settings.api, self.link_signer, unit_names=units, clock=clock)
            self.notifier = Notifier(settings.notify, self.outbox, self.writer, self.metrics, render, clock=clock)
            self.notifier.heartbeat = self.supervisor.beat_current
            engine = self.rules.engine
            self.dispatcher = Dispatcher(
                Policy(settings.notify, settings.oncall),
                self.outbox,
                self.notifier,
                outages=lambda: engine.broker_outages(),
            )
            self.rules.add_listener(self.dispatcher)
            if self.api is not None:
                page = AckPage(
                    self.link_signer,
                    self.rules,
                    public_url=settings.api.public_url,
                    unit_names=units,
                    gate=self.api.gate,
                )
                self.api.extra_routes.append(page.route)
                review_page = ReviewPage(settings, self.api.reviews, public_url=settings.api.public_url)
                self.api.extra_routes.append(review_page.route)
        self.http = HttpServer(settings.api, self.api, self.metrics) if self.api is not None else None
        self.watchdog = Watchdog(settings.watchdog, health or self.readiness, self.metrics, os.environ)
        if self.api is not None:
            self.api.liveness = self.supervisor.dead
        self._stop = StopRequest()

    def _feed(self, settings: Settings) -> Feed | None:
        """Ingest's stored batches for the rules role, when this process's ingest receives every message the
        rules judge (no shared replicas, no partition); None: the rules worker subscribes on its own session."""
        if self.ingest is None or settings.mqtt.shared_group or settings.rules.sites:
            return None
        self.ingest.feed = Feed(self.ingest.connection, self.ingest.holding)
        return self.ingest.feed

    def _open_outbox(self, path: Path) -> Outbox:
        """The outbox; an unreadable one is moved aside (kept) and a fresh one started, with ``state_reset``."""
        try:
            return Outbox(path)
        except OutboxError as exc:
            aside = move_aside(path, datetime.now(UTC))
            log.error("notification outbox unreadable (%s); moved to %s, starting a fresh one", exc, aside.name)
            if self.rules is not None:
                self.rules.note_reset(
                    "outbox",
                    f"{exc}; moved to {aside.name}. Notices still pending in it were not sent, and alerts still "
                    "open are notified again as if new.",
                )
            return Outbox(path)

    # -- what coldchain knows about itself ------------------------------------------------------

    def state_dirs(self) -> list[Path]:
        """The directories of the durable state (spool, snapshot, outbox, audit log, SQLite store)."""
        paths = [self.spool.path, self.settings.rules.state_path, self.settings.notify.state_path]
        paths.append(self.settings.rules.audit_log_path)
        if self.rollups is not None:
            paths.append(self.settings.rollups.state_path)
        if self.settings.store.sqlite_path is not None:
            paths.append(self.settings.store.sqlite_path)
        return list(dict.fromkeys(path.resolve().parent for path in paths))

    def _disk_space(self) -> list[Fact]:
        """Free space under each state directory (one per filesystem), measured every ``state.check_every``."""
        if time.monotonic() - self._disk_checked < self.settings.state.check_every.total_seconds():
            return self._disk_facts
        self._disk_checked = time.monotonic()
        facts: list[Fact] = []
        devices: set[int] = set()
        for directory in self.state_dirs():
            try:
                device = os.stat(directory).st_dev
                if device in devices:
                    continue
                devices.add(device)
                usage = shutil.disk_usage(directory)
            except OSError as exc:
                log.warning("cannot measure free space of %s: %s", directory, exc)
                continue
            min_free = self.settings.state.min_free_bytes(usage.total)
            facts.append(DiskSpace(str(directory), usage.free, usage.total, min_free))
        self._disk_facts = facts
        return facts

    def system_facts(self) -> list[Fact]:
        """The facts behind the system alerts, as of now (asked by the rules worker every tick)."""
        facts: list[Fact] = []
        connections = [role.connection for role in (self.ingest, self.rules) if role is not None]
        if connections:
            broker_up = all(connection.connected.is_set() for connection in connections)
            facts.append(Link("broker_unreachable", connections[0].client_id, broker_up, self.settings.mqtt.url))
        store_name = "sqlite" if self.settings.store.sqlite_path is not None else "influx"
        facts.append(Link("store_unreachable", store_name, self.writer.store_down_since is None))
        facts += self._disk_space()
        for role, problem in self.supervisor.health().items():
            facts.append(RoleHealth(role, problem is None, problem or ""))
        return facts

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
        elif self.writer.problem is not None:
            problems.append(self.writer.problem)
        for part in (self.rules, self.dispatcher):
            if part is not None and part.problem is not None:
                problems.append(part.problem)
        problems += self.supervisor.problems()
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
        spawn = self.supervisor.spawn
        if self.ingest is not None:
            self.ingest.start(spawn)
        if self.rollups is not None:
            self.rollups.heartbeat = functools.partial(self.supervisor.beat, "rollups")
            self._rollups_thread = spawn("rollups", self.rollups.run, late_after=120.0, dead_after=900.0)
        if self.notifier is not None:
            self.notifier.start(functools.partial(spawn, late_after=120.0, dead_after=900.0))
        if self.rules is not None:
            self.rules.start(spawn)
        if self.reports is not None:
            # a month's export takes minutes: the role beats between runs, not during one
            self.reports.heartbeat = functools.partial(self.supervisor.beat, "reports")
            self.reports.start(functools.partial(spawn, late_after=3600.0, dead_after=4 * 3600.0))
        if self.http is not None:
            self.http.start()
            self.supervisor.watch("api", self.http.alive)
        self.watchdog.start()

    def stop(self) -> None:
        """Flush and stop every role; spooled data stays on disk for the next start."""
        log.info("coldchain stopping")
        self.watchdog.stop()
        self.supervisor.stop()
        for role in (self.ingest, self.rules):
            if role is not None:
                role.request_stop()
        if self.reports is not None:
            self.reports.stop()
        if self.rollups is not None:
            self.rollups.stop()
            if self._rollups_thread is not None:
                self._rollups_thread.join(timeout=30)
        self.writer.stop()
        # ingest first hands over its last stored batch; the rules worker judges it and acks it on ingest's
        # session, so both disconnect only after both finished
        for role in (self.ingest, self.rules):
            if role is not None:
                role.finish()
        for role in (self.rules, self.ingest):
            if role is not None:
                role.disconnect()
        if self.rollups is not None and self.rollups.marks is not None:
            self.rollups.marks.close()  # after ingest's last batch, whose marks it takes
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
        self._stop.request()

    def run_until_signal(self) -> int:
        """Start, wait for SIGTERM or SIGINT (or a role that cannot recover), stop; the exit status."""
        self._stop.install()
        return self.run()

    def run(self) -> int:
        """Start, run until ``request_stop`` or a role that cannot recover, stop; the exit status."""
        self.start()
        # everything built at start-up lives for the whole run: keep it out of full collections,
        # which otherwise pause every thread for up to ~100 ms (measured by bench/alerts.py)
        gc.freeze()
        try:
            while not self._stop.wait(1.0):
                dead = self.supervisor.check()
                if dead:
                    log.critical("stopping with exit status %d: %s", EXIT_ROLE_DEAD, "; ".join(dead))
                    self.exit_code = EXIT_ROLE_DEAD
                    break
        finally:
            self.stop()
        return self.exit_code
