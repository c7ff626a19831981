"""The rules worker: MQTT readings and bag events -> ``RulesEngine`` -> alert transitions out.

Its input: in ``coldchain run`` (ingest in the same process, receiving every message) the batches
ingest stored, parsed once, acked on ingest's session after the checkpoint that covers them
(``feed.py``); otherwise (a rules-only process, a partition, shared ingest replicas) its own
persistent MQTT session (``rules.client_id``), independent of ingest, so each consumer gets every
message. Either way it has its own session to publish on. Per batch it feeds the engine with the
wall clock as ``now`` (rejections are ingest's to store), publishes every transition retained on
``<prefix>/alerts/<kind>/<subject>`` (QoS 1) and stores it in measurement ``alert``. The clock
rules run every ``rules.tick`` (at most 1 s).

Restart safety (``kill -9`` at any moment): every ``rules.checkpoint_every`` the worker waits for
the broker to confirm the alerts published so far, makes what changed durable (a change record, or
a full snapshot when the log outgrew it: ``adapters/rules_snapshot.py``, ``core/rules_changes.py``;
no write at all when nothing changed), and only then acks the messages judged since the previous
checkpoint. After a crash it restores the snapshot and change log and the broker redelivers the
unacked messages, which the engine judges again in event-time order; deterministic alert ids make
any re-published transition the same alert, never a second episode.

After a (re)start the clock rules wait until the broker's backlog for our session has been read
(the inbox was seen empty), at most ``_BACKLOG_GRACE`` seconds, so a restart does not report every
sensor offline just before the queued readings arrive.

Its parts: ``alert_publisher.py`` publishes and stores transitions, ``audit_recorder.py`` keeps the
audit trail, ``rules_view.py`` is what the HTTP API reads; this module consumes, judges and checkpoints.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from coldchain import __version__
from coldchain.adapters.audit_log import AuditLog, load_audit_key
from coldchain.adapters.homeassistant import HomeAssistant
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.mqtt import InboundMessage, MqttConnection
from coldchain.adapters.rules_snapshot import RulesState
from coldchain.adapters.sqlite_files import DiskFull
from coldchain.adapters.store.durable import DurableWriter, WriterStopped
from coldchain.adapters.store.port import StoreError
from coldchain.config import Settings
from coldchain.contract.parser import MessageParser, ParsedRecord
from coldchain.contract.status import Status
from coldchain.contract.topics import Topics
from coldchain.core.alert import Alert, Transition
from coldchain.core.records import BagEvent, Rejection, RejectReason, Review
from coldchain.core.report_rules import ReportFailures
from coldchain.core.review import ReviewRequest, review_record
from coldchain.core.review_rules import ReviewDeadlines
from coldchain.core.rules import RulesEngine
from coldchain.core.rules_changes import is_empty, merge_changes
from coldchain.core.signoff import Acknowledgement
from coldchain.core.signoff import acknowledge as acknowledge_alert
from coldchain.core.system_rules import (
    DiskSpace,
    Fact,
    FutureTimestamps,
    Link,
    RoleHealth,
    StateReset,
    SystemLimits,
)
from coldchain.core.times import from_millis, parse_time, to_millis
from coldchain.roles import rebuild
from coldchain.roles.alert_publisher import AlertPublisher
from coldchain.roles.audit_recorder import AuditRecorder
from coldchain.roles.connected_loop import ConnectedLoop
from coldchain.roles.feed import Feed, ParsedMessage, take_waiting
from coldchain.roles.rules_view import RecentlyResolved, RulesView, view_of
from coldchain.roles.signing_locks import SigningLocks

log = logging.getLogger("coldchain.rules")

_BACKLOG_GRACE = 30.0
_MAX_BATCH = 2000
_COMMAND_POLL = 0.05

T = TypeVar("T")

AlertListener = Callable[[Sequence[Transition], Sequence[Alert], datetime], None]
"""Told of each step's transitions and of the alerts open after it (for notifications)."""


def system_limits(settings: Settings) -> SystemLimits:
    """When the facts about coldchain itself become alerts, from the configuration."""
    return SystemLimits(
        broker_after=settings.mqtt.outage_alert_after,
        store_after=settings.influx.outage_alert_after,
        skew_subject=f"ts_in_future@{settings.rules.client_id}" if settings.rules.sites else "ts_in_future",
    )


def partition_fact(fact: Fact, partition: str) -> Fact:
    """A fact as a partition reports it: the store, directory, role or reset named ``<subject>@<partition>``,
    so two partitions seeing the same outage raise two alerts, each naming its worker, never one alert
    twice. (A broker link is already named by the partition's own client id.)"""
    if isinstance(fact, Link) and fact.kind == "store_unreachable":
        return replace(fact, subject=f"{fact.subject}@{partition}")
    if isinstance(fact, DiskSpace):
        return replace(fact, path=f"{fact.path}@{partition}")
    if isinstance(fact, RoleHealth):
        return replace(fact, role=f"{fact.role}@{partition}")
    if isinstance(fact, StateReset):
        return replace(fact, what=f"{fact.what}@{partition}")
    return fact


def alert_topic(prefix: str, transition: Transition) -> str:
    """``<prefix>/alerts/<kind>/<subject>``."""
    return f"{prefix}/alerts/{transition.alert.kind}/{transition.alert.subject}"


class RulesWorker(ConnectedLoop):
    """The rules role: owns its MQTT connection, the engine, its snapshot and its thread."""

    role = "rules"

    def __init__(
        self,
        settings: Settings,
        writer: DurableWriter,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        feed: Feed | None = None,
    ) -> None:
        """``feed``: judge ingest's stored batches (same process) instead of subscribing to the inputs."""
        super().__init__()
        settings = settings.rules_partition()  # a partition (rules.sites) sees only its sites' inventory
        self.partition = tuple(settings.rules.sites)
        """The sites this worker judges; empty: every site."""
        self.settings = settings
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        self.parser = MessageParser(settings)
        self.state = RulesState(settings.rules.state_path)
        self.audit = AuditRecorder(
            AuditLog(settings.rules.audit_log_path, load_audit_key(settings.rules)),
            writer,
            clock,
            publish_head=self._publish_audit_head,
            chain=settings.rules.audit_chain,
        )
        self.config_source = "<defaults>"
        """The configuration file's path, recorded in the audit trail's ``config_loaded`` (set by the CLI)."""
        self.store = writer.store
        self.facts: Callable[[], list[Fact]] = list
        """What the edges report about coldchain itself, asked every tick (set by the service)."""
        self.heartbeat: Callable[[], None] = lambda: None
        """Beaten on every turn of the loop (set by the service's supervisor)."""
        self.problem: str | None = None
        """Why the snapshot cannot be saved (disk full), for readiness; None while it can."""
        self._facts: list[Fact] = []
        self._rebuilt: list[Transition] = []
        self._began = False
        self._loaded = self.state.load()
        self.engine = self._restore()
        self.feed = feed
        inputs = self.parser.own_subscriptions if self.partition else self.parser.subscriptions
        group = settings.mqtt.shared_group
        # earlier versions subscribed this session through ingest's $share group too, so it took a share of
        # the messages away from the ingest replicas, which never stored them: that subscription goes; fed,
        # the inputs go as well (the session receives nothing)
        stale = [f"$share/{group}/{topic}" for topic in inputs] if group else []
        self.connection = MqttConnection(
            settings.mqtt,
            client_id=settings.rules.client_id,
            subscriptions=() if feed is not None else inputs,
            unsubscribe=[*inputs, *stale] if feed is not None else stale,
            on_connected=self._connected,
            status=Status("rules", settings.rules.client_id, __version__, datetime.now(UTC)),
        )
        self._tick = settings.rules.tick.total_seconds()
        self._checkpoint_every = settings.rules.checkpoint_every.total_seconds()
        self.publisher = AlertPublisher(self.connection, writer, metrics, Topics(settings.mqtt.topic_prefix))
        self.homeassistant = HomeAssistant(settings, self.connection) if settings.homeassistant.discovery else None
        self._pending: list[tuple[MqttConnection, InboundMessage]] = []
        """Judged, to be acked (each on the session it came on) after the checkpoint covering it."""
        self._input_epoch = feed.connection.epoch if feed is not None else 0
        self._conflicts: list[Alert] = []
        self._dirty = False
        self._last_checkpoint = time.monotonic()
        # the clock rules first wait for the backlog queued for our session (or the grace to pass)
        self._clock_rules_from: float | None = time.monotonic() + _BACKLOG_GRACE
        self._commands: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._recent = RecentlyResolved(self._restore_recent())
        self._locks = SigningLocks((self._loaded or {}).get("signing_locks"))
        self._reviews = self._restore_reviews()
        self._report_failures = ReportFailures((self._loaded or {}).get("report_failures"))
        self._loaded = None
        self._unsaved: dict[str, Any] = {}
        """A change record that could not be saved (disk full): merged into the next one."""
        self._saved_extras: dict[str, Any] = {}
        self._listeners: list[AlertListener] = []
        self._view = RulesView((), ())
        self._refresh_view()
        metrics.alerts_open.set_function(lambda: len(self.engine.open_alerts()))
        metrics.late_readings.set_function(lambda: self.engine.stats.late_readings)

    def _publish_audit_head(self, payload: bytes) -> None:
        """Anchor the audit chain's head: retained on ``<prefix>/audit/head`` (QoS 1)."""
        topic = Topics(self.settings.mqtt.topic_prefix).audit_head_of(self.settings.rules.audit_chain)
        self.connection.publish(topic, payload, retain=True)

    def _restore(self) -> RulesEngine:
        """The engine from the snapshot (older versions migrated); rebuilt from the store if it is unusable."""
        limits = system_limits(self.settings)
        inventory = self.settings.frozen_inventory()
        warn_before = self.settings.rules.calibration_warn_before
        snapshot = self._loaded
        if snapshot is not None:
            try:
                engine = RulesEngine.restore(inventory, snapshot, limits, calibration_warn_before=warn_before)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self.state.discard(exc)
                self._loaded = None
            else:
                log.info(
                    "rules state restored",
                    extra={"open_alerts": len(engine.open_alerts()), "path": str(self.state.path)},
                )
                return engine
        engine = RulesEngine(inventory, limits, calibration_warn_before=warn_before)
        if self.state.reset is None:
            log.info("no rules snapshot yet; starting fresh", extra={"path": str(self.state.path)})
            return engine
        self.note_reset("rules snapshot", f"{self.state.reset}. {self._rebuild(engine)}")
        return engine

    def _rebuild(self, engine: RulesEngine) -> str:
        """Bring back open alerts and bag timers from the store; what was and was not recovered, in words."""
        now = self.clock()
        try:
            adopted = engine.adopt(rebuild.stored_open_alerts(self.store, now))
            events = rebuild.stored_bag_events(self.store, now)
        except (StoreError, KeyError, ValueError, TypeError) as exc:
            log.error("could not rebuild the rules state from the store: %s", exc)
            return (
                f"The store could not be read ({exc}): open alerts and running bag timers are lost and will not "
                "expire; check the bags in the fridges by hand. Excursions in progress are re-detected."
            )
        self._rebuilt = engine.observe(events, now)
        bags = len(engine.running_bags())
        log.warning("rules state rebuilt from the store", extra={"open_alerts": adopted, "running_bags": bags})
        return (
            f"Rebuilt from the store: {adopted} open alert(s) and {bags} running bag timer(s) from {len(events)} "
            "bag event(s). Lost: excursions still within their delay and the silence timers (restarted now); "
            "restored excursion alerts resolve when acknowledged."
        )

    def note_reset(self, what: str, lost: str) -> None:
        """State ``what`` could not be read and was started afresh: raise ``state_reset`` saying ``lost``."""
        self._facts.append(StateReset(what, lost))

    def _restore_recent(self) -> list[Alert]:
        try:
            snapshot = self._loaded or {}
            return [Alert.from_payload(payload) for payload in snapshot.get("recent_resolved", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("recently resolved alerts in the snapshot unreadable (%s); the list starts empty", exc)
            return []

    def _restore_reviews(self) -> ReviewDeadlines:
        """Open review_missed alerts from the snapshot; the last review of each unit from the store as well."""
        reviews = ReviewDeadlines(self.settings.frozen_inventory(), (self._loaded or {}).get("reviews"))
        try:
            for unit, row in self.store.latest("review", "unit").items():
                reviews.learn(unit, row["time"])
        except StoreError as exc:  # the snapshot's last reviews stand; the store is read again next start
            log.error("could not read the last reviews from the store: %s", exc)
        return reviews

    def add_listener(self, listener: AlertListener) -> None:
        """Call ``listener`` after every step (in the worker's thread); register before ``start``."""
        self._listeners.append(listener)

    @property
    def view(self) -> RulesView:
        return self._view

    def _refresh_view(self) -> None:
        running = self.engine.running_bags()
        active = [*self.engine.open_alerts(), *self._locks.open_alerts(), *self._reviews.open_alerts()]
        active += self._report_failures.open_alerts()
        self._view = view_of(active, self._recent, running)
        if self.homeassistant is not None:
            self.homeassistant.bags(running)

    # -- commands from other threads (the HTTP API) -----------------------------------------

    def call(self, action: Callable[[], T], timeout: float = 15.0) -> T:
        """Run ``action`` in the worker's thread (the engine is not thread-safe) and return its result."""
        future: Future[T] = Future()
        self._commands.put((action, future))
        return future.result(timeout)

    def acknowledge(self, ack: Acknowledgement) -> Alert | None:
        """Acknowledge an alert; the updated alert (published, stored, snapshotted), or None if unknown."""
        return self.call(lambda: self._acknowledge(ack))

    def review(self, request: ReviewRequest) -> Review:
        """Record a signed daily review (stored, audited) and resolve the unit's review_missed alert."""
        return self.call(lambda: self._review(request))

    def last_review(self, unit: str) -> datetime | None:
        """When ``unit`` was last reviewed (None: never)."""
        return self._reviews.last_review.get(unit)

    def _review(self, request: ReviewRequest) -> Review:
        now = from_millis(to_millis(self.clock()))
        last = self._reviews.last_review.get(request.figures.unit)
        if last is not None and now <= last:
            now = last + timedelta(milliseconds=1)  # two reviews never share a point (unit, time)
        record = review_record(request, now, 1)
        self.writer.write([record])
        self._emit(self._reviews.signed(record.unit, now))
        self._guarded(lambda: self.audit.reviewed(record), "the audit of a review")
        self._dirty = True
        self._checkpoint(wait=True)
        return record

    def report_outcome(self, report: str, site: str, period: str, error: str | None, details: dict[str, Any]) -> None:
        """Audit a scheduled report's run (``report_run`` or ``report_failed``); a failure opens ``report_failed``,
        a success resolves it."""
        self.call(lambda: self._report_outcome(report, site, period, error, details))

    def _report_outcome(self, report: str, site: str, period: str, error: str | None, details: dict[str, Any]) -> None:
        now = self.clock()
        if error is None:
            transitions = self._report_failures.succeeded(report, period, now)
        else:
            transitions = self._report_failures.failed(report, site, period, error, now)
        self._emit(transitions)
        action = "report_run" if error is None else "report_failed"
        body = {"period": period, "site": site, **details, **({"error": error} if error else {})}
        self._guarded(lambda: self.audit.security(action, "coldchain", body, now, subject=report), "a report's audit")
        self._dirty = True
        self._checkpoint(wait=True)

    def security_event(self, action: str, user: str, details: dict[str, Any]) -> None:
        """Audit a failed signature or a lockout; a lockout also opens the ``signing_locked`` alert."""
        self.call(lambda: self._security_event(action, user, details))

    def _security_event(self, action: str, user: str, details: dict[str, Any]) -> None:
        now = self.clock()
        self.audit.security(action, user, details, now)
        if action == "signing_locked":
            self._emit(self._locks.lock(user, parse_time(details["until"]), now))
            self._checkpoint(wait=True)

    def publish_bag_event(self, bag_id: str, body: dict[str, Any]) -> None:
        """Publish a bag event on the API's topic (stored with ``source`` ``api:<by>``; the engine judges it)."""
        topic = self.publisher.topics.api_bag_events(bag_id)
        self.connection.publish(topic, json.dumps(body).encode()).wait(10.0)

    def _acknowledge(self, ack: Acknowledgement) -> Alert | None:
        now = self.clock()
        transition = self.engine.acknowledge(ack, now)
        for book in (self._reviews, self._report_failures) if transition is None else ():
            own = next((a for a in book.open_alerts() if a.id == ack.alert_id), None)
            if own is not None:  # review_missed and report_failed are kept beside the engine
                acked_own = acknowledge_alert(own, ack, now)
                book.acknowledged(acked_own)
                transition = Transition(acked_own, "updated")
        alert = self._recent.get(ack.alert_id) if transition is None else None
        if alert is not None:
            # a resolved alert keeps "resolved" and records the acknowledgement
            acked = acknowledge_alert(alert, ack, now)
            transition = Transition(replace(acked, state="resolved"), "updated")
        if transition is None:
            return None
        self._emit([transition])
        self._guarded(lambda: self.audit.acknowledged(transition.alert, ack.by, now), "the audit of an acknowledgement")
        self._checkpoint(wait=True)
        return transition.alert

    def _run_commands(self) -> None:
        while True:
            try:
                action, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(action())
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who answers the HTTP request
                future.set_exception(exc)

    def _connected(self, up: bool) -> None:
        self.metrics.broker_connected.labels("rules").set(1 if up else 0)
        if up:
            self._clock_rules_from = time.monotonic() + _BACKLOG_GRACE
            if self.homeassistant is not None:
                self.homeassistant.announce()

    # -- lifecycle -------------------------------------------------------------------------

    def _closed(self) -> None:
        """After the last checkpoint and the disconnect: close the state file and the audit log."""
        self.state.close()
        self.audit.close()

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        """The worker's loop; supervised, so it is entered again after an exception escapes it."""
        if not self._began:
            self._began = True
            source = self.config_source
            self._guarded(lambda: self.audit.config_loaded(self.settings, source), "the audit of the configuration")
            rebuilt, self._rebuilt = self._rebuilt, []
            self._guarded(lambda: self._emit(rebuilt), "the alerts of the rebuilt state")
        next_tick = time.monotonic() + self._tick
        while not self._stopping.is_set():
            self.heartbeat()
            self._run_commands()
            wait = min(_COMMAND_POLL, max(0.0, next_tick - time.monotonic()))
            self._take_input(wait)
            if time.monotonic() >= next_tick:
                next_tick = max(next_tick + self._tick, time.monotonic())
                # the system alerts and the clock rules run while the broker is down: nothing else pages
                self._guarded(self._system_step, "system alerts")
                if self._clock_rules_may_run():
                    self._guarded(self._clock_step, "clock rules")
            if time.monotonic() - self._last_checkpoint >= self._checkpoint_every:
                self._checkpoint()
        self._run_commands()
        if self.feed is not None:
            self._take_input(0.0)  # what ingest handed over before it stopped: judged, then acked below
        self._checkpoint(wait=True, exact=True)

    def _take_input(self, wait: float) -> None:
        """Judge what arrived within ``wait`` seconds: ingest's batches when fed, and our own session's messages
        (when fed, only what an earlier version's subscriptions left queued for it)."""
        own_wait = wait
        if self.feed is not None:
            for batch in self.feed.take(wait):
                self._judge(batch, self.feed.connection)
            own_wait = 0.0
        messages = take_waiting(self.connection.inbox, own_wait, _MAX_BATCH)
        if messages:
            parsed = [ParsedMessage(m, self.parser.parse(m.topic, m.payload, m.received_at)) for m in messages]
            self._judge(parsed, self.connection)

    def _guarded(self, action: Callable[[], None], what: str) -> bool:
        """Run ``action``; False if it failed (logged). The worker outlives a bad batch."""
        try:
            action()
        except WriterStopped:
            log.warning("stopped before the alert records of %s were stored", what)
            return False
        except Exception:  # one bad batch must not stop alerting for every fridge
            log.exception("rules failed on %s", what)
            self.metrics.rules_errors.inc()
            return False
        return True

    def _clock_rules_may_run(self) -> bool:
        if self.feed is not None and self.feed.connection.epoch != self._input_epoch:
            self._input_epoch = self.feed.connection.epoch  # ingest reconnected: its backlog is read first
            self._clock_rules_from = time.monotonic() + _BACKLOG_GRACE
        if self._clock_rules_from is None:
            return True
        if self.feed is not None:
            backlog_read = self.feed.drained() and self.connection.inbox.empty()
        else:
            backlog_read = self.connection.caught_up()
        if backlog_read or time.monotonic() >= self._clock_rules_from:
            self._clock_rules_from = None  # backlog read (or grace over): the clock rules run from now on
            return True
        return False

    def _system_step(self) -> None:
        """Facts about coldchain itself -> system alerts (published, stored, notified like the others)."""
        facts, self._facts = [*self._facts, *self.facts()], []
        if self.partition:
            facts = [partition_fact(fact, self.settings.rules.client_id) for fact in facts]
        self._emit(self.engine.system(facts, self.clock()))

    def _clock_step(self) -> None:
        """The clock rules; listeners hear of every tick (escalations and repeats fall due by the clock)."""
        now = self.clock()
        transitions = self.engine.tick(now) + self._locks.due(now) + self._reviews.due(now)
        if transitions:
            self._emit(transitions)
            return
        now = self.clock()
        for listener in self._listeners:
            listener((), self._view.alerts, now)

    def _judge(self, messages: Sequence[ParsedMessage], connection: MqttConnection) -> None:
        """Judge a batch of parsed messages; they are acked on ``connection`` after the next checkpoint."""
        records: list[ParsedRecord] = []
        bags = self.engine.bag_ledger()
        ours: set[str] = set()
        for item in messages:
            parsed = item.parsed
            if isinstance(parsed, list) and self.partition:
                parsed = self._own(parsed, ours)
            if isinstance(parsed, list):
                events = [record for record in parsed if isinstance(record, BagEvent)]
                if events and bags.admit(events) is not None:
                    continue  # impossible: refused whole (ingest stores the rejection, invalid_sequence)
                records.extend(parsed)
            elif isinstance(parsed, Rejection) and parsed.reason is RejectReason.TS_IN_FUTURE:
                self._facts.append(FutureTimestamps(1))  # a burst of them raises clock_skew
        judged = self._guarded(lambda: self._observe(records), "a batch of messages")
        bag_events = [record for record in records if isinstance(record, BagEvent)]
        if bag_events:
            self._guarded(lambda: self.audit.bag_events(bag_events), "the audit of bag events")
        conflicts, self._conflicts = self._conflicts, []
        if conflicts:
            self._guarded(lambda: self.audit.bag_conflicts(conflicts), "the audit of bag conflicts")
        # A batch the engine cannot judge is acked all the same (logged, counted), so it cannot block the
        # session; only a batch cut short by stopping stays unacked, for redelivery.
        if judged or not self._stopping.is_set():
            self._pending.extend((connection, item.message) for item in messages)
        elif self.feed is not None and connection is self.feed.connection:
            self.feed.done(len(messages))  # let go unacked: the broker redelivers them to ingest
        self._dirty = True
        self._refresh_view()

    def _own(self, parsed: list[ParsedRecord], ours: set[str]) -> list[ParsedRecord]:
        """A partition's share of a message: a bag event naming no unit belongs to the partition that knows
        the bag (its dilution named one of our units); another partition's units were refused by the parser."""
        kept: list[ParsedRecord] = []
        for record in parsed:
            if isinstance(record, BagEvent):
                if record.unit is not None:
                    ours.add(record.bag)
                elif record.bag not in ours and self.engine.bag_status(record.bag) is None:
                    continue
            kept.append(record)
        return kept

    def _observe(self, records: list[ParsedRecord]) -> None:
        transitions = self.engine.observe(records, self.clock())
        self._conflicts = [t.alert for t in transitions if t.alert.kind == "bag_conflict" and t.change == "opened"]
        self._emit(transitions)
        bags = dict.fromkeys(record.bag for record in records if isinstance(record, BagEvent))
        statuses = [status for bag in bags if (status := self.engine.bag_status(bag)) is not None]
        if statuses:
            self.writer.write(statuses)  # measurement bag_timer: the dashboards' "time left"

    def _emit(self, transitions: list[Transition]) -> None:
        if not transitions:
            return
        self.publisher.publish(transitions)
        self._recent.note(transitions)
        self._dirty = True
        self._refresh_view()
        now = self.clock()
        for listener in self._listeners:
            listener(transitions, self._view.alerts, now)

    def _checkpoint(self, wait: bool = False, exact: bool = False) -> None:
        """Persist what changed once the broker holds every alert published so far; then ack.

        Usually a change record (``core/rules_changes.py``; nothing at all when nothing changed), a
        full snapshot when there is none yet or the change log outgrew it. ``exact`` (a clean stop)
        writes the quiet sensors' last-seen exactly rather than coarsely.
        """
        self._last_checkpoint = time.monotonic()
        if not self._dirty and not self._pending and not exact:
            return
        if not self.publisher.all_confirmed(wait):
            return  # not yet: the snapshot must not run ahead of what subscribers can see
        extras = {
            "recent_resolved": [alert.to_payload() for alert in self._recent],
            "signing_locks": self._locks.snapshot(),
            "reviews": self._reviews.snapshot(),
            "report_failures": self._report_failures.snapshot(),
        }
        full = self.state.needs_snapshot
        if full:
            record = {**self.engine.snapshot(), **extras}
        else:
            record = merge_changes(self._unsaved, self.engine.changes(None if exact else self.clock()))
            record.update({key: value for key, value in extras.items() if value != self._saved_extras.get(key)})
        try:
            written = self.state.save(record) if full else (0 if is_empty(record) else self.state.append(record))
        except DiskFull as exc:
            # nothing judged since the last snapshot is acked: the broker keeps it for after a crash
            if not full:
                self._unsaved = record
            self.metrics.disk_full.labels(str(exc.path)).inc()
            if self.problem is None:
                log.error("%s; holding the rules worker's acks until the snapshot can be saved", exc)
            self.problem = str(exc)
            return
        if full:
            self.engine.mark_saved()
        self._unsaved = {}
        self._saved_extras = extras
        if self.problem is not None:
            log.warning("rules snapshot saved again after: %s", self.problem)
            self.problem = None
        if written:
            self.metrics.rules_checkpoints.inc()
            self.metrics.rules_checkpoint_bytes.labels("snapshot" if full else "changes").inc(written)
        for connection, message in self._pending:
            connection.ack(message)
        if self.feed is not None:
            self.feed.done(sum(1 for connection, _ in self._pending if connection is self.feed.connection))
        self.metrics.rules_acked.inc(len(self._pending))
        self._pending = []
        self._dirty = False
