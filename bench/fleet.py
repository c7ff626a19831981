"""A hospital network's fleet on one machine: what `coldchain run` costs at N sensors (issue 13).

On a fresh mosquitto and influxd from ``tests/servers.py`` this runs ``coldchain run --config F``
(ingest + rules + HTTP in one process, the production defaults) for N temperature sensors in
5-sensor units (units spread over 20 sites). A paho publisher (QoS 1) sends one in-range reading
per sensor per minute, spread evenly over the minute, ``ts`` = now. After ``--warmup`` seconds the
steady window of ``--window`` seconds is measured from ``/proc`` of the coldchain process:

- CPU cores (utime + stime over the window), bytes it wrote to disk per minute (``write_bytes`` of
  ``/proc/<pid>/io``: the spool, the rules snapshot, the outbox, the audit log, its logs), peak RSS;
- readings sent in the whole stream vs stored in InfluxDB 5 s after the stream stopped
  (``SELECT count(celsius)``: every reading has its own sensor and ``ts``, so none overwrites another);
- after the stream: ``kill -9`` of coldchain and the time until a new process answers ``/readyz``.

- readings judged: what the rules worker acked (``coldchain_rules_messages_acked_total``, each after the
  checkpoint covering it) 5 s after the stream, where the code measured has that metric.

The targets at 100,000 sensors (issue 13): keeps up (every reading stored and judged within 5 s),
at most 0.35 cores, 20 MB/min of disk writes, 1 GB peak RSS, ready 30 s after ``kill -9``.

The baseline is measured in the same run: the code of ``--baseline REV`` (repeatable; default: ``93dd78d``,
main just before the fleet work; ``merge-base`` for the merge-base with ``main``) is checked out into a
temporary ``git worktree`` and run the same way on fresh servers, just before this tree's code,
for every size. Code that has the fleet work's ``[inventory]`` reads CSV files from ``--csv-from``
sensors on (default 10,000), older code the TOML.
``--baseline none`` skips it. ``uptime`` is printed next to the figures (the machine is shared).

Run from the repository root:

    .venv/bin/python bench/fleet.py --sensors 2000 --sensors 20000 --sensors 100000 [--warmup 30] [--window 60]

``--sensors`` may be repeated; each size gets fresh servers. About warmup + window + 40 s per size
and code, plus start-up (which grows with the inventory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import cpu_seconds, peak_rss_mb  # noqa: E402
from tests.servers import Influxd, Mosquitto, free_ports  # noqa: E402

SENSORS_PER_UNIT = 5
SITES = 20
BEFORE_ISSUE_13 = "93dd78d"
"""main just before the fleet work (issue 13) landed: the default baseline."""
TARGETS = {"cores": 0.35, "write_mb_per_min": 20.0, "peak_rss_mb": 1024.0, "ready_s": 30.0}


def write_config(
    directory: Path, mqtt_url: str, influx_url: str, prefix: str, sensors: int, csv: bool, fleet_era: bool
) -> tuple[Path, str]:
    """coldchain's TOML for ``sensors`` temperature sensors (the inventory in it, or in CSV files beside it);
    returns the path and the API's base URL."""
    (api_port,) = free_ports(1)
    lines = [
        "[mqtt]",
        f'url = "{mqtt_url}"',
        f'client_id = "fleet-{uuid.uuid4().hex[:8]}"',
        f'topic_prefix = "{prefix}"',
        "[influx]",
        f'url = "{influx_url}"',
        'database = "fleet"',
        "[spool]",
        f'path = "{directory / "spool.sqlite"}"',
        "[rules]",
        f'client_id = "fleet-rules-{uuid.uuid4().hex[:8]}"',
        f'state_path = "{directory / "rules.sqlite"}"',
        f'spool_path = "{directory / "rules-spool.sqlite"}"',
        "[notify]",
        f'state_path = "{directory / "notify.sqlite"}"',
        *(["[rollups]", f'state_path = "{directory / "rollups.sqlite"}"'] if fleet_era else []),
        "[api]",
        f'listen = "127.0.0.1:{api_port}"',
        "[log]",
        'format = "json"',
        'level = "WARNING"',
    ]
    units = (sensors + SENSORS_PER_UNIT - 1) // SENSORS_PER_UNIT
    if csv:
        lines += ["[inventory]", 'units = "units.csv"', 'sensors = "sensors.csv"']
        unit_rows = "".join(f"u{u:06d},site-{u % SITES:02d}\n" for u in range(units))
        (directory / "units.csv").write_text("id,site\n" + unit_rows)
        sensor_rows = "".join(f"t{s:06d},u{s // SENSORS_PER_UNIT:06d},temperature\n" for s in range(sensors))
        (directory / "sensors.csv").write_text("id,unit,kind\n" + sensor_rows)
    else:
        for u in range(units):
            lines += ["[[units]]", f'id = "u{u:06d}"', f'site = "site-{u % SITES:02d}"']
        for s in range(sensors):
            unit = f"u{s // SENSORS_PER_UNIT:06d}"
            lines += ["[[sensors]]", f'id = "t{s:06d}"', f'unit = "{unit}"', 'kind = "temperature"']
    path = directory / "coldchain.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, f"http://127.0.0.1:{api_port}"


@dataclass
class ProcSample:
    cpu_s: float
    write_bytes: int
    at: float


def sample(pid: int) -> ProcSample:
    cpu = cpu_seconds(pid)
    write_bytes = 0
    with open(f"/proc/{pid}/io") as handle:
        for line in handle:
            if line.startswith("write_bytes:"):
                write_bytes = int(line.split()[1])
    return ProcSample(cpu, write_bytes, time.monotonic())


class Stream:
    """One reading per sensor per minute, evenly spread, QoS 1, ``ts`` = now, in a thread."""

    def __init__(self, port: int, prefix: str, sensors: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-pub-{uuid.uuid4().hex[:6]}")
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.prefix = prefix
        self.sensors = sensors
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        per_second = self.sensors / 60.0
        began = time.monotonic()
        index = 0
        while not self._stop.is_set():
            due = int((time.monotonic() - began) * per_second)
            while self.sent < due:
                sensor = f"t{index % self.sensors:06d}"
                index += 1
                ts = time.time()
                payload = f'{{"ts": {ts:.3f}, "celsius": {4.0 + (index % 30) / 10:.1f}}}'
                self.client.publish(f"{self.prefix}/sensors/{sensor}/temperature", payload, qos=1)
                self.sent += 1
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.loop_stop()
        self.client.disconnect()


class Service:
    """``coldchain run --config F`` as a subprocess, its log in the run's directory."""

    def __init__(self, config: Path, api: str, code: Path) -> None:
        self.config = config
        self.api = api
        self.code = code
        """The source tree whose ``coldchain`` package runs (this one, or the baseline's worktree)."""
        self.log = config.parent / "coldchain.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(timeout=2)

    def start(self) -> float:
        """Start; the seconds until ``/readyz`` answers 200."""
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "coldchain.cli", "run", "--config", str(self.config)],
                cwd=self.code,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(self.code)},
            )
        deadline = began + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"coldchain exited with {self.process.returncode}; see {self.log}")
            try:
                if self.http.get(self.api + "/readyz").status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"coldchain not ready after 300 s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.http.close()


def stored(influx_url: str) -> int:
    response = httpx.get(
        influx_url + "/query", params={"db": "fleet", "q": "SELECT count(celsius) FROM temperature"}, timeout=60
    )
    series = response.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def judged(api: str) -> int | None:
    """Messages the rules worker acked (None where the code has no such metric: the baseline's)."""
    for line in httpx.get(api + "/metrics", timeout=10).text.splitlines():
        if line.startswith("coldchain_rules_messages_acked_total "):
            return int(float(line.split()[1]))
    return None


@dataclass
class Figures:
    code: str
    sensors: int
    startup_s: float
    sent: int
    stored: int
    judged: int | None
    cores: float
    write_mb_per_min: float
    peak_rss_mb: float
    ready_after_kill_s: float
    load: str

    @property
    def kept_up(self) -> bool:
        return self.stored == self.sent and self.judged in (None, self.sent)


def measure(sensors: int, warmup: float, window: float, keep: bool, code: Path, label: str, csv: bool) -> Figures:
    with ExitStack() as stack:
        mosquitto = stack.enter_context(Mosquitto())
        influxd = stack.enter_context(Influxd())
        workdir = Path(tempfile.mkdtemp(prefix="coldchain-fleet-"))
        if not keep:
            stack.callback(shutil.rmtree, workdir, True)
        prefix = f"fleet{uuid.uuid4().hex[:6]}"
        fleet_era = (code / "coldchain" / "config" / "rollups.py").exists()  # [rollups] and [inventory] exist
        config, api = write_config(workdir, mosquitto.url, influxd.url, prefix, sensors, csv and fleet_era, fleet_era)
        service = Service(config, api, code)
        stack.callback(service.stop)
        startup = service.start()
        stream = Stream(mosquitto.port, prefix, sensors)
        stream.start()
        time.sleep(warmup)
        first = sample(service.pid)
        time.sleep(window)
        last = sample(service.pid)
        rss = peak_rss_mb(service.pid)
        stream.stop()
        time.sleep(5)
        count = stored(influxd.url)
        acked = judged(api)
        load = uptime()
        elapsed = last.at - first.at
        service.kill()
        again = Service(config, api, code)
        stack.callback(again.stop)
        ready = again.start()
        if keep:
            print(f"  work dir kept: {workdir}")
        return Figures(
            code=label,
            sensors=sensors,
            startup_s=startup,
            sent=stream.sent,
            stored=count,
            judged=acked,
            cores=(last.cpu_s - first.cpu_s) / elapsed,
            write_mb_per_min=(last.write_bytes - first.write_bytes) / elapsed * 60 / 1e6,
            peak_rss_mb=rss,
            ready_after_kill_s=ready,
            load=load,
        )


def uptime() -> str:
    """The load averages (1, 5, 15 min): the machine is shared, so they go next to the figures."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def baseline_tree(rev: str, stack: ExitStack) -> tuple[Path, str] | None:
    """A temporary ``git worktree`` of ``rev`` (default: the merge-base with main), removed at exit."""
    if rev == "none":
        return None
    git = ["git", "-C", str(ROOT)]
    if rev == "merge-base":
        rev = subprocess.run([*git, "merge-base", "HEAD", "main"], check=True, capture_output=True, text=True).stdout
    commit = subprocess.run([*git, "rev-parse", "--short", rev.strip()], check=True, capture_output=True, text=True)
    short = commit.stdout.strip()
    where = Path(tempfile.mkdtemp(prefix="coldchain-baseline-"))
    subprocess.run([*git, "worktree", "add", "--detach", str(where), short], check=True, capture_output=True)
    stack.callback(subprocess.run, [*git, "worktree", "remove", "--force", str(where)], capture_output=True)
    return where, short


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, action="append", help="fleet size (repeatable; default 2000)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of stream before the window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of the measured steady window")
    parser.add_argument("--keep", action="store_true", help="keep each run's work dir (config, log, state)")
    parser.add_argument(
        "--baseline",
        action="append",
        help="commit to measure as a baseline (repeatable; merge-base: with main), or none; "
        "default: main before issue 13",
    )
    parser.add_argument("--csv-from", type=int, default=10_000, help="this tree reads CSV inventories from N sensors")
    args = parser.parse_args()
    sizes = args.sensors or [2000]
    rows: list[Figures] = []
    with ExitStack() as stack:
        bases = [base for rev in args.baseline or [BEFORE_ISSUE_13] if (base := baseline_tree(rev, stack))]
        for sensors in sizes:
            runs = [(tree, f"base {short}", sensors >= args.csv_from) for tree, short in bases]
            runs.append((ROOT, "this tree", sensors >= args.csv_from))
            for code, label, csv in runs:
                print(f"measuring {sensors:,} sensors ({sensors / 60:,.0f} readings/s), {label} ...", flush=True)
                try:
                    rows.append(measure(sensors, args.warmup, args.window, args.keep, code, label, csv))
                except RuntimeError as exc:
                    print(f"  {label} at {sensors:,} sensors failed: {exc}", flush=True)
    header = (
        f"{'code':>14} {'sensors':>9} {'start s':>8} {'sent':>9} {'stored':>9} {'judged':>9} {'kept up':>8} "
        f"{'cores':>6} {'MB/min':>8} {'RSS MB':>7} {'ready s':>8}  load (1/5/15 min)"
    )
    print("\n" + header)
    for f in rows:
        print(
            f"{f.code:>14} {f.sensors:>9,} {f.startup_s:>8.1f} {f.sent:>9,} {f.stored:>9,} "
            f"{f.judged if f.judged is not None else 'n/a':>9} {'yes' if f.kept_up else 'NO':>8} "
            f"{f.cores:>6.2f} {f.write_mb_per_min:>8.1f} {f.peak_rss_mb:>7.0f} {f.ready_after_kill_s:>8.1f}  {f.load}"
        )
    for f in [f for f in rows if f.sensors >= 100_000 and f.code == "this tree"]:
        checks = [
            ("kept up", "ok" if f.kept_up else "FAIL"),
            (f"cores {f.cores:.2f} <= {TARGETS['cores']}", verdict(f.cores, TARGETS["cores"])),
            (
                f"writes {f.write_mb_per_min:.1f} MB/min <= {TARGETS['write_mb_per_min']}",
                verdict(f.write_mb_per_min, TARGETS["write_mb_per_min"]),
            ),
            (
                f"RSS {f.peak_rss_mb:.0f} MB <= {TARGETS['peak_rss_mb']:.0f}",
                verdict(f.peak_rss_mb, TARGETS["peak_rss_mb"]),
            ),
            (
                f"ready {f.ready_after_kill_s:.1f} s <= {TARGETS['ready_s']:.0f}",
                verdict(f.ready_after_kill_s, TARGETS["ready_s"]),
            ),
        ]
        print(f"\ntargets at {f.sensors:,} sensors: " + "; ".join(f"{what}: {ok}" for what, ok in checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
