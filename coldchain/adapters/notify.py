"""The delivery edge: notices from the outbox to people, through apprise URLs.

One worker thread per notify target (plus the built-in ``log`` target) takes the target's due
notices from the ``Outbox`` and sends each with apprise, so a channel that fails or hangs delays
only itself. An attempt ends in one of three outcomes, each recorded in the outbox, written
durably to measurement ``notification`` (``NotificationAttempt``) and counted in
``coldchain_notifications{channel,outcome}``:

- ``sent``: apprise accepted the notice;
- ``failed``: it did not; the error says why (apprise's own warnings for this call) and the notice
  is retried after a backoff that starts at 1 s and doubles up to ``notify.retry_max``;
- ``gave_up``: it failed once ``notify.give_up_after`` had passed since the notice was planned;
  logged as an ERROR, never retried.

Delivery is at least once: a crash between a channel accepting a notice and the outbox marking it
delivered sends it again on restart. Planning is exactly once per (alert, target, purpose), so
restarts and redelivered transitions never page twice for the same state.

Apprise URLs may hold passwords and tokens: only their privacy form (``url(privacy=True)``) is
ever logged. Each attempt uses a fresh ``apprise.Apprise`` so apprise's per-instance throttle
(5.5 s between two e-mails by default) never holds back a retry or a second alert; pacing is the
outbox backoff's job.

Wiring (the rules worker, or whatever plans notices)::

    outbox = Outbox(settings.notify.state_path)
    key = load_link_key(settings.api, settings.notify.state_path.parent)
    signer = LinkSigner(key, settings.api.link_valid_for)
    render = Renderer(settings.api, signer, unit_names={u.id: u.display_name for u in settings.units})
    notifier = Notifier(settings.notify, outbox, writer, metrics, render)
    notifier.start()
    ...  # coldchain.dispatch.Dispatcher plans notices into the outbox, then calls notifier.wake()
    notifier.stop(); outbox.close()
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import apprise

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.notice_text import Renderer, utc_now
from coldchain.adapters.outbox import Outbox, OutboxEntry
from coldchain.adapters.sqlite_files import DiskFull
from coldchain.adapters.store.durable import DurableWriter, WriterStopped
from coldchain.config import LOG_TARGET, ApiConfig, NotifyConfig, NotifyTarget
from coldchain.core.alert import Alert
from coldchain.core.policy import Notice
from coldchain.core.records import NotificationAttempt, NotificationOutcome
from coldchain.core.times import from_millis, to_millis

log = logging.getLogger("coldchain.notify")


FIRST_RETRY = timedelta(seconds=1)
"""Backoff after the first failed attempt; it doubles after each further one, up to ``retry_max``."""

SEND_TIMEOUT = 60.0
"""Seconds apprise may spend on one attempt before it counts as failed."""

POLL_SECONDS = 1.0
"""Longest a worker sleeps before looking for due retries again (``wake`` ends the sleep at once)."""

ERROR_LIMIT = 500
"""Characters of an error kept in the outbox and the store."""

CHANNELS: dict[str, str] = {
    "mailto": "email",
    "mailtos": "email",
    "json": "webhook",
    "jsons": "webhook",
    "slack": "slack",
    "msteams": "teams",
    "ntfy": "ntfy",
    "ntfys": "ntfy",
    "pagerduty": "pagerduty",
    "twilio": "sms",
    "log": "log",
}
"""Channel (a bounded tag value) of each apprise URL scheme; other schemes are their own channel."""

_END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def channel_of(url: str) -> str:
    """The channel of an apprise URL, from its scheme: ``mailtos://…`` is ``email``, ``json://…`` ``webhook``."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        return "unknown"
    scheme = scheme.lower()
    return CHANNELS.get(scheme, scheme)


def backoff(attempts: int, retry_max: timedelta) -> timedelta:
    """Wait after the ``attempts + 1``-th failed attempt: 1 s, 2 s, 4 s, … capped at ``retry_max``."""
    wait: timedelta = FIRST_RETRY * (2 ** min(max(attempts, 0), 40))
    return min(wait, retry_max)


class DeliveryError(Exception):
    """A channel did not take a notice; the message says why, without secrets."""


def _notify_type(alert: Alert) -> apprise.NotifyType:
    if alert.state == "resolved":
        return apprise.NotifyType.SUCCESS
    if alert.state == "acknowledged":
        return apprise.NotifyType.INFO
    return apprise.NotifyType.FAILURE if alert.severity == "critical" else apprise.NotifyType.WARNING


@dataclass(eq=False)
class _Worker:
    """One target's delivery thread and what it needs."""

    name: str
    channel: str
    url: str | None
    """The apprise URL (a secret); None for the log target and for targets no longer configured."""
    shown: str
    """What logs may say about the URL (its privacy form)."""
    configured: bool = True
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    unmarked: dict[int, Callable[[], None]] = field(default_factory=dict)
    """Outbox entries sent (or given up) whose outcome could not be written yet (disk full): never resent."""
    unrecorded: list[tuple[datetime, OutboxEntry]] = field(default_factory=list)
    """Notices the outbox could not take (disk full), kept in memory: (next attempt, entry)."""


def _worker_for(target: NotifyTarget) -> _Worker:
    url = target.url.get_secret_value()
    channel = channel_of(url)
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        scheme = url.partition("://")[0] or "?"
        log.error(
            "notify target %r: apprise cannot use its URL (scheme %r); its notices will fail and be given up",
            target.name,
            scheme,
            extra={"target": target.name, "channel": channel},
        )
        return _Worker(target.name, channel, url, f"{scheme}://…")
    return _Worker(target.name, channel, url, str(plugin.url(privacy=True)))


class Notifier:
    """Delivers the outbox's notices, one thread per target; see the module docstring."""

    def __init__(
        self,
        config: NotifyConfig,
        outbox: Outbox,
        writer: DurableWriter,
        metrics: Metrics,
        render: Callable[[OutboxEntry], tuple[str, str]] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.writer = writer
        self.metrics = metrics
        self.render = render if render is not None else Renderer(ApiConfig(), clock=clock)
        self.clock = clock
        self._workers: dict[str, _Worker] = {LOG_TARGET: _Worker(LOG_TARGET, "log", None, "log")}
        for target in config.targets:
            self._workers[target.name] = _worker_for(target)
        self._stopping = threading.Event()
        self._memory_ids = 0
        self._memory_lock = threading.Lock()
        self.heartbeat: Callable[[], None] = lambda: None
        """Beaten by each target's loop (set by the service's supervisor: its thread names the role)."""
        self._stamp_lock = threading.Lock()
        self._last_ms = 0
        metrics.bind_outbox(self._pending)

    def _pending(self) -> float:
        """The pending gauge's value; NaN once the outbox is closed (a scrape must not fail for it)."""
        try:
            return float(self.outbox.pending_count())
        except sqlite3.Error:
            return float("nan")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, spawn: Callable[[str, Callable[[], None]], threading.Thread] | None = None) -> None:
        """Start one worker per target (in ``spawn``'s supervised threads when given); notices of targets
        no longer configured are given up, loudly."""
        for name, count in self.outbox.pending_targets().items():
            if name not in self._workers:
                log.error(
                    "%d pending notice(s) for notify target %r, which is not configured any more: giving them up",
                    count,
                    name,
                    extra={"target": name},
                )
                self._workers[name] = _Worker(name, "unknown", None, "(not configured)", configured=False)
        for worker in self._workers.values():
            if spawn is not None:
                worker.thread = spawn(f"notify:{worker.name}", functools.partial(self._run, worker))
                continue
            worker.thread = threading.Thread(
                target=self._run, args=(worker,), name=f"notify-{worker.name}", daemon=True
            )
            worker.thread.start()

    def send_unrecorded(self, notices: Sequence[Notice], now: datetime) -> None:
        """Deliver notices the outbox could not record (its disk is full), from memory: best effort, so the
        page still goes out; the dispatcher records them as delivered once the outbox can be written."""
        for notice in notices:
            worker = self._workers.get(notice.target)
            if worker is None:
                continue
            with self._memory_lock:
                self._memory_ids -= 1
                entry = OutboxEntry(
                    self._memory_ids, notice.alert, notice.target, notice.purpose, notice.tier, notice.reason, 0, now
                )
                worker.unrecorded.append((now, entry))
        self.wake()

    def wake(self) -> None:
        """New notices were added: every worker looks for due ones now."""
        for worker in self._workers.values():
            worker.wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers; a worker stuck in a send is left to finish (its notice stays pending if unmarked)."""
        self._stopping.set()
        self.wake()
        for worker in self._workers.values():
            if worker.thread is not None:
                worker.thread.join(timeout)
                if worker.thread.is_alive():
                    log.warning("notify target %r still sending at stop; left behind", worker.name)

    # -- the worker loop -------------------------------------------------------------------

    def _run(self, worker: _Worker) -> None:
        limit = 50
        while not self._stopping.is_set():
            self.heartbeat()
            worker.wake.clear()  # before looking: a wake() during the pass makes another pass
            try:
                # a target no longer configured has all its pending notices given up at once
                now = self.clock() if worker.configured else _END_OF_TIME
                self._retry_marks(worker)
                self._send_unrecorded(worker, now)
                entries = [e for e in self.outbox.due(worker.name, now, limit) if e.id not in worker.unmarked]
                for entry in entries:
                    if self._stopping.is_set():
                        return
                    self._attempt(worker, entry)
            except WriterStopped:
                return
            except Exception:
                log.exception("notify target %r: unexpected error; retrying in a second", worker.name)
                self._stopping.wait(POLL_SECONDS)
                continue
            if not worker.configured and not entries:
                return
            if len(entries) < limit:
                worker.wake.wait(POLL_SECONDS)

    def _retry_marks(self, worker: _Worker) -> None:
        for entry_id, mark in list(worker.unmarked.items()):
            try:
                mark()
            except DiskFull:
                return
            del worker.unmarked[entry_id]

    def _send_unrecorded(self, worker: _Worker, now: datetime) -> None:
        with self._memory_lock:
            waiting, worker.unrecorded = worker.unrecorded, []
        later: list[tuple[datetime, OutboxEntry]] = []
        for due, entry in waiting:
            if due > now:
                later.append((due, entry))
            elif self._attempt(worker, entry) == "failed":
                retry = now + backoff(entry.attempts, self.config.retry_max)
                later.append((retry, replace(entry, attempts=entry.attempts + 1)))
        with self._memory_lock:
            worker.unrecorded[:0] = later

    def _mark(self, worker: _Worker, entry: OutboxEntry, mark: Callable[[], None]) -> None:
        """Record an attempt's outcome in the outbox; if its disk is full, remember it (never send twice)."""
        if entry.id < 0:
            return  # a notice kept in memory: the dispatcher records it once the outbox can be written
        try:
            mark()
        except DiskFull as exc:
            log.error("%s; the notice's outcome is kept in memory until it can be written", exc)
            worker.unmarked[entry.id] = mark

    def _stamp(self) -> datetime:
        """Now, to the millisecond, strictly after every earlier stamp (no two attempts share a point)."""
        with self._stamp_lock:
            self._last_ms = max(to_millis(self.clock()), self._last_ms + 1)
            return from_millis(self._last_ms)

    def _attempt(self, worker: _Worker, entry: OutboxEntry) -> NotificationOutcome:
        """Try one notice once; mark it in the outbox, record and count the attempt; the outcome."""
        error: str | None = None
        try:
            if not worker.configured:
                raise DeliveryError(f"no notify target named {worker.name!r} is configured")
            title, body = self.render(entry)
            if worker.url is None:
                log.warning(
                    "%s\n%s",
                    title,
                    body,
                    extra={"alert_id": entry.alert.id, "target": worker.name, "purpose": entry.purpose},
                )
            else:
                self._send(worker, entry.alert, title, body)
        except DeliveryError as exc:
            error = str(exc)[:ERROR_LIMIT]
        except Exception as exc:
            log.exception("notify target %r: could not build or send a notice", worker.name)
            error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]

        at = self._stamp()
        where = {"alert_id": entry.alert.id, "target": worker.name, "purpose": entry.purpose, "url": worker.shown}
        outcome: NotificationOutcome
        if error is None:
            outcome = "sent"
            self._mark(worker, entry, lambda: self.outbox.delivered(entry.id, at))
            log.info("notice sent to %s (%s)", worker.name, entry.purpose, extra=where)
        elif not worker.configured or at - entry.created_at >= self.config.give_up_after:
            outcome = "gave_up"
            self._mark(worker, entry, lambda: self.outbox.gave_up(entry.id, at, error))
            log.error(
                "GAVE UP notifying %s of alert %s (%s) after %d attempt(s): %s",
                worker.name,
                entry.alert.id,
                entry.purpose,
                entry.attempts + 1,
                error,
                extra=where,
            )
        else:
            outcome = "failed"
            delay = backoff(entry.attempts, self.config.retry_max)
            with contextlib.suppress(DiskFull):  # not recorded: the attempt is simply made again
                self.outbox.failed(entry.id, at, error, at + delay)
            log.warning(
                "notice to %s failed (attempt %d), retrying in %.0fs: %s",
                worker.name,
                entry.attempts + 1,
                delay.total_seconds(),
                error,
                extra=where,
            )
        self.metrics.notifications.labels(worker.channel, outcome).inc()
        alert = entry.alert
        self.writer.write(
            [
                NotificationAttempt(
                    alert_id=alert.id,
                    kind=alert.kind,
                    severity=alert.severity,
                    site=alert.site,
                    unit=alert.unit,
                    target=worker.name,
                    channel=worker.channel,
                    purpose=entry.purpose,
                    tier=entry.tier,
                    outcome=outcome,
                    error=error,
                    attempt=entry.attempts + 1,
                    at=at,
                )
            ]
        )
        return outcome

    def _send(self, worker: _Worker, alert: Alert, title: str, body: str) -> None:
        """Send through apprise; DeliveryError with apprise's own reasons when it fails."""
        sender = apprise.Apprise()
        if worker.url is None or not sender.add(worker.url):
            raise DeliveryError(f"apprise cannot use the URL of notify target {worker.name!r} ({worker.shown})")
        try:
            result = sender.notify(
                body=body,
                title=title,
                notify_type=_notify_type(alert),
                body_format=apprise.NotifyFormat.TEXT,
                timeout=SEND_TIMEOUT,
            )
        except Exception as exc:  # apprise reports failures in its result; anything raised is a bug or bad input
            raise DeliveryError(f"apprise raised {type(exc).__name__}: {exc}") from exc
        with result:
            if result:
                return
            # This call's own log entries (apprise captures them per call, so other targets'
            # threads never leak into them); the global LogCapture would mix all threads.
            reasons = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
            text = "; ".join(dict.fromkeys(reasons)) or f"apprise reported {result.status.name.lower()}"
            raise DeliveryError(text)


def send_files(target: NotifyTarget, title: str, body: str, paths: Sequence[Path]) -> bool:
    """Send a message with ``paths`` attached to ``target`` (scheduled reports); False when its channel takes no
    files (the message is sent without them). DeliveryError with apprise's reasons when it fails."""
    url = target.url.get_secret_value()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise DeliveryError(f"apprise cannot use the URL of notify target {target.name!r} ({channel_of(url)})")
    attached = bool(getattr(plugin, "attachment_support", False))
    sender = apprise.Apprise()
    sender.add(plugin)
    attach = apprise.AppriseAttachment()
    for path in paths if attached else ():
        attach.add(str(path))
    try:
        result = sender.notify(
            body=body,
            title=title,
            body_format=apprise.NotifyFormat.TEXT,
            attach=attach if attached else None,
            timeout=SEND_TIMEOUT,
        )
    except Exception as exc:  # apprise reports failures in its result; anything raised is a bug or bad input
        raise DeliveryError(f"apprise raised {type(exc).__name__}: {exc}") from exc
    with result:
        if not result:
            reasons = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
            raise DeliveryError("; ".join(dict.fromkeys(reasons)) or f"apprise reported {result.status.name.lower()}")
    return attached
