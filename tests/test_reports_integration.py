"""Scheduled reports (issue 15 item 4) against a real influxd, a real SMTP server (aiosmtpd) and a real
``coldchain run``: ``coldchain reports run`` writes a signed export that ``coldchain export verify`` accepts
against the pinned public key and mails report.pdf and the manifest as attachments; a period without
readings still gets its report; starting the service after downtime catches up the missed periods; a
run that cannot write its directory raises ``report_failed``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coldchain.adapters.store.influx import InfluxStore
from coldchain.config import InfluxConfig
from coldchain.core.records import TemperatureReading
from coldchain.core.report_periods import last_ended, period_of
from tests.publishing import wait_for
from tests.service_process import write_config
from tests.test_notify import SmtpServer
from tests.test_rules_integration import AlertWorld

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def reports_toml(smtp_url: str, reports: list[tuple[str, str, Path]]) -> str:
    lines = ["[[notify.targets]]", 'name = "qa-mail"', f'url = "{smtp_url}"']
    for name, every, directory in reports:
        lines += ["[[reports]]", f'name = "{name}"', f'every = "{every}"', 'targets = ["qa-mail"]']
        lines += [f'dir = "{directory}"']
    return "\n".join(lines) + "\n"


def test_reports_run_writes_a_signed_export_and_mails_it(
    tmp_path: Path, mosquitto: Any, influxd: Any, smtp: SmtpServer
) -> None:
    """reports run: the export verifies against the pinned key, the mail carries report.pdf and manifest.json,
    and an empty period's report says it had no readings."""
    database = f"db_reports_{os.getpid()}"
    directory = tmp_path / "daily"
    extra = reports_toml(smtp.url, [("daily-qa", "day", directory)])
    config = write_config(tmp_path, mosquitto.url, influxd.url, database, "ccrep", extra)
    yesterday = last_ended("day", datetime.now(UTC))
    store = InfluxStore(InfluxConfig(url=influxd.url, database=database))
    store.prepare()
    store.write(
        [
            TemperatureReading("t-001", "fridge-a", "main-pharmacy", yesterday.start + timedelta(minutes=m), 5.0)
            for m in range(0, 1440, 5)
        ]
    )
    store.close()

    result = cli("reports", "run", "daily-qa", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = directory / yesterday.name
    assert (out / "report.pdf").is_file() and (out / "readings.csv").is_file()
    key = tmp_path / "key.json"
    shown = cli("export", "key", "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    key.write_text(shown.stdout)
    verified = cli("export", "verify", str(out), "--public-key", str(key))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    message = wait_for(lambda: smtp.mailbox.messages[:1], 30, "the report's mail")[0]
    assert yesterday.name in str(message["subject"])
    attached = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert set(attached) == {"report.pdf", "manifest.json"}
    manifest = json.loads(attached["manifest.json"])
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert bytes(attached["report.pdf"]) == (out / "report.pdf").read_bytes()

    empty = period_of("day", yesterday.first_day - timedelta(days=5))
    result = cli("reports", "run", "daily-qa", "--period", empty.name, "--config", str(config))
    assert result.returncode == 0, result.stderr
    pdf = directory / empty.name / "report.pdf"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "No readings in this period" in text and "never in range" in text
    assert json.loads((directory / empty.name / "manifest.json").read_text())["notes"]

    wrong = cli("reports", "run", "daily-qa", "--period", "2026-W01", "--config", str(config))
    assert wrong.returncode == 2 and "2026-11-30" in wrong.stderr
    unknown = cli("reports", "run", "nope", "--config", str(config))
    assert unknown.returncode == 2 and "daily-qa" in unknown.stderr


def test_the_service_catches_up_missed_periods_and_raises_report_failed(
    tmp_path: Path, mosquitto: Any, influxd: Any, smtp: SmtpServer
) -> None:
    """At start, every day after the newest one in dir is written; a report whose dir cannot be made raises
    report_failed (audited), which stays open while it keeps failing."""
    today = datetime.now(UTC).date()
    directory = tmp_path / "daily"
    old = period_of("day", today - timedelta(days=3))
    (directory / old.name).mkdir(parents=True)
    (directory / old.name / "manifest.json").write_text("{}")  # ran before the downtime
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the report's directory should be")
    extra = reports_toml(smtp.url, [("daily-qa", "day", directory), ("broken", "day", blocker / "reports")])
    world = AlertWorld(tmp_path, mosquitto, influxd, extra=extra)
    try:
        world.service.start()
        expected = [period_of("day", today - timedelta(days=n)).name for n in (2, 1)]
        for name in expected:
            wait_for(lambda n=name: (directory / n / "manifest.json").is_file(), 120, f"the caught-up report {name}")
        assert sorted(p.name for p in directory.iterdir()) == sorted([old.name, *expected])
        failed = world.wait_alert("report_failed", "broken", "open", timeout=60)
        assert failed["severity"] == "warning" and "not-a-directory" in failed["message"]
        audited = wait_for(
            lambda: world.rows('SELECT * FROM "audit" WHERE "action" = \'report_run\'') or None, 30, "report_run"
        )
        assert {row["subject"] for row in audited} == {"daily-qa"}
        assert world.rows('SELECT * FROM "audit" WHERE "action" = \'report_failed\'')[0]["subject"] == "broken"
        assert len(wait_for(lambda: smtp.mailbox.messages[:2], 30, "two mails")) == 2
    finally:
        world.close()
