"""``coldchain demo`` end to end, headless: every scripted alert kind, stored in SQLite, and an export."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.demo.run import MARKER, DemoError, fresh_data_dir
from tests.samples import DEMO_OPENED
from tests.servers import free_ports

pytestmark = pytest.mark.integration

# The scenario (8 h 20 min simulated) in 20 wall seconds: 1,500 times faster than real time.
DURATION = 20


def test_the_demo_raises_every_scripted_alert_and_writes_an_export(tmp_path: Path) -> None:
    """Headless and bounded: each incident opens its alert (once, no other), stored in SQLite; the export exists."""
    mqtt_port, api_port = free_ports(2)
    command = [sys.executable, "-m", "coldchain.cli", "demo", "--headless", "--duration", str(DURATION)]
    command += ["--mqtt-port", str(mqtt_port), "--api-port", str(api_port)]
    started = time.monotonic()
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert took < 60, f"the demo took {took:.0f}s"

    store = SqliteStore(tmp_path / "var/demo/coldchain.db")
    rows = list(store.read_range("alert", datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC)))
    store.close()
    opened = sorted((row["kind"], row["subject"]) for row in rows if row["state"] == "open")
    assert opened == DEMO_OPENED, done.stderr[-3000:]
    resolved = {row["kind"] for row in rows if row["state"] == "resolved"}
    assert resolved == {"agitation", "freezing", "sensor_offline", "temperature_high", "temperature_low"}

    export_line = next(line for line in done.stdout.splitlines() if line.startswith("export: "))
    export = tmp_path / export_line.removeprefix("export: ").split(" (")[0]
    assert export.is_dir() and any(export.iterdir()), export_line
    assert "MISSING" not in done.stdout


def test_the_data_directory_is_emptied_only_if_the_demo_made_it(tmp_path: Path) -> None:
    """A directory with the demo's marker is emptied; a foreign non-empty one is refused untouched."""
    ours = tmp_path / "ours"
    fresh_data_dir(ours)
    (ours / "coldchain.db").write_text("old run")
    fresh_data_dir(ours)
    assert sorted(p.name for p in ours.iterdir()) == [MARKER]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not made by the demo"):
        fresh_data_dir(foreign)
    assert (foreign / "precious.txt").read_text() == "keep me"
