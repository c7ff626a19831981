"""Runs ``coldchain`` as a real child process against the test servers, with its own config and ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.publishing import wait_for

SENSORS = [("t-001", "fridge-a", "temperature"), ("s-001", "fridge-a", "shake"), ("t-002", "fridge-b", "temperature")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    directory: Path,
    mqtt_url: str,
    influx_url: str,
    database: str,
    prefix: str,
    extra: str = "",
    sensors: list[tuple[str, str, str]] | None = None,
    unit_options: dict[str, list[str]] | None = None,
) -> Path:
    """A TOML configuration for one test: two fridges, unique client ids, topic prefix and state files.

    ``unit_options`` adds TOML lines to a unit's table, e.g. ``{"fridge-b": ['offline_after = "3s"']}``.
    """
    unit_options = unit_options or {}
    lines = [
        "[mqtt]",
        f'url = "{mqtt_url}"',
        f'client_id = "cc-{uuid.uuid4().hex[:8]}"',
        f'topic_prefix = "{prefix}"',
        'reconnect_max = "2s"',
        "[influx]",
        f'url = "{influx_url}"',
        f'database = "{database}"',
        'linger = "100ms"',
        'timeout = "2s"',
        "[spool]",
        f'path = "{directory / "spool.sqlite"}"',
        "[rules]",
        f'client_id = "ccr-{uuid.uuid4().hex[:8]}"',
        f'state_path = "{directory / "rules.sqlite"}"',
        f'spool_path = "{directory / "rules-spool.sqlite"}"',
        "[notify]",
        f'state_path = "{directory / "notify.sqlite"}"',
        "[rollups]",
        f'state_path = "{directory / "rollups.sqlite"}"',
        "[api]",
        f'listen = "127.0.0.1:{free_port()}"',
        "[log]",
        'format = "json"',
        'level = "DEBUG"',
        extra,
        "[[units]]",
        'id = "fridge-a"',
        'site = "main-pharmacy"',
        'name = "Infusion fridge A"',
        *unit_options.get("fridge-a", []),
        "[[units]]",
        'id = "fridge-b"',
        'site = "main-pharmacy"',
        'name = "Infusion fridge B"',
        *unit_options.get("fridge-b", []),
    ]
    for sensor_id, unit, kind in sensors or SENSORS:
        lines += ["[[sensors]]", f'id = "{sensor_id}"', f'unit = "{unit}"', f'kind = "{kind}"']
    path = directory / "coldchain.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class ColdchainProcess:
    """``coldchain <role> --config F`` as a child process; its log goes to a file in the test's dir."""

    def __init__(self, config: Path, role: str = "ingest", env: dict[str, str] | None = None) -> None:
        self.config = config
        self.role = role
        self.env = env or {}
        self.log_path = config.parent / f"coldchain-{role}.log"
        self.process: subprocess.Popen[bytes] | None = None
        text = config.read_text()
        self.api = "http://" + text.split('listen = "', 1)[1].split('"', 1)[0]

    def start(self) -> ColdchainProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "coldchain.cli", self.role, "--config", str(self.config)],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        wait_for(self._subscribed, 20, f"coldchain {self.role} subscribed to the broker (log: {self.log_path})")
        return self

    def _subscribed(self) -> bool:
        """Healthy, and every MQTT role has its subscriptions confirmed (else early messages could miss it)."""
        if not self._healthy():
            return False
        lines = [
            line for line in self.get("/metrics").text.splitlines() if line.startswith("coldchain_broker_connected{")
        ]
        return bool(lines) and all(line.endswith(" 1.0") for line in lines)

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"coldchain exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(self.api + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.api + path, timeout=5)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"coldchain did not stop on SIGTERM:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def log_entries(self) -> list[dict[str, object]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries
