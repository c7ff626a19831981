"""Dispatch: alert changes and the clock -> planned notices in the durable outbox -> the notifier.

Registered as a listener of the rules worker, so it runs in the worker's thread after every step
(each batch of messages, each tick, each acknowledgement). For every alert that changed and
every alert still active it asks ``alerts.plan`` what is due given what the outbox already holds,
records the new notices durably (the outbox ignores a notice it already has), logs each with its
reason, and wakes the notifier. Because the outbox is the history, a restart or a redelivered
transition plans nothing twice, and an escalation in progress continues where it was.

While the broker is unreachable, the ``sensor_offline`` alerts the outage explains are grouped under
its one ``broker_unreachable`` page (``policy.grouped_under``), each logged with the reason. An outbox
that cannot be written (disk full) is logged and reported to readiness; the next step plans the same
notices again, since the outbox never recorded them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from coldchain.adapters.notify import Notifier
from coldchain.adapters.outbox import Outbox
from coldchain.adapters.sqlite_files import DiskFull
from coldchain.core.alert import Alert, Transition
from coldchain.core.policy import Notice, Policy, Sent, grouped_under, plan
from coldchain.core.system_rules import Outage

log = logging.getLogger("coldchain.dispatch")


class Dispatcher:
    """Plans notifications for the alerts the rules worker reports."""

    def __init__(
        self,
        policy: Policy,
        outbox: Outbox,
        notifier: Notifier,
        outages: Callable[[], Sequence[Outage]] = tuple,
    ) -> None:
        self.policy = policy
        self.outbox = outbox
        self.notifier = notifier
        self.outages = outages
        self.problem: str | None = None
        """Why notices cannot be recorded now (the outbox's disk is full), for readiness."""
        self._grouped: set[str] = set()
        self._unrecorded: dict[str, list[tuple[Notice, datetime]]] = {}
        """Notices sent from memory while the outbox could not be written, by alert id."""

    def __call__(self, transitions: Sequence[Transition], alerts: Sequence[Alert], now: datetime) -> None:
        considered: dict[str, Alert] = {alert.id: alert for alert in alerts if alert.state != "resolved"}
        for transition in transitions:
            considered[transition.alert.id] = transition.alert
        planned = 0
        outages = self.outages()
        problem: str | None = None
        try:
            self._record_unrecorded()
        except DiskFull as exc:
            problem = str(exc)
        for alert in considered.values():
            try:
                planned += self._plan(alert, outages, now)
            except DiskFull as exc:
                problem = str(exc)
        if problem is not None and self.problem is None:
            log.error("%s; notices are sent from memory and recorded once it can be written", problem)
        self.problem = problem
        if planned:
            self.notifier.wake()

    def _record_unrecorded(self) -> None:
        """Notices sent from memory during a full disk go into the outbox as delivered, once it can be written."""
        for alert_id in list(self._unrecorded):
            for notice, at in self._unrecorded[alert_id]:
                self.outbox.add([notice], at, delivered=True)
            del self._unrecorded[alert_id]

    def _plan(self, alert: Alert, outages: Sequence[Outage], now: datetime) -> int:
        history = self.outbox.history(alert.id)
        history += [Sent(n.target, n.purpose, n.tier, at) for n, at in self._unrecorded.get(alert.id, [])]
        why_not = grouped_under(alert, history, outages, now, was_grouped=alert.id in self._grouped)
        if why_not is not None:
            if alert.id not in self._grouped:
                self.notifier.metrics.notifications_grouped.inc()
            if alert.id not in self._grouped or alert.state == "resolved":
                log.info(
                    "not notified: %s",
                    why_not,
                    extra={"alert_id": alert.id, "kind": alert.kind, "subject": alert.subject, "state": alert.state},
                )
            self._grouped.add(alert.id)
            if alert.state == "resolved":
                self._grouped.discard(alert.id)
            return 0
        notices = plan(alert, history, now, self.policy)
        if not notices:
            return 0
        try:
            planned = self.outbox.add(notices, now)
        except DiskFull:
            # the page must still go out: sent from memory now, recorded once the outbox can be written
            self._unrecorded.setdefault(alert.id, []).extend((notice, now) for notice in notices)
            self.notifier.send_unrecorded(notices, now)
            for notice in notices:
                log.info("notify %s from memory (outbox disk full): %s", notice.target, notice.reason)
            raise
        for notice in notices:
            log.info(
                "notify %s: %s",
                notice.target,
                notice.reason,
                extra={"alert_id": alert.id, "kind": alert.kind, "purpose": notice.purpose, "tier": notice.tier},
            )
        return planned
