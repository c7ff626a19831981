"""The README's first hour, run as written against scripts/run-local.sh's stack.

The README's commands name run-local's default addresses (mosquitto 127.0.0.1:11883, InfluxDB
127.0.0.1:18086, the API 127.0.0.1:8080) and paths relative to the repository (``.venv/bin/coldchain``,
``var/local/coldchain.toml``). This test starts run-local on free ports with its data in a temporary
directory (``MQTT_PORT``, ``INFLUX_PORT``, ``API_PORT``, ``RPC_PORT``, ``VAR_DIR``), runs each marked
block with bash in a directory laid out like the checkout (``.venv`` linked, ``var/`` run-local's),
with only those three addresses swapped for the test's, and checks what the blocks did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_ports

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- tests/test_readme.py runs this block -->"
TOKEN = "example-only-token-j-doe"


def marked_blocks(text: str) -> list[str]:
    """The ```sh blocks right after a MARK line, dedented (they may sit inside a list item)."""
    pattern = re.compile(
        r"^([ \t]*)" + re.escape(MARK) + r"\n\1```sh\n(.*?)^\1```$", re.MULTILINE | re.DOTALL
    )
    return [textwrap.dedent(match.group(2)) for match in pattern.finditer(text)]


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    mqtt: int
    influx: int
    api: int

    def localise(self, block: str) -> str:
        """The block with run-local's default addresses replaced by this stack's (and nothing else)."""
        swapped = (
            block.replace("-p 11883", f"-p {self.mqtt}")
            .replace("127.0.0.1:18086", f"127.0.0.1:{self.influx}")
            .replace("127.0.0.1:8080", f"127.0.0.1:{self.api}")
        )
        for default in ("11883", "18086", ":8080"):
            assert default not in swapped, f"a README block names {default} in a form this test does not swap"
        return swapped

    def get(self, path: str, token: str | None = None) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.api}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """scripts/run-local.sh on free ports, its data under tmp_path/var; stopped as Ctrl-C would."""
    mqtt, influx, api, rpc = free_ports(4)
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    log = tmp_path / "run-local.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("COLDCHAIN_")}
    env.update(
        MQTT_PORT=str(mqtt), INFLUX_PORT=str(influx), API_PORT=str(api), RPC_PORT=str(rpc), VAR_DIR=str(workdir / "var")
    )
    with log.open("wb") as out:
        command = [str(ROOT / "scripts" / "run-local.sh")]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    running = Stack(process, workdir, log, mqtt, influx, api)
    try:
        deadline = time.monotonic() + 90
        while not _ready(api):
            assert process.poll() is None, f"run-local.sh exited {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no /readyz within 90 s:\n{log.read_text()}"
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in run-local's terminal
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_readme_has_the_first_hour_blocks() -> None:
    """The walk-through's steps are marked for this test: check, publish, excursion, ack, bag, export, API."""
    blocks = marked_blocks(README.read_text(encoding="utf-8"))
    joined = "\n".join(blocks)
    assert len(blocks) >= 6
    for command in ("check-config", "mosquitto_pub", "/ack", "bag dilute", "export verify", "audit verify"):
        assert command in joined, command
    assert "--config var/local/coldchain.toml" in joined


def test_the_first_hour_works_as_written(stack: Stack) -> None:
    """Every marked block exits 0 against run-local's stack; the reading, the ack, the bag and the export happened."""
    outputs = []
    for block in marked_blocks(README.read_text(encoding="utf-8")):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", stack.localise(block)],
            cwd=stack.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            env={key: value for key, value in os.environ.items() if not key.startswith("COLDCHAIN_")},
        )
        assert done.returncode == 0, f"README block failed ({done.returncode}):\n{block}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)

    # the reading landed in InfluxDB
    query = urllib.parse.quote("SELECT celsius FROM temperature WHERE sensor = 't-001'")
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.influx}/query?db=coldchain&q={query}", timeout=5) as reply:
        values = [row[1] for row in json.load(reply)["results"][0]["series"][0]["values"]]
    assert 4.7 in values and -1.5 in values
    # the freezing alert was acknowledged by the example user
    (alert,) = [a for a in json.loads(stack.get("/api/alerts?state=active", TOKEN)) if a["kind"] == "freezing"]
    assert alert["acknowledged_by"] == "j.doe" and alert["disposition"] == "quarantined"
    # the diluted bag counts down in fridge-a
    units = {unit["id"]: unit for unit in json.loads(stack.get("/api/units", TOKEN))}
    assert "B-2001" in json.dumps(units["fridge-a"])
    # the export was written, signed, and verified
    (export,) = (stack.workdir / "var" / "local").glob("export-*")
    assert json.loads((export / "manifest.json").read_text())["signature"]
    assert any("export OK" in out for out in outputs) and any("audit chain OK" in out for out in outputs)


def test_run_local_stops_cleanly_and_writes_the_configuration(stack: Stack) -> None:
    """Ctrl-C stops coldchain before the servers: no 'reconnecting' on the way out; the config file is run-local's."""
    config = (stack.workdir / "var" / "local" / "coldchain.toml").read_text()
    assert f"mqtt://127.0.0.1:{stack.mqtt}" in config and f"127.0.0.1:{stack.api}" in config
    os.killpg(stack.process.pid, signal.SIGINT)
    assert stack.process.wait(timeout=30) == 130  # run-local's exit status after Ctrl-C
    log = stack.log.read_text()
    assert "coldchain stopped" in log, log
    assert "reconnecting" not in log, log
    for port in (stack.mqtt, stack.influx, stack.api):
        assert not _listening(port), f"port {port} still served after run-local.sh stopped"


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
