"""Real mosquitto and influxd for the integration tests, each in its own temp dir on a free port.

Both bind 127.0.0.1 only, log to a file in their dir and are polled for readiness with a deadline.
``restart()`` keeps the port and the data (a broker's persistent sessions and queued messages, a
database's points); ``kill()`` is a crash (SIGKILL). ``stop()`` and ``kill()`` may be called twice.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import httpx

from coldchain.contract.payloads import MAX_PACKET_BYTES

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a server behind, even when a test run ends without tearing its fixtures down."""
    for process in list(_running):
        process.kill()
        process.wait()


def free_ports(count: int = 1) -> list[int]:
    """Distinct ports that were free on 127.0.0.1 a moment ago (bound together, then closed)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def find_binary(name: str, fallback: str) -> str:
    """The server binary's path, or an error saying how to install it (CI must not skip)."""
    found = shutil.which(name) or (fallback if os.access(fallback, os.X_OK) else None)
    if found is None:
        raise RuntimeError(f"{name} not found on PATH nor at {fallback}: apt-get install mosquitto influxdb")
    return found


class ServerError(RuntimeError):
    """A test server did not start; the message ends with the tail of its log."""


class _Server:
    """A server process in a temp dir: config writing and readiness are the subclass's."""

    name = "server"
    binary = ""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"coldchain-{self.name}-"))
        self.log_path = self.dir / f"{self.name}.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    # subclass hooks
    def _pick_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _write_config(self) -> list[str]:
        """Write the config for ``self.port``; return the command line."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """True once this process serves the port.

        A probe alone can be answered by whoever raced us to the port (another test run's server),
        so each subclass also looks for the line its server logs once it has bound the port.
        """
        raise NotImplementedError

    def _log_since_start(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> Self:
        """Start on a fresh free port (the same one again after a stop), retrying if the port was raced."""
        if self.running:
            return self
        keep_port = self.port != 0  # restart: same port; first start: another port if this one was raced
        for _attempt in range(4):
            if not keep_port:
                self._pick_ports()
            if self._spawn_and_wait():
                return self
            if keep_port or "in use" not in self.log_tail(5):
                break
        raise ServerError(f"{self.name} exited at start on 127.0.0.1:{self.port}:\n{self.log_tail()}")

    def _spawn_and_wait(self) -> bool:
        self._reap()  # a process that died on its own
        command = self._write_config()
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._process = process
        _running.add(process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._reap()
                return False
            if self._ready():
                return True
            time.sleep(0.01)
        self.kill()
        raise ServerError(f"{self.name} not ready within {START_TIMEOUT}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown: mosquitto saves its persistence file) and wait; SIGKILL if stuck."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL, as in a crash: mosquitto loses all since its last clean start, influxd keeps its WAL."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            _running.discard(self._process)
            self._process = None

    def restart(self) -> Self:
        """Clean stop, then start again on the same port with the same data dir."""
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop and delete the temp dir."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Mosquitto(_Server):
    """mosquitto 2.0 with persistence and no queue limits, as coldchain expects of a broker."""

    name = "mosquitto"

    def __init__(self, binary: str | None = None, max_packet_size: int | None = MAX_PACKET_BYTES) -> None:
        """``max_packet_size`` as deploy's mosquitto.conf sets it; None for a stock broker (no limit)."""
        super().__init__()
        self.binary = binary or find_binary("mosquitto", "/usr/sbin/mosquitto")
        self.max_packet_size = max_packet_size

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _write_config(self) -> list[str]:
        # As root, mosquitto drops to user "mosquitto" (or "nobody"), which cannot write our 0700 dir:
        # name the current user, which is a no-op when not root.
        user = pwd.getpwuid(os.geteuid()).pw_name
        config = self.dir / "mosquitto.conf"
        config.write_text(
            f"""\
user {user}
listener {self.port} 127.0.0.1
allow_anonymous true
# Sessions and queued QoS-1 messages survive restart() (saved on SIGTERM). autosave_interval 0:
# no periodic save, so after kill() the broker has lost everything since its last clean start,
# every time; tests never depend on a save racing a crash.
persistence true
persistence_location {self.dir}/
autosave_interval 0
# The stock 1000-message queue silently drops QoS-1 messages for a subscriber that is offline or
# behind; 0 lifts the count and the byte caps.
max_queued_messages 0
max_queued_bytes 0
# Unlimited QoS-1 in flight: MQTT 5 clients get no Receive Maximum in CONNACK (the default 20
# throttles publishers), and a v5 subscriber's own Receive Maximum governs what it is sent.
max_inflight_messages 0
set_tcp_nodelay true
{f"max_packet_size {self.max_packet_size}" if self.max_packet_size else ""}
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
""",
            encoding="utf-8",
        )
        return [self.binary, "-c", str(config)]

    def _ready(self) -> bool:
        if " running" not in self._log_since_start():  # "mosquitto version 2.0.11 running": listeners bound
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


class Influxd(_Server):
    """influxd 1.x with every file in its temp dir and every listener but HTTP off."""

    name = "influxd"

    def __init__(self, binary: str | None = None, *, auth_enabled: bool = False) -> None:
        super().__init__()
        self.binary = binary or find_binary("influxd", "/usr/bin/influxd")
        self.auth_enabled = auth_enabled
        self.rpc_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _pick_ports(self) -> None:
        # The RPC (backup/restore) listener defaults to 8088, which parallel runs would fight over.
        self.port, self.rpc_port = free_ports(2)

    def _write_config(self) -> list[str]:
        config = self.dir / "influxdb.conf"
        config.write_text(
            f"""\
# Upstream calls it reporting-disabled, Debian's build reporting-enabled; unknown keys are ignored.
reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{self.dir}/meta"

[data]
  dir = "{self.dir}/data"
  wal-dir = "{self.dir}/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {str(self.auth_enabled).lower()}
  log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
""",
            encoding="utf-8",
        )
        return [self.binary, "run", "-config", str(config)]

    def _ready(self) -> bool:
        if f"addr=127.0.0.1:{self.port} " not in self._log_since_start():  # msg="Listening on HTTP" addr=…
            return False
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.TransportError:
            return False

    def query(self, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> dict[str, Any]:
        """POST an InfluxQL statement; the decoded JSON answer (times in epoch ms)."""
        params = {"q": q, "epoch": "ms", **({"db": db} if db else {})}
        response = httpx.post(f"{self.url}/query", params=params, auth=auth, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def write(self, lines: str, db: str, auth: tuple[str, str] | None = None) -> httpx.Response:
        """POST raw line protocol (ms precision); the response, whatever its status."""
        params = {"db": db, "precision": "ms"}
        return httpx.post(f"{self.url}/write", params=params, content=lines.encode(), auth=auth, timeout=10)
