"""What a notice says: the title and body of a notification, worded for a pharmacist woken at 3 a.m."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from coldchain.adapters.http.ack_links import LinkSigner
from coldchain.adapters.outbox import OutboxEntry
from coldchain.config import LOG_TARGET, ApiConfig
from coldchain.core.alert import Alert
from coldchain.core.wording import KIND_WORDS, VALUE_UNITS, say_span, say_time


def utc_now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class Renderer:
    """Title and body of a notice: what a pharmacist woken at 3 a.m. needs to act on it.

    ``Renderer(api, signer)(entry)`` returns ``(title, body)``. The title reads
    ``[CRITICAL] Freezing — Infusion fridge A (t-001)`` (``[RESOLVED]`` / ``[ACKNOWLEDGED]`` for
    those states; a repeat adds ``(repeat 2)``, an escalation ``(escalated to tier 2)``). The body
    holds the alert's message, unit, site, sensor or bag, since when, the value, the affected bags,
    the state (who acknowledged, the disposition and note), why this recipient gets it and the
    alert id. While nobody has acknowledged the alert (resolved ones included: the stock may have
    been harmed), and when ``api.public_url`` is set and a ``signer`` is given, it ends with
    ``<public_url>/ack/<token>``: a link bound to this alert and this target, valid for the
    signer's ``valid_for`` from the moment of rendering (each retry renders a fresh one); never
    for the built-in ``log`` target.

    ``unit_names`` maps unit ids to what staff call them (``Unit.display_name``); ``clock``
    gives the moment links are issued at.
    """

    def __init__(
        self,
        api: ApiConfig,
        signer: LinkSigner | None = None,
        *,
        unit_names: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.public_url = api.public_url.rstrip("/")
        self.signer = signer
        self.unit_names = dict(unit_names or {})
        self.clock = clock

    def __call__(self, entry: OutboxEntry) -> tuple[str, str]:
        return self.title(entry), self.body(entry)

    def unit_name(self, alert: Alert) -> str:
        return self.unit_names.get(alert.unit) or alert.unit

    def title(self, entry: OutboxEntry) -> str:
        """``[CRITICAL] Freezing — Infusion fridge A (t-001)``, with the state or repeat when relevant."""
        alert = entry.alert
        if alert.state == "resolved":
            prefix = "RESOLVED"
        elif alert.state == "acknowledged":
            prefix = "ACKNOWLEDGED"
        else:
            prefix = alert.severity.upper()
        what = KIND_WORDS.get(alert.kind, alert.kind.replace("_", " ").capitalize())
        title = f"[{prefix}] {what} — {self.unit_name(alert)} ({alert.subject})"
        if entry.purpose.startswith("repeat-"):
            title += f" (repeat {entry.purpose.removeprefix('repeat-')})"
        elif entry.purpose.startswith("page-tier-") and entry.purpose != "page-tier-1":
            title += f" (escalated to tier {entry.purpose.removeprefix('page-tier-')})"
        return title

    def ack_link(self, entry: OutboxEntry) -> str | None:
        """``<public_url>/ack/<token>`` for this alert and target; None when links are not configured, and
        for the ``log`` target (a service log is no place for a token that acknowledges alerts)."""
        if not self.public_url or self.signer is None or entry.target == LOG_TARGET:
            return None
        token = self.signer.issue(entry.alert.id, entry.target, self.clock())
        return f"{self.public_url}/ack/{token}"

    def body(self, entry: OutboxEntry) -> str:
        """Plain text, one fact per line."""
        alert = entry.alert
        lines = [alert.message, ""]
        unit_name = self.unit_name(alert)
        lines.append(f"Unit: {unit_name} ({alert.unit})" if unit_name != alert.unit else f"Unit: {alert.unit}")
        lines.append(f"Site: {alert.site}")
        if alert.sensor is not None:
            lines.append(f"Sensor: {alert.sensor}")
        if alert.bag is not None:
            lines.append(f"Bag: {alert.bag}")
        since = f"Since: {say_time(alert.started_at, seconds=True)}"
        if alert.state != "resolved":
            since += f" ({say_span(self.clock() - alert.started_at, to_the_minute=True)} ago)"
        lines.append(since)
        if alert.value is not None:
            unit = VALUE_UNITS.get(alert.kind)
            lines.append(f"Value: {alert.value:g} {unit}" if unit else f"Value: {alert.value:g}")
        bags = ", ".join(alert.affected_bags) if alert.affected_bags else "none recorded"
        lines.append(f"Affected bags: {bags}")
        lines.append(f"State: {alert.state}")
        if alert.resolved_at is not None:
            took = say_span(alert.resolved_at - alert.started_at, to_the_minute=True)
            lines.append(f"Resolved: {say_time(alert.resolved_at, seconds=True)} (after {took})")
        if alert.acknowledged_by is not None:
            at = f" at {say_time(alert.acknowledged_at, seconds=True)}" if alert.acknowledged_at is not None else ""
            lines.append(f"Acknowledged by: {alert.acknowledged_by}{at}")
        if alert.disposition:
            lines.append(f"Disposition: {alert.disposition}")
        if alert.signature is not None:
            sig = alert.signature
            lines.append(f"Signed by: {sig.full_name} ({sig.name}) at {say_time(sig.at, seconds=True)}: {sig.meaning}")
        if alert.note:
            lines.append(f"Note: {alert.note}")
        lines.append(f"Why you get this: {entry.reason}")
        lines.append(f"Alert id: {alert.id}")
        if alert.acknowledged_by is None:
            # resolved alerts too: the stock may have been harmed, someone must decide what to do with it
            link = self.ack_link(entry)
            if link is not None:
                valid = (
                    f" (valid {say_span(self.signer.valid_for, to_the_minute=True)})" if self.signer is not None else ""
                )
                lines += ["", f"Acknowledge{valid}: {link}"]
        return "\n".join(lines)
