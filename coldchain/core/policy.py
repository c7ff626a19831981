"""Who hears about an alert, and when: pure decisions over an alert, what was already sent, and ``now``.

``plan(alert, history, now, policy)`` returns the notices to send now, each with a ``purpose``
(the dedupe key together with the target) and a ``reason`` written for the audit log. What was
planned before is in ``history``; a notice whose (target, purpose) is there is never planned
again, so restarts and redelivered transitions cannot page twice for the same state.

The policy, in the words of the alerting issue:

- Every alert goes to the targets of its route (the first route whose lists all match, plus later
  ones while ``continue_matching``; the default route when none match) when it opens, is
  acknowledged, and resolves.
- A critical alert also pages on-call tier 1 at once; while unacknowledged, every
  ``escalate_after`` it also pages the next tier; every ``repeat_interval`` it repeats to every
  tier paged so far, until acknowledged or resolved.
- A tier pages only while one of its shifts covers the moment. When no tier is on shift at the
  moment a page falls due, the page goes to the default route instead, and the reason says so:
  never silence.
- Everyone notified hears when it is acknowledged and when it resolves.
- An alert first seen already resolved (a buffered upload revealing a past excursion) is still
  sent, to its route and, if critical, to tier 1: the stock may have been harmed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

from coldchain.core.alert import Alert
from coldchain.core.system_rules import Outage
from coldchain.core.wording import say_span, say_time

Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAYS: tuple[Weekday, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class NotifyRoute(Protocol):
    """A route of ``[[notify.routes]]``: empty filters match anything."""

    @property
    def severity(self) -> Sequence[str]: ...
    @property
    def kind(self) -> Sequence[str]: ...
    @property
    def site(self) -> Sequence[str]: ...
    @property
    def unit(self) -> Sequence[str]: ...
    @property
    def targets(self) -> Sequence[str]: ...
    @property
    def continue_matching(self) -> bool: ...


class NotifyConfig(Protocol):
    """What the policy reads of ``[notify]``."""

    @property
    def routes(self) -> Sequence[NotifyRoute]: ...
    @property
    def default_targets(self) -> Sequence[str]: ...


class Shift(Protocol):
    """A weekly shift: on ``days`` from ``start`` to ``end`` (``HH:MM`` local time)."""

    @property
    def days(self) -> Sequence[str]: ...
    @property
    def start(self) -> str: ...
    @property
    def end(self) -> str: ...


class OncallTier(Protocol):
    """People paged for critical alerts, in escalation order."""

    @property
    def name(self) -> str: ...
    @property
    def targets(self) -> Sequence[str]: ...
    @property
    def timezone(self) -> str: ...
    @property
    def shifts(self) -> Sequence[Shift]: ...


class OncallConfig(Protocol):
    """What the policy reads of ``[oncall]``."""

    @property
    def tiers(self) -> Sequence[OncallTier]: ...
    @property
    def escalate_after(self) -> timedelta: ...
    @property
    def repeat_interval(self) -> timedelta: ...


class _Adder(Protocol):
    def __call__(self, targets: Iterable[str], purpose: str, tier: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to one target about one state of one alert."""

    alert: Alert
    target: str
    purpose: str
    """``opened``, ``page-tier-N``, ``page-fallback``, ``repeat-N``, ``acknowledged``, ``resolved``."""
    tier: int
    """On-call tier paged (1-based); 0 for route and fallback notices."""
    reason: str


@dataclass(frozen=True, slots=True)
class Sent:
    """A notice planned earlier (delivered or still being retried)."""

    target: str
    purpose: str
    tier: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Policy:
    """Routes and on-call tiers, from the configuration (any objects with these attributes: the policy
    reads them and never imports the configuration's types)."""

    notify: NotifyConfig
    oncall: OncallConfig


def route_targets(alert: Alert, routes: Sequence[NotifyRoute], default: Sequence[str]) -> list[str]:
    """Targets of the routes ``alert`` matches, in order, without repeats; the default route if none."""
    found: list[str] = []
    for route in routes:
        if (
            (not route.severity or alert.severity in route.severity)
            and (not route.kind or alert.kind in route.kind)
            and (not route.site or alert.site in route.site)
            and (not route.unit or alert.unit in route.unit)
        ):
            found += [t for t in route.targets if t not in found]
            if not route.continue_matching:
                break
    return found or list(default)


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def shift_covers(shift: Shift, zone: ZoneInfo, moment: datetime) -> bool:
    """Whether ``moment`` falls in the weekly ``shift`` (local time of ``zone``; overnight shifts allowed)."""
    local = moment.astimezone(zone)
    minute = local.hour * 60 + local.minute
    start, end = _minutes(shift.start), _minutes(shift.end)
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    if start < end:
        return today in shift.days and start <= minute < end
    # overnight (e.g. 18:00-08:00): the evening part belongs to the day the shift starts
    return (today in shift.days and minute >= start) or (yesterday in shift.days and minute < end)


def on_shift(tier: OncallTier, moment: datetime) -> bool:
    """Whether any of the tier's shifts covers ``moment``."""
    zone = ZoneInfo(tier.timezone)
    return any(shift_covers(shift, zone, moment) for shift in tier.shifts)


def _first(history: Iterable[Sent], prefix: str) -> datetime | None:
    times = [sent.at for sent in history if sent.purpose.startswith(prefix)]
    return min(times) if times else None


def plan(alert: Alert, history: Sequence[Sent], now: datetime, policy: Policy) -> list[Notice]:
    """The notices due for ``alert`` at ``now`` that ``history`` does not already hold."""
    done = {(sent.target, sent.purpose) for sent in history}
    out: list[Notice] = []

    def add(targets: Iterable[str], purpose: str, tier: int, reason: str) -> None:
        for target in targets:
            if (target, purpose) not in done:
                done.add((target, purpose))
                out.append(Notice(alert, target, purpose, tier, reason))

    routes = route_targets(alert, policy.notify.routes, policy.notify.default_targets)
    route_reason = f"{alert.severity} {alert.kind} at {alert.unit}: route"
    paging = alert.severity == "critical" and bool(policy.oncall.tiers)

    if alert.state == "open":
        add(routes, "opened", 0, f"{route_reason} targets on open")
        if paging:
            _page(alert, history, now, policy, add)
    else:
        notified = [sent.target for sent in history]
        change = "acknowledged" if alert.state == "acknowledged" else "resolved"
        if not history:
            # never announced (e.g. a buffered upload revealing a past, finished excursion)
            add(routes, change, 0, f"{route_reason} targets; first notice of this alert, already {change}")
            if paging:
                tier = policy.oncall.tiers[0]
                if on_shift(tier, now):
                    add(tier.targets, change, 1, f"tier 1 ({tier.name}) on shift; first notice, already {change}")
        by = f" by {alert.acknowledged_by}" if alert.acknowledged_by else ""
        add(dict.fromkeys(notified), change, 0, f"{change}{by}: everyone notified of this alert hears it")
    return out


def _page(
    alert: Alert,
    history: Sequence[Sent],
    now: datetime,
    policy: Policy,
    add: _Adder,
) -> None:
    """Tier 1 at once, the next tier every ``escalate_after``, repeats every ``repeat_interval``."""
    oncall = policy.oncall
    started = _first(history, "page-") or now
    elapsed = max(now - started, timedelta(0))
    due_tiers = min(len(oncall.tiers), 1 + int(elapsed / oncall.escalate_after))
    paged_any = False
    for index in range(due_tiers):
        tier = oncall.tiers[index]
        purpose = f"page-tier-{index + 1}"
        if on_shift(tier, now):
            why = (
                "critical alert: tier 1 at once"
                if index == 0
                else (f"unacknowledged for {say_span(oncall.escalate_after * index)}: escalated to tier {index + 1}")
            )
            add(tier.targets, purpose, index + 1, f"{why} ({tier.name}, on shift)")
            paged_any = True
        elif any((sent.purpose == purpose) for sent in history):
            paged_any = True
    if not paged_any:
        add(
            policy.notify.default_targets,
            "page-fallback",
            0,
            f"critical alert but no shift of the {due_tiers} tier(s) due covers this moment: default route instead",
        )
    # each paged target hears a repeat every repeat_interval after it was first paged
    first_paged: dict[str, Sent] = {}
    for sent in sorted(history, key=lambda item: item.at):
        if sent.purpose.startswith("page-"):
            first_paged.setdefault(sent.target, sent)
    for target, page in first_paged.items():
        repeats = int(max(now - page.at, timedelta(0)) / oncall.repeat_interval)
        if repeats >= 1:
            add(
                [target],
                f"repeat-{repeats}",
                page.tier,
                f"unacknowledged {say_span(oncall.repeat_interval * repeats)} after paging {target}: repeat {repeats}",
            )


GROUP_GRACE = timedelta(minutes=2)
"""How long after the broker returns a ``sensor_offline`` stays grouped under the outage: the time the
sensors' queued readings take to arrive. A sensor still silent after it is notified as usual."""


def grouped_under(
    alert: Alert,
    history: Sequence[Sent],
    outages: Sequence[Outage],
    now: datetime,
    *,
    was_grouped: bool = False,
    grace: timedelta = GROUP_GRACE,
) -> str | None:
    """Why ``alert`` is not notified on its own, or None: like Alertmanager's inhibit rules.

    A ``sensor_offline`` alert nobody was told of yet is explained by a broker outage that lasts, or
    that ended less than ``grace`` ago: the outage's one ``broker_unreachable`` page stands for it.
    ``was_grouped`` (it was grouped before) keeps its resolution quiet too. The reason is for the log.
    """
    if alert.kind != "sensor_offline" or history:
        return None
    if was_grouped and alert.state == "resolved":
        return "resolved while grouped under broker_unreachable: it was never paged on its own"
    for outage in reversed(outages):
        if outage.end is None or now < outage.end + grace:
            since = f"broker {outage.subject} unreachable since {say_time(outage.start)}"
            after = "" if outage.end is None else f", back at {say_time(outage.end)}"
            return f"explained by the broker outage ({since}{after}): grouped under broker_unreachable, one page"
    return None
