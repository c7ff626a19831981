"""On-call alerting end to end: real ``coldchain run``, mosquitto, influxd, an SMTP server and a webhook receiver."""

from __future__ import annotations

import email.policy
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer

from tests.publishing import wait_for
from tests.service_process import free_port
from tests.test_rules_integration import AlertWorld
from tests.world import iso

pytestmark = pytest.mark.integration

TOKEN = "token-of-j-doe-123"
USERS = f'\n[[api.users]]\nname = "j.doe"\ntoken = "{TOKEN}"\n'


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if address in m["To"]]


class SmtpServer:
    """A real SMTP server on a fixed free port that can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def notify_env(smtp: SmtpServer, hook_url: str, escalate: str = "3s", repeat: str = "4s") -> dict[str, str]:
    """Targets, routes and tiers through COLDCHAIN_* (JSON for lists), with short escalation times."""
    mail = f"mailto://127.0.0.1:{smtp.port}?from=coldchain@example.org&to=%s"
    targets = [
        {"name": "pharmacy-mail", "url": mail % "pharmacy@example.org"},
        {"name": "ward-hook", "url": hook_url.replace("http://", "json://")},
        {"name": "tier1-mail", "url": mail % "tier1@example.org"},
        {"name": "tier2-mail", "url": mail % "tier2@example.org"},
    ]
    tiers = [
        {"name": "pharmacist on duty", "targets": ["tier1-mail"]},
        {"name": "head of pharmacy", "targets": ["tier2-mail"]},
    ]
    return {
        "COLDCHAIN_NOTIFY__TARGETS": json.dumps(targets),
        "COLDCHAIN_NOTIFY__ROUTES": json.dumps([{"severity": ["critical"], "targets": ["pharmacy-mail", "ward-hook"]}]),
        "COLDCHAIN_NOTIFY__DEFAULT_TARGETS": json.dumps(["pharmacy-mail"]),
        "COLDCHAIN_NOTIFY__RETRY_MAX": "1s",
        "COLDCHAIN_ONCALL__TIERS": json.dumps(tiers),
        "COLDCHAIN_ONCALL__ESCALATE_AFTER": escalate,
        "COLDCHAIN_ONCALL__REPEAT_INTERVAL": repeat,
        "COLDCHAIN_API__PUBLIC_URL": "https://coldchain.example.org",
    }


def repeats_to_anyone(smtp: SmtpServer) -> list[Any]:
    return [m for m in smtp.mailbox.messages if "repeat" in m["Subject"]]


def text_of(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain", "html")).get_content())


def make_world(tmp_path: Path, mosquitto: Any, influxd: Any, env: dict[str, str]) -> AlertWorld:
    return AlertWorld(tmp_path, mosquitto, influxd, extra=USERS, env=env)


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any, smtp: SmtpServer, hook: HTTPServer) -> Iterator[AlertWorld]:
    """``coldchain run`` routing to the mailbox and the webhook, started; escalation an hour away."""
    world = make_world(tmp_path, mosquitto, influxd, notify_env(smtp, hook.url_for("/hook"), escalate="1h"))
    try:
        world.service.start()
        yield world
    finally:
        world.close()


def hook_bodies(server: HTTPServer) -> list[dict[str, Any]]:
    return [json.loads(request.get_data()) for request, _ in server.log]


def attempts(world: AlertWorld, outcome: str) -> list[dict[str, Any]]:
    """Delivery attempts stored in measurement ``notification`` with this outcome."""
    return world.rows(f'SELECT * FROM "notification" WHERE "outcome" = \'{outcome}\'')


def freeze(world: AlertWorld) -> dict[str, Any]:
    world.publisher_for().send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -1.0})
    return world.wait_alert("freezing", "t-001", "open")


def test_freezing_reading_mails_and_webhooks_within_5s(world: AlertWorld, smtp: SmtpServer, hook: HTTPServer) -> None:
    """A freezing reading reaches the pharmacy's mailbox, the ward's webhook and tier 1 within 5 s."""
    opened = freeze(world)
    mails = wait_for(lambda: smtp.mailbox.to("pharmacy@example.org"), 5, "the e-mail")
    assert "Freezing" in mails[0]["Subject"] and "Infusion fridge A" in mails[0]["Subject"]
    body = text_of(mails[0])
    assert opened["id"] in body and "https://coldchain.example.org/ack/" in body
    hooks = wait_for(lambda: hook_bodies(hook), 5, "the webhook")
    assert "Infusion fridge A" in hooks[0]["title"]
    wait_for(lambda: smtp.mailbox.to("tier1@example.org"), 5, "tier 1's page")
    stored = wait_for(lambda: attempts(world, "sent"), 15, "recorded attempts")
    assert {row["channel"] for row in stored} >= {"email", "webhook"}
    assert {row["alert_id"] for row in stored} == {opened["id"]}


def test_escalation_repeats_ack_stops_them_and_restart_neither_repages_nor_forgets(
    tmp_path: Path, mosquitto: Any, influxd: Any, smtp: SmtpServer, hook: HTTPServer
) -> None:
    """Unacknowledged: tier 2 after escalate_after, repeats every repeat_interval; a restart mid-escalation
    does not page tier 1 again and still escalates; an acknowledgement stops the repeats."""
    world = make_world(tmp_path, mosquitto, influxd, notify_env(smtp, hook.url_for("/hook"), "6s", "8s"))
    try:
        world.service.start()
        opened = freeze(world)
        wait_for(lambda: smtp.mailbox.to("tier1@example.org"), 5, "tier 1's page")
        first_page = time.monotonic()
        assert smtp.mailbox.to("tier2@example.org") == []
        world.service.kill()  # mid-escalation: tier 1 paged, tier 2 not yet
        world.service.start()
        tier2 = wait_for(lambda: smtp.mailbox.to("tier2@example.org"), 15, "tier 2 after escalate_after")
        assert "escalated to tier 2" in tier2[0]["Subject"]
        assert len(smtp.mailbox.to("tier1@example.org")) == 1, "the restart paged tier 1 again"
        repeats = wait_for(
            lambda: [m for m in smtp.mailbox.to("tier1@example.org") if "repeat" in m["Subject"]], 15, "a repeat"
        )
        assert len(repeats) == 1
        ack = httpx.post(
            f"{world.service.api}/api/alerts/{opened['id']}/ack",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"note": "on my way"},
            timeout=10,
        )
        assert ack.status_code == 200
        told = wait_for(
            lambda: [m for m in smtp.mailbox.to("tier1@example.org") if "ACKNOWLEDGED" in m["Subject"]],
            10,
            "tier 1 hearing of the acknowledgement",
        )
        assert "j.doe" in text_of(told[0])
        repeats_at_ack = len(repeats_to_anyone(smtp))
        # No condition to poll for an absence: let the clock pass the next two repeats that would
        # have been due (tier 2 at 6 + 8 s, tier 1 at 16 s after the first page), then look.
        time.sleep(max(0.0, first_page + 17 - time.monotonic()))
        assert len(repeats_to_anyone(smtp)) == repeats_at_ack, "repeats went on after the acknowledgement"
        assert len([m for m in smtp.mailbox.to("tier2@example.org") if "ACKNOWLEDGED" in m["Subject"]]) == 1
    finally:
        world.close()


def test_smtp_down_webhook_on_time_email_retried(world: AlertWorld, smtp: SmtpServer, hook: HTTPServer) -> None:
    """With the SMTP server down the webhook still arrives within 5 s; the e-mail follows once it is back."""
    smtp.stop()
    freeze(world)
    wait_for(lambda: hook_bodies(hook), 5, "the webhook while SMTP is down")
    wait_for(
        lambda: attempts(world, "failed"),
        15,
        "a failed e-mail attempt recorded",
    )
    smtp.start()
    wait_for(lambda: smtp.mailbox.to("pharmacy@example.org"), 15, "the e-mail once SMTP is back")
