"""Dispatch: alert changes and the clock -> planned notices in the durable outbox -> the notifier.

Registered as a listener of the rules worker, so it runs in the worker's thread after every step
(each batch of messages, each tick, each acknowledgement). For every alert that changed and
every alert still active it asks ``alerts.plan`` what is due given what the outbox already holds,
records the new notices durably (the outbox ignores a notice it already has), logs each with its
reason, and wakes the notifier. Because the outbox is the history, a restart or a redelivered
transition plans nothing twice, and an escalation in progress continues where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from coldchain.adapters.notify import Notifier
from coldchain.adapters.outbox import Outbox
from coldchain.core.alert import Alert, Transition
from coldchain.core.policy import Policy, plan

log = logging.getLogger("coldchain.dispatch")


class Dispatcher:
    """Plans notifications for the alerts the rules worker reports."""

    def __init__(self, policy: Policy, outbox: Outbox, notifier: Notifier) -> None:
        self.policy = policy
        self.outbox = outbox
        self.notifier = notifier

    def __call__(self, transitions: Sequence[Transition], alerts: Sequence[Alert], now: datetime) -> None:
        considered: dict[str, Alert] = {alert.id: alert for alert in alerts if alert.state != "resolved"}
        for transition in transitions:
            considered[transition.alert.id] = transition.alert
        planned = 0
        for alert in considered.values():
            notices = plan(alert, self.outbox.history(alert.id), now, self.policy)
            if not notices:
                continue
            planned += self.outbox.add(notices, now)
            for notice in notices:
                log.info(
                    "notify %s: %s",
                    notice.target,
                    notice.reason,
                    extra={"alert_id": alert.id, "kind": alert.kind, "purpose": notice.purpose, "tier": notice.tier},
                )
        if planned:
            self.notifier.wake()
