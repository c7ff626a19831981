"""The delivery edge: real SMTP (aiosmtpd) and webhook (pytest-httpserver) receivers, attempts in a real influxd.

The pure parts (channel names, backoff, rendering, the ``notification`` record) are tested without
servers; the rest starts an SMTP server in this process on a free port, uses pytest-httpserver's
IPv4 receiver for ``json://`` webhooks and checks every attempt in measurement ``notification``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from coldchain.adapters.http.ack_links import LinkError, LinkSigner
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.notice_text import Renderer
from coldchain.adapters.notify import Notifier, backoff, channel_of
from coldchain.adapters.outbox import Outbox, OutboxEntry
from coldchain.adapters.store import codec as record_codec
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.influx import InfluxStore, quote_string
from coldchain.adapters.store.lineprotocol import encode
from coldchain.adapters.store.spool import Spool
from coldchain.config import ApiConfig, InfluxConfig, NotifyConfig, NotifyTarget
from coldchain.core.alert import Alert
from coldchain.core.policy import Notice
from coldchain.core.records import NotificationAttempt
from coldchain.core.signature import Signature
from tests.publishing import wait_for
from tests.samples import T0, freezing_alert
from tests.servers import Influxd, free_ports

KEY = b"k" * 32


def make_alert(aid: str | None = None, state: str = "open", **changes: object) -> Alert:
    return freezing_alert(aid or uuid.uuid4().hex[:20], state, **changes)


def entry(alert: Alert, target: str = "pharmacist", purpose: str = "opened", tier: int = 0) -> OutboxEntry:
    return OutboxEntry(1, alert, target, purpose, tier, "critical freezing at fridge-a: route targets on open", 0, T0)


# -- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "channel"),
    [
        ("mailto://user:pw@example.org", "email"),  # plain SMTP
        ("mailtos://user:pw@example.org", "email"),  # SMTP over TLS is still e-mail
        ("json://127.0.0.1:8000/hook", "webhook"),  # generic JSON webhook
        ("JSONS://hooks.example.org/x", "webhook"),  # schemes are case-insensitive
        ("slack://T1/B1/abc", "slack"),
        ("msteams://a/b/c", "teams"),
        ("ntfy://topic", "ntfy"),
        ("ntfys://ntfy.example.org/topic", "ntfy"),  # TLS variant
        ("pagerduty://key@routing", "pagerduty"),
        ("twilio://sid:token@+15551234567/+15557654321", "sms"),  # Twilio is how we send SMS
        ("discord://a/b", "discord"),  # unmapped schemes are their own channel
        ("not a url", "unknown"),  # no scheme at all
    ],
)
def test_channel_comes_from_the_url_scheme(url: str, channel: str) -> None:
    """The channel tag is derived from the apprise URL scheme, never from the (secret) rest of it."""
    assert channel_of(url) == channel


@pytest.mark.parametrize(
    ("attempts", "retry_max", "wait"),
    [
        (0, timedelta(minutes=10), timedelta(seconds=1)),  # first failure: 1 s
        (1, timedelta(minutes=10), timedelta(seconds=2)),  # then doubling
        (5, timedelta(minutes=10), timedelta(seconds=32)),
        (12, timedelta(minutes=10), timedelta(minutes=10)),  # capped at retry_max
        (10_000, timedelta(minutes=10), timedelta(minutes=10)),  # no overflow after days of failures
        (0, timedelta(milliseconds=500), timedelta(milliseconds=500)),  # a cap below 1 s wins at once
    ],
)
def test_backoff_starts_at_a_second_doubles_and_is_capped(attempts: int, retry_max: timedelta, wait: timedelta) -> None:
    """Retries wait 1 s, 2 s, 4 s, … never more than retry_max."""
    assert backoff(attempts, retry_max) == wait


@pytest.mark.parametrize(
    ("state", "purpose", "title"),
    [
        ("open", "opened", "[CRITICAL] Freezing — Infusion fridge A (t-001)"),
        ("open", "page-tier-1", "[CRITICAL] Freezing — Infusion fridge A (t-001)"),  # tier 1 is the first page
        ("open", "page-tier-2", "[CRITICAL] Freezing — Infusion fridge A (t-001) (escalated to tier 2)"),
        ("open", "repeat-2", "[CRITICAL] Freezing — Infusion fridge A (t-001) (repeat 2)"),
        ("acknowledged", "acknowledged", "[ACKNOWLEDGED] Freezing — Infusion fridge A (t-001)"),
        ("resolved", "resolved", "[RESOLVED] Freezing — Infusion fridge A (t-001)"),
    ],
)
def test_title_names_severity_or_state_what_where_and_repeat(state: str, purpose: str, title: str) -> None:
    """Titles say how bad, what, which fridge (by its staff name) and which sensor, and mark repeats."""
    render = Renderer(ApiConfig(), unit_names={"fridge-a": "Infusion fridge A"}, clock=lambda: T0)
    assert render.title(entry(make_alert(state=state), purpose=purpose)) == title


def test_warning_title_and_unknown_unit_name_fall_back_to_ids() -> None:
    """A warning says WARNING; a unit without a configured name is shown by its id."""
    alert = make_alert(kind="sensor_offline", severity="warning", value=None)
    assert Renderer(ApiConfig()).title(entry(alert)) == "[WARNING] Sensor offline — fridge-a (t-001)"


def test_body_has_what_a_pharmacist_needs_and_an_ack_link_for_this_alert_only() -> None:
    """The body names message, unit, site, sensor, since, value, bags, state, reason and id, plus a working ack link."""
    now = T0 + timedelta(minutes=35)
    signer = LinkSigner(KEY, timedelta(hours=24))
    api = ApiConfig(public_url="https://coldchain.example.org/", link_secret=SecretStr(KEY.decode()))
    render = Renderer(api, signer, unit_names={"fridge-a": "Infusion fridge A"}, clock=lambda: now)
    alert = make_alert("a-123")

    title, body = render(entry(alert, target="pharmacist-email"))

    assert title == "[CRITICAL] Freezing — Infusion fridge A (t-001)"
    for line in [
        "Infusion fridge A at or below 0.0 °C (reading -0.5 °C)",
        "Unit: Infusion fridge A (fridge-a)",
        "Site: main-pharmacy",
        "Sensor: t-001",
        "Since: 2026-11-30 02:10:00 UTC (35 min ago)",
        "Value: -0.5 °C",
        "Affected bags: B-0042, B-0043",
        "State: open",
        "Why you get this: critical freezing at fridge-a: route targets on open",
        "Alert id: a-123",
    ]:
        assert line in body.splitlines(), line
    match = re.search(r"^Acknowledge \(valid 24 h\): https://coldchain\.example\.org/ack/(\S+)$", body, re.MULTILINE)
    assert match is not None, body
    claim = signer.check(match.group(1), now, alert_id="a-123")
    assert (claim.alert_id, claim.recipient) == ("a-123", "pharmacist-email")
    with pytest.raises(LinkError, match="another alert"):
        signer.check(match.group(1), now, alert_id="a-456")


def test_body_of_an_acknowledged_bag_alert_has_who_what_and_no_link() -> None:
    """Bag alerts name the bag; acks say who, when, the signed disposition and note; an acknowledged alert: no link."""
    alert = make_alert(
        kind="bag_expired",
        subject="B-0042",
        sensor=None,
        bag="B-0042",
        value=None,
        state="acknowledged",
        acknowledged_by="j.doe",
        acknowledged_at=T0 + timedelta(minutes=3),
        disposition="discarded",
        note="bag thrown away",
        affected_bags=(),
        signature=Signature(
            "x-s1", "j.doe", "Jane Doe, PharmD", T0 + timedelta(minutes=3), "disposition: discarded"
        ),
    )
    api = ApiConfig(public_url="https://coldchain.example.org")
    _, body = Renderer(api, LinkSigner(KEY, timedelta(hours=1)))(entry(alert, purpose="acknowledged"))
    lines = body.splitlines()
    for line in [
        "Bag: B-0042",
        "Acknowledged by: j.doe at 2026-11-30 02:13:00 UTC",
        "Disposition: discarded",
        "Signed by: Jane Doe, PharmD (j.doe) at 2026-11-30 02:13:00 UTC: disposition: discarded",
        "Note: bag thrown away",
        "Affected bags: none recorded",
    ]:
        assert line in lines, line
    assert not any(line.startswith(("Sensor:", "Value:")) for line in lines)
    assert "/ack/" not in body


@pytest.mark.parametrize(
    ("api", "signer", "alert", "target", "linked"),
    [
        # a resolved excursion nobody acknowledged still needs a decision about the stock
        (ApiConfig(public_url="https://c.example.org"), True, make_alert(state="resolved", resolved_at=T0), "p", True),
        (ApiConfig(), True, make_alert(), "p", False),  # no public_url: nowhere to link to
        (ApiConfig(public_url="https://c.example.org"), False, make_alert(), "p", False),  # no key: no token
        (ApiConfig(public_url="https://c.example.org"), True, make_alert(), "log", False),  # no tokens in logs
    ],
)
def test_ack_link_only_when_configured_unacknowledged_and_not_for_the_log(
    api: ApiConfig, signer: bool, alert: Alert, target: str, linked: bool
) -> None:
    """The link appears exactly when it can work and is useful, and never in the service log."""
    render = Renderer(api, LinkSigner(KEY, timedelta(hours=1)) if signer else None, clock=lambda: T0)
    _, body = render(entry(alert, target=target))
    assert ("/ack/" in body) is linked
    if alert.state == "resolved":
        assert "Resolved: 2026-11-30 02:10:00 UTC (after under 1 min)" in body.splitlines()


def attempt_record(**changes: object) -> NotificationAttempt:
    values: dict[str, object] = {
        "alert_id": "a-123",
        "kind": "freezing",
        "severity": "critical",
        "site": "main pharmacy",
        "unit": "fridge-a",
        "target": "pharmacist-email",
        "channel": "email",
        "purpose": "page-tier-1",
        "tier": 1,
        "outcome": "failed",
        "error": 'Connection error while submitting email to "127.0.0.1"',
        "attempt": 2,
        "at": datetime(2026, 11, 30, 2, 10, 0, 123_000, tzinfo=UTC),
    }
    values.update(changes)
    return NotificationAttempt(**values)  # type: ignore[arg-type]


def test_notification_attempt_line_protocol() -> None:
    """An attempt is one point: bounded values as tags, ids and text as fields, ints typed, None left out."""
    assert encode(attempt_record()) == (
        "notification,channel=email,kind=freezing,outcome=failed,severity=critical,site=main\\ pharmacy,unit=fridge-a "
        'alert_id="a-123",target="pharmacist-email",purpose="page-tier-1",tier=1i,attempt=2i,'
        'error="Connection error while submitting email to \\"127.0.0.1\\"" 1796004600123'
    )
    assert encode(attempt_record(outcome="sent", error=None)).endswith("tier=1i,attempt=2i 1796004600123")


def test_notification_attempt_survives_the_spool_codec() -> None:
    """An attempt spooled during a store outage comes back exactly."""
    batch = [attempt_record(), attempt_record(error=None, outcome="sent")]
    assert record_codec.loads(record_codec.dumps(batch)) == batch  # type: ignore[arg-type]


# -- servers ----------------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler keeping every message; ``hold()`` makes it stall in DATA until ``release()``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._open = threading.Event()
        self._open.set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self._open.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self._open.wait, 30)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def about(self, alert_id: str) -> list[EmailMessage]:
        """Messages whose plain-text body names the alert."""
        found = []
        for message in list(self.messages):
            part = message.get_body(preferencelist=("plain",))
            if part is not None and f"Alert id: {alert_id}" in str(part.get_content()):
                found.append(message)
        return found


class SmtpServer:
    """An SMTP server in this process on a fixed free port of 127.0.0.1; stop() and start() keep the port."""

    def __init__(self) -> None:
        (self.port,) = free_ports(1)
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=coldchain@example.org&to=pharmacist@example.org&mode=insecure"

    def start(self) -> SmtpServer:
        if self._controller is None:
            self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self.mailbox.release()
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server object on a free port, not started yet."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def hook(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """The webhook receiver: answers 200 on /hook, 500 on /broken."""
    httpserver_ipv4.expect_request("/hook", method="POST").respond_with_data("ok")
    httpserver_ipv4.expect_request("/broken", method="POST").respond_with_data("down for maintenance", status=500)
    return httpserver_ipv4


def hooked(server: HTTPServer, alert_id: str) -> list[dict[str, Any]]:
    """JSON bodies the webhook received about the alert."""
    bodies = [request.get_json() for request, _ in list(server.log) if request.path == "/hook"]
    return [body for body in bodies if f"Alert id: {alert_id}" in body["message"]]


@dataclass
class Edge:
    """A writer on a real influxd and everything a Notifier needs, stopped in reverse order."""

    tmp_path: Path
    store: InfluxStore
    spool: Spool
    metrics: Metrics
    writer: DurableWriter
    outbox: Outbox
    notifiers: list[Notifier] = field(default_factory=list)

    @classmethod
    def open(cls, tmp_path: Path, config: InfluxConfig) -> Edge:
        """A started durable writer (spool and outbox in ``tmp_path``) on the influxd database of ``config``."""
        store = InfluxStore(config)
        spool = Spool(tmp_path / "spool.sqlite", 1 << 24)
        metrics = Metrics()
        writer = DurableWriter(store, spool, metrics)
        writer.start()
        return cls(tmp_path, store, spool, metrics, writer, Outbox(tmp_path / "notify.sqlite"))

    def notifier(self, *targets: NotifyTarget, outbox: Outbox | None = None, **config: Any) -> Notifier:
        options: dict[str, Any] = {"retry_max": "1s", "give_up_after": "1h", **config}
        notify = NotifyConfig(targets=list(targets), **options)
        signer = LinkSigner(KEY, timedelta(hours=24))
        render = Renderer(ApiConfig(public_url="https://coldchain.example.org"), signer)
        notifier = Notifier(notify, outbox or self.outbox, self.writer, self.metrics, render)
        self.notifiers.append(notifier)
        notifier.start()
        return notifier

    def send(self, notifier: Notifier, *notices: Notice, outbox: Outbox | None = None) -> None:
        (outbox or self.outbox).add(notices, datetime.now(UTC))
        notifier.wake()

    def stored(self, alert_id: str) -> list[dict[str, Any]]:
        """The alert's points in measurement ``notification``, oldest first, tags and fields as columns."""
        q = f'SELECT * FROM "notification" WHERE "alert_id" = {quote_string(alert_id)} ORDER BY time'
        return [dict(zip(s["columns"], values, strict=True)) for s in self.store.query(q) for values in s["values"]]

    def wait_stored(
        self, alert_id: str, done: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 5
    ) -> list[dict[str, Any]]:
        """The alert's stored points once ``done`` says they are complete (polled with a deadline)."""
        found: list[list[dict[str, Any]]] = []

        def check() -> bool:
            rows = self.stored(alert_id)
            found[:] = [rows]
            return done(rows)

        wait_for(check, timeout, what)
        return found[0]

    def metric(self, line_start: str) -> float:
        for line in self.metrics.render().decode().splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def close(self) -> None:
        for notifier in self.notifiers:
            notifier.stop()
        self.outbox.close()
        self.writer.stop()
        self.spool.close()
        self.store.close()


@pytest.fixture
def edge(tmp_path: Path, influx_config: InfluxConfig) -> Iterator[Edge]:
    """Outbox, metrics and a durable writer on this test's own influxd database; a Notifier factory."""
    world = Edge.open(tmp_path, influx_config)
    yield world
    world.close()


def email_target(smtp: SmtpServer) -> NotifyTarget:
    return NotifyTarget(name="pharmacist-email", url=SecretStr(smtp.url))


def webhook_target(server: HTTPServer, path: str = "/hook", name: str = "webhook") -> NotifyTarget:
    return NotifyTarget(name=name, url=SecretStr(f"json://127.0.0.1:{server.port}{path}"))


def notices_for(alert: Alert, *targets: str, purpose: str = "opened") -> list[Notice]:
    return [
        Notice(alert, target, purpose, 0, f"{alert.kind} at {alert.unit}: route targets on open") for target in targets
    ]


def outcomes(rows: list[dict[str, Any]], target: str) -> list[str]:
    return [row["outcome"] for row in rows if row["target"] == target]


# -- delivery ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_email_and_webhook_are_delivered_within_5_seconds_and_recorded(
    edge: Edge, smtp: SmtpServer, hook: HTTPServer
) -> None:
    """Notices to an e-mail and a webhook target both arrive within 5 s; each attempt is a stored point."""
    smtp.start()
    notifier = edge.notifier(email_target(smtp), webhook_target(hook))
    alert = make_alert()

    edge.send(notifier, *notices_for(alert, "pharmacist-email", "webhook"))

    mails = wait_for(lambda: smtp.mailbox.about(alert.id), 5, "the e-mail")
    posts = wait_for(lambda: hooked(hook, alert.id), 5, "the webhook")
    assert mails[0]["Subject"] == "[CRITICAL] Freezing — fridge-a (t-001)"
    assert posts[0]["title"] == "[CRITICAL] Freezing — fridge-a (t-001)"
    assert "https://coldchain.example.org/ack/" in posts[0]["message"]

    rows = edge.wait_stored(alert.id, lambda rows: len(rows) == 2, "both points")
    by_target = {row["target"]: row for row in rows}
    assert set(by_target) == {"pharmacist-email", "webhook"}
    email_row = by_target["pharmacist-email"]
    assert (email_row["channel"], email_row["outcome"], email_row["attempt"], email_row.get("error")) == (
        "email",
        "sent",
        1,
        None,
    )
    assert (email_row["kind"], email_row["severity"], email_row["site"], email_row["unit"]) == (
        "freezing",
        "critical",
        "main-pharmacy",
        "fridge-a",
    )
    assert (email_row["purpose"], email_row["tier"]) == ("opened", 0)
    assert by_target["webhook"]["channel"] == "webhook"
    assert edge.metric('coldchain_notifications_total{channel="email",outcome="sent"}') == 1
    assert edge.metric('coldchain_notifications_total{channel="webhook",outcome="sent"}') == 1
    assert edge.metric("coldchain_notifications_pending") == 0
    assert edge.spool.depth == 0  # straight into influxd

    started = time.monotonic()
    notifier.stop()
    assert time.monotonic() - started < 2, "stop() must be prompt when idle"


@pytest.mark.integration
def test_smtp_down_delays_only_email_which_is_retried_once_the_server_is_back(
    edge: Edge, smtp: SmtpServer, hook: HTTPServer
) -> None:
    """With SMTP down the webhook still arrives within 5 s; the e-mail fails, is recorded, and arrives after restart."""
    smtp.start()
    smtp.stop()  # down: connection refused
    notifier = edge.notifier(email_target(smtp), webhook_target(hook))
    alert = make_alert()

    edge.send(notifier, *notices_for(alert, "pharmacist-email", "webhook"))

    wait_for(lambda: hooked(hook, alert.id), 5, "the webhook while SMTP is down")
    failed = wait_for(
        lambda: [r for r in edge.stored(alert.id) if r["target"] == "pharmacist-email" and r["outcome"] == "failed"],
        5,
        "a failed e-mail attempt",
    )
    assert failed[0]["channel"] == "email" and failed[0]["attempt"] == 1
    assert "Connection error" in failed[0]["error"], failed[0]["error"]
    assert edge.outbox.pending_count() == 1

    smtp.start()  # same port
    wait_for(lambda: smtp.mailbox.about(alert.id), 10, "the e-mail after the SMTP server is back")
    rows = edge.wait_stored(alert.id, lambda rows: outcomes(rows, "pharmacist-email")[-1:] == ["sent"], "sent point")
    email_rows = [row for row in rows if row["target"] == "pharmacist-email"]
    assert [row["attempt"] for row in email_rows] == list(range(1, len(email_rows) + 1))
    assert len(smtp.mailbox.about(alert.id)) == 1
    assert len(hooked(hook, alert.id)) == 1
    assert outcomes(rows, "webhook") == ["sent"]
    assert edge.outbox.pending_count() == 0


@pytest.mark.integration
def test_a_hanging_channel_never_delays_the_others(edge: Edge, smtp: SmtpServer, hook: HTTPServer) -> None:
    """While the SMTP server stalls mid-message, webhook notices of later alerts still arrive within 5 s."""
    smtp.start()
    smtp.mailbox.hold()
    notifier = edge.notifier(email_target(smtp), webhook_target(hook))
    first, second = make_alert(), make_alert(subject="t-002", sensor="t-002")

    edge.send(notifier, *notices_for(first, "pharmacist-email", "webhook"))
    edge.send(notifier, *notices_for(second, "pharmacist-email", "webhook"))

    wait_for(lambda: hooked(hook, first.id) and hooked(hook, second.id), 5, "both webhooks while e-mail hangs")
    assert smtp.mailbox.about(first.id) == []
    smtp.mailbox.release()
    wait_for(lambda: smtp.mailbox.about(first.id) and smtp.mailbox.about(second.id), 10, "both e-mails")


@pytest.mark.integration
def test_with_influxd_down_notices_still_go_out_and_attempts_wait_in_the_spool(
    tmp_path: Path, fresh_influxd: Callable[..., Influxd], hook: HTTPServer
) -> None:
    """A store outage never holds a notice back: attempts are spooled and reach influxd once it is back."""
    server = fresh_influxd()
    edge = Edge.open(tmp_path, InfluxConfig(url=server.url, database="notify_outage"))
    try:
        server.stop()
        notifier = edge.notifier(webhook_target(hook))
        alert = make_alert()

        edge.send(notifier, *notices_for(alert, "webhook"))

        wait_for(lambda: hooked(hook, alert.id), 5, "the webhook while influxd is down")
        wait_for(lambda: edge.spool.depth == 1, 5, "the attempt in the spool")
        server.start()
        (row,) = edge.wait_stored(alert.id, bool, "the spooled attempt in influxd", timeout=15)
        assert (row["channel"], row["outcome"], row["target"]) == ("webhook", "sent", "webhook")
    finally:
        edge.close()


@pytest.mark.integration
def test_restarted_notifier_sends_what_is_pending_and_nothing_delivered_again(edge: Edge, hook: HTTPServer) -> None:
    """Over the same outbox file, a new Notifier skips delivered notices and sends the ones still pending."""
    path = edge.tmp_path / "restart.sqlite"
    outbox = Outbox(path)
    first = edge.notifier(webhook_target(hook), outbox=outbox)
    delivered, pending = make_alert(), make_alert(subject="t-002", sensor="t-002")
    edge.send(first, *notices_for(delivered, "webhook"), outbox=outbox)
    wait_for(lambda: hooked(hook, delivered.id), 5, "the first webhook")
    wait_for(lambda: outbox.pending_count() == 0, 5, "the first notice marked delivered")
    first.stop()
    outbox.close()

    reopened = Outbox(path)
    try:
        # the rules worker replays its transitions after a restart: planning is idempotent
        assert reopened.add(notices_for(delivered, "webhook"), datetime.now(UTC)) == 0
        assert reopened.add(notices_for(pending, "webhook"), datetime.now(UTC)) == 1
        edge.notifier(webhook_target(hook), outbox=reopened)  # no wake(): start() finds pending notices itself

        wait_for(lambda: hooked(hook, pending.id), 5, "the pending notice after the restart")
        wait_for(lambda: reopened.pending_count() == 0, 5, "the pending notice marked delivered")
        assert len(hooked(hook, delivered.id)) == 1
        assert len(hooked(hook, pending.id)) == 1
    finally:
        for notifier in edge.notifiers:
            notifier.stop()
        reopened.close()


@pytest.mark.integration
def test_gives_up_after_give_up_after_logs_an_error_and_counts(
    edge: Edge, hook: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook answering 500 is retried with backoff until give_up_after, then given up: ERROR, point, counter."""
    caplog.set_level(logging.WARNING, logger="coldchain.notify")
    notifier = edge.notifier(webhook_target(hook, "/broken", name="broken-hook"), give_up_after="2s")
    alert = make_alert()

    edge.send(notifier, *notices_for(alert, "broken-hook"))

    wait_for(lambda: edge.outbox.pending_count() == 0, 10, "the notice given up")
    rows = edge.wait_stored(alert.id, lambda rows: outcomes(rows, "broken-hook")[-1:] == ["gave_up"], "gave_up point")
    seen = outcomes(rows, "broken-hook")
    assert seen[0] == "failed" and seen[-1] == "gave_up" and set(seen[1:-1]) <= {"failed"}
    assert all("500" in row["error"] for row in rows), [row["error"] for row in rows]
    assert edge.metric('coldchain_notifications_total{channel="webhook",outcome="gave_up"}') == 1
    assert edge.metric('coldchain_notifications_total{channel="webhook",outcome="failed"}') == len(seen) - 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "coldchain.notify"]
    assert len(errors) == 1 and "GAVE UP" in errors[0].getMessage() and alert.id in errors[0].getMessage()
    attempts_before_give_up = len(hook.log)
    assert edge.outbox.due("broken-hook", datetime.now(UTC) + timedelta(days=1)) == []
    assert len(hook.log) == attempts_before_give_up


@pytest.mark.integration
def test_log_target_writes_a_warning_and_counts_as_sent_without_overwriting_points(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    """The built-in log target logs each notice at WARNING; attempts in one millisecond still get a point each."""
    caplog.set_level(logging.WARNING, logger="coldchain.notify")
    notifier = edge.notifier()
    alerts = [make_alert() for _ in range(5)]  # same kind, site and unit: the same series

    edge.send(notifier, *(n for alert in alerts for n in notices_for(alert, "log")))

    wait_for(lambda: edge.outbox.pending_count() == 0, 5, "log notices marked sent")
    logged = [r.getMessage() for r in caplog.records if r.name == "coldchain.notify" and r.levelno == logging.WARNING]
    for alert in alerts:
        assert any(m.startswith("[CRITICAL] Freezing — fridge-a (t-001)\n") and alert.id in m for m in logged)
    for alert in alerts:
        rows = edge.wait_stored(alert.id, bool, "the log point")
        assert [(r["channel"], r["outcome"], r["target"]) for r in rows] == [("log", "sent", "log")]
    times = [edge.stored(alert.id)[0]["time"] for alert in alerts]
    assert len(set(times)) == len(times)
    assert edge.metric('coldchain_notifications_total{channel="log",outcome="sent"}') == len(alerts)


@pytest.mark.integration
def test_notices_of_a_target_no_longer_configured_are_given_up_loudly(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    """A pending notice for a target removed from the configuration is given up with a reason, not left forever."""
    alert = make_alert()
    edge.outbox.add(notices_for(alert, "old-pager"), datetime.now(UTC))

    edge.notifier()

    wait_for(lambda: edge.outbox.pending_count() == 0, 5, "the orphan given up")
    (row,) = edge.wait_stored(alert.id, bool, "its point")
    assert (row["channel"], row["outcome"], row["target"]) == ("unknown", "gave_up", "old-pager")
    assert row["error"] == "no notify target named 'old-pager' is configured"
    assert any("not configured any more" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


@pytest.mark.integration
def test_a_url_apprise_cannot_use_fails_each_attempt_with_a_reason(edge: Edge) -> None:
    """A target whose URL apprise rejects keeps its notices failing (not lost) until a fixed config is started."""
    notifier = edge.notifier(NotifyTarget(name="typo", url=SecretStr("mailto://nobody")))
    alert = make_alert()

    edge.send(notifier, *notices_for(alert, "typo"))

    (row,) = edge.wait_stored(alert.id, bool, "the failed attempt")
    assert (row["channel"], row["outcome"]) == ("email", "failed")
    assert "apprise cannot use the URL of notify target 'typo'" in row["error"]
    assert edge.outbox.pending_count() == 1
    notifier.stop()
    edge.outbox.close()
    assert math.isnan(edge.metric("coldchain_notifications_pending"))  # a closed outbox never breaks a scrape
    edge.outbox = Outbox(edge.tmp_path / "notify.sqlite")  # for the fixture's teardown


@pytest.mark.integration
def test_logs_never_show_the_secret_part_of_a_target_url(
    edge: Edge, hook: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures are logged with apprise's privacy form of the URL, never its password."""
    caplog.set_level(logging.DEBUG)
    (port,) = free_ports(1)
    url = f"mailto://user:s3cr3t-pw@127.0.0.1:{port}?from=coldchain@example.org&to=p@example.org&mode=insecure"
    notifier = edge.notifier(NotifyTarget(name="secret-mail", url=SecretStr(url)))
    alert = make_alert()

    edge.send(notifier, *notices_for(alert, "secret-mail"))

    edge.wait_stored(alert.id, bool, "a failed attempt")
    notifier.stop()
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "failed" in text
    assert "s3cr3t-pw" not in text
    assert all("s3cr3t-pw" not in (row["error"] or "") for row in edge.stored(alert.id))
