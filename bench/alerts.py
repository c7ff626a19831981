"""Alert latency under load: a freezing reading published -> its alert received on the alerts topic.

On a fresh mosquitto and influxd from ``tests/servers.py`` this runs ``coldchain run --config F``
(ingest + rules + HTTP in one process, the production defaults: ``influx.linger`` 200 ms,
``rules.checkpoint_every`` and ``rules.tick`` 1 s) for ``--sensors`` temperature sensors in 20
fridges, plus one dedicated trigger sensor per trigger, so every trigger starts a fresh episode.
Then, in this process:

- background load: a paho publisher thread (QoS 1, MQTT 5, no in-flight limit, never waiting
  for a PUBACK) sends ``--rate`` in-range readings per second (3.5-6.5 degC, ``ts`` = now) round
  robin over the background sensors, paced in 10 ms slices, from ``--warmup`` seconds before the
  first trigger until the last alert is in;
- triggers: every 50-100 ms (uniformly random, ``--seed``), one QoS-1 freezing reading
  (``celsius`` -1.0, ``ts`` = now) on the next trigger sensor. The monotonic clock is read just
  before ``publish``; a subscriber on ``<prefix>/alerts/freezing/+`` records when the ``open``
  alert for that sensor arrives. Latency = arrival - publish. A trigger with no alert within 5 s
  counts as missing (and as an infinite latency in the percentiles);
- baseline, same run, same load, same two clients: halfway between two triggers the trigger
  client publishes a probe on ``<prefix>/bench/probe`` (a topic coldchain does not subscribe to)
  and the same subscriber receives it: the broker round trip alone, the floor coldchain adds to.

Percentiles are nearest-rank. Also printed: the background rate achieved, how many background
readings coldchain's ingest received by the end (it must keep up for the figure to mean
anything) and, over the triggers, the CPU used (in cores) by coldchain, this script, the two
servers and everything else on the machine, how long coldchain's threads waited for a CPU
(``/proc/<pid>/task/*/schedstat``), the machine's CPU pressure (PSI) and the load average. On a
shared machine the tail follows the other load: compare with the baseline row, and distrust a
run where "everything else" is large.

Run from the repository root (about 35 s with the defaults):

    .venv/bin/python bench/alerts.py [--triggers 300] [--rate 1000] [--sensors 2000] [--warmup 5] [--keep]

``--keep`` keeps the work dir (config, coldchain's log, ``latencies.csv`` per trigger). Exit
status 1 if a trigger got no alert or coldchain did not stop cleanly; a missed target is printed
as FAIL but exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import cpu_seconds  # noqa: E402
from coldchain.config import load_settings  # noqa: E402
from tests.servers import Influxd, Mosquitto  # noqa: E402
from tests.service_process import ColdchainProcess, free_port  # noqa: E402

TARGET_P99_MS = 250.0
MISSING_AFTER = 5.0
UNITS = 20
GAP_MIN, GAP_MAX = 0.050, 0.100
SLICE = 0.010


# -- configuration ---------------------------------------------------------------------------


def write_config(directory: Path, mqtt_url: str, influx_url: str, prefix: str, sensors: int, triggers: int) -> Path:
    """``sensors`` background sensors ``t-NNNN`` and ``triggers`` sensors ``frz-NNNN`` in 20 fridges."""
    run = uuid.uuid4().hex[:8]
    lines = [
        "[mqtt]",
        f'url = "{mqtt_url}"',
        f'client_id = "bench-alerts-{run}"',
        f'topic_prefix = "{prefix}"',
        "[influx]",
        f'url = "{influx_url}"',
        f'database = "bench_{run}"',
        "[spool]",
        f'path = "{directory / "spool.sqlite"}"',
        "[rules]",
        f'client_id = "bench-alerts-rules-{run}"',
        f'state_path = "{directory / "rules.sqlite"}"',
        f'spool_path = "{directory / "rules-spool.sqlite"}"',
        "[api]",
        f'listen = "127.0.0.1:{free_port()}"',
        "[log]",
        'format = "json"',
        'level = "INFO"',
    ]
    for unit in range(UNITS):
        lines += ["[[units]]", f'id = "fridge-{unit:02d}"', 'site = "bench-pharmacy"', f'name = "Fridge {unit}"']
    per_unit = math.ceil(sensors / UNITS)
    for s in range(sensors):
        lines += ["[[sensors]]", f'id = "{background_sensor(s)}"', f'unit = "fridge-{s // per_unit:02d}"']
        lines.append('kind = "temperature"')
    for t in range(triggers):
        lines += ["[[sensors]]", f'id = "{trigger_sensor(t)}"', f'unit = "fridge-{t % UNITS:02d}"']
        lines.append('kind = "temperature"')
    path = directory / "coldchain.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def background_sensor(index: int) -> str:
    return f"t-{index:04d}"


def trigger_sensor(index: int) -> str:
    return f"frz-{index:04d}"


# -- MQTT clients ----------------------------------------------------------------------------


def connect(port: int, name: str) -> paho.Client:
    """A clean-session MQTT 5 client, connected, its network loop running; no in-flight limit."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(0)  # 0 = unlimited: a finite window makes paho rescan its queue per ack
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    if not connected.wait(10):
        client.loop_stop()
        raise RuntimeError(f"{name}: no CONNACK from the broker within 10 s")
    return client


def close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


class BackgroundLoad:
    """A thread publishing ``rate`` readings/s round robin over ``sensors``, paced in 10 ms slices."""

    def __init__(self, port: int, prefix: str, sensors: int, rate: float) -> None:
        self.client = connect(port, "bench-load")
        self.topics = [f"{prefix}/sensors/{background_sensor(s)}/temperature" for s in range(sensors)]
        self.rate = rate
        self.sent = 0
        self.acked = 0
        self.started = 0.0
        self.ended = 0.0
        self.max_lag = 0.0  # how far the publisher fell behind its schedule, at worst
        self._stop = threading.Event()
        self._ack_lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)

    def _on_publish(self, *args: Any) -> None:
        with self._ack_lock:
            self.acked += 1

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        rng = random.Random(1)
        topics = self.topics
        count = len(topics)
        publish = self.client.publish
        self.started = start = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            due = int((now - start) * self.rate)
            if due - self.sent > self.rate * SLICE:
                self.max_lag = max(self.max_lag, (due - self.sent) / self.rate)
            while self.sent < due:
                payload = f'{{"ts": {time.time():.3f}, "celsius": {rng.uniform(3.5, 6.5):.2f}}}'
                publish(topics[self.sent % count], payload, qos=1)
                self.sent += 1
            self._stop.wait(max(0.0, start + (self.sent + self.rate * SLICE) / self.rate - time.monotonic()))
        self.ended = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def close(self) -> None:
        self.stop()
        close(self.client)

    @property
    def achieved_rate(self) -> float:
        return self.sent / (self.ended - self.started) if self.ended > self.started else 0.0


class Arrivals:
    """Subscribes to the freezing alerts and the probe topic; the first arrival time of each."""

    def __init__(self, port: int, prefix: str) -> None:
        self.alert_prefix = f"{prefix}/alerts/freezing/"
        self.probe_topic = f"{prefix}/bench/probe"
        self.alerts: dict[str, float] = {}  # subject -> monotonic arrival of its "open"
        self.probes: dict[int, float] = {}
        self.unexpected: list[str] = []
        self._lock = threading.Lock()
        self.client = connect(port, "bench-sub")
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe([(f"{self.alert_prefix}+", 1), (self.probe_topic, 1)])
        if not subscribed.wait(10):
            raise RuntimeError("subscription to the alert topics not confirmed within 10 s")

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        arrived = time.monotonic()
        with self._lock:
            if message.topic == self.probe_topic:
                self.probes.setdefault(int(message.payload), arrived)
                return
            alert = json.loads(message.payload)
            if alert.get("state") == "open" and message.topic.startswith(self.alert_prefix):
                self.alerts.setdefault(alert["subject"], arrived)
            else:
                self.unexpected.append(f"{message.topic}: {alert.get('state')}")

    def snapshot(self) -> tuple[dict[str, float], dict[int, float]]:
        with self._lock:
            return dict(self.alerts), dict(self.probes)


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Figures:
    """Latencies in seconds (``inf`` for missing)."""

    latencies: list[float]

    @property
    def count(self) -> int:
        return sum(1 for x in self.latencies if math.isfinite(x))

    @property
    def missing(self) -> int:
        return len(self.latencies) - self.count

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def machine_busy() -> float:
    """CPU seconds this machine has been busy so far, all cores: user, nice, system, irq, softirq (``/proc/stat``)."""
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def fire(publisher: paho.Client, prefix: str, triggers: int, seed: int) -> tuple[list[float], list[float]]:
    """Publish the triggers and probes; their monotonic publish times."""
    rng = random.Random(seed)
    probe_topic = f"{prefix}/bench/probe"
    sent_triggers: list[float] = []
    sent_probes: list[float] = []
    next_at = time.monotonic()
    for i in range(triggers):
        gap = rng.uniform(GAP_MIN, GAP_MAX)
        sleep_until(next_at + gap / 2)
        sent_probes.append(time.monotonic())
        publisher.publish(probe_topic, str(i).encode(), qos=1)
        next_at += gap
        sleep_until(next_at)
        payload = json.dumps({"ts": round(time.time(), 3), "celsius": -1.0}).encode()
        sent_triggers.append(time.monotonic())
        publisher.publish(f"{prefix}/sensors/{trigger_sensor(i)}/temperature", payload, qos=1)
    return sent_triggers, sent_probes


def sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def wait_all(arrivals: Arrivals, triggers: int, last_sent: float) -> None:
    deadline = last_sent + MISSING_AFTER
    while time.monotonic() < deadline:
        alerts, probes = arrivals.snapshot()
        if len(alerts) >= triggers and len(probes) >= triggers:
            return
        time.sleep(0.02)


def cpu_pressure() -> float | None:
    """Seconds during which some runnable task on this machine waited for a CPU (PSI), if the kernel says."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return int(some.rsplit("total=", 1)[1]) / 1e6


def run_queue_wait(pid: int) -> float:
    """Seconds the threads of ``pid`` (those alive now) have spent runnable but waiting for a CPU."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended, or no schedstats in this kernel
    return total / 1e9


class CpuMeter:
    """Between ``start`` and ``stop``: CPU used, in cores, by named processes and by the whole machine;
    how long ``watched``'s threads waited for a CPU; the machine's CPU pressure."""

    def __init__(self, pids: dict[str, list[int]], watched: int) -> None:
        self.pids = pids
        self.watched = watched
        self._before: dict[str, float] = {}
        self._machine = 0.0
        self._waited = 0.0
        self._pressure: float | None = None
        self._wall = 0.0
        self.cores: dict[str, float] = {}
        self.waited = 0.0  # seconds of run-queue wait per second, summed over the watched process's threads
        self.pressure: float | None = None  # fraction of the time some task waited for a CPU

    def _sample(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.pids.items()}

    def start(self) -> None:
        self._before, self._machine = self._sample(), machine_busy()
        self._waited, self._pressure = run_queue_wait(self.watched), cpu_pressure()
        self._wall = time.monotonic()

    def stop(self) -> None:
        after, busy, wall = self._sample(), machine_busy(), time.monotonic() - self._wall
        self.cores = {name: (after[name] - self._before[name]) / wall for name in after}
        machine = (busy - self._machine) / wall
        self.cores["everything else"] = max(0.0, machine - sum(self.cores.values()))
        self.cores["machine"] = machine
        self.waited = (run_queue_wait(self.watched) - self._waited) / wall
        pressure = cpu_pressure()
        if pressure is not None and self._pressure is not None:
            self.pressure = (pressure - self._pressure) / wall

    def describe(self) -> str:
        cores = ", ".join(f"{name} {cores:.2f}" for name, cores in self.cores.items())
        pressure = f"{self.pressure * 100:.0f}%" if self.pressure is not None else "n/a"
        return (
            f"{cores}; coldchain threads waited for a CPU {self.waited * 1000:.0f} ms/s; "
            f"some task waiting for a CPU {pressure} of the time (PSI)"
        )


def run(args: argparse.Namespace) -> int:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="coldchain-bench-alerts-"))
    ok = False
    try:
        with ExitStack() as stack:
            ok = measure(args, stack, prefix, workdir)
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}")
    return 0 if ok else 1


def measure(args: argparse.Namespace, stack: ExitStack, prefix: str, workdir: Path) -> bool:
    """Start everything (``stack`` stops it), measure, print; True if every trigger got its alert."""
    mosquitto = stack.enter_context(Mosquitto())
    influxd = stack.enter_context(Influxd())
    config = write_config(workdir, mosquitto.url, influxd.url, prefix, args.sensors, args.triggers)
    service = ColdchainProcess(config, role="run")
    stack.callback(service.kill)  # after a clean stop this does nothing
    service.start()
    assert service.process is not None and mosquitto.pid is not None and influxd.pid is not None

    arrivals = Arrivals(mosquitto.port, prefix)
    stack.callback(close, arrivals.client)
    publisher = connect(mosquitto.port, "bench-trigger")
    stack.callback(close, publisher)
    load = BackgroundLoad(mosquitto.port, prefix, args.sensors, args.rate)
    stack.callback(load.close)
    cpu = CpuMeter(
        {"coldchain": [service.process.pid], "bench": [os.getpid()], "mosquitto+influxd": [mosquitto.pid, influxd.pid]},
        watched=service.process.pid,
    )

    load.start()
    time.sleep(args.warmup)
    load_before = os.getloadavg()
    cpu.start()
    sent_triggers, sent_probes = fire(publisher, prefix, args.triggers, args.seed)
    wait_all(arrivals, args.triggers, sent_triggers[-1])
    cpu.stop()
    load.stop()
    load_after = os.getloadavg()
    time.sleep(1.0)  # let ingest take the last background readings before we count them
    received = int(metric(service.get("/metrics").text, "coldchain_messages_received_total"))
    alerts, probes = arrivals.snapshot()
    exit_code = service.stop()

    subjects = [trigger_sensor(i) for i in range(args.triggers)]
    coldchain = latencies(sent_triggers, alerts, subjects)
    broker = latencies(sent_probes, probes, list(range(args.triggers)))
    if args.keep:
        with (workdir / "latencies.csv").open("w", encoding="utf-8") as out:
            out.write("trigger,sent_s,alert_ms,probe_ms\n")
            for i, at in enumerate(sent_triggers):
                out.write(f"{i},{at - sent_triggers[0]:.4f},{coldchain.latencies[i] * 1000:.2f},")
                out.write(f"{broker.latencies[i] * 1000:.2f}\n")

    settings = load_settings(config)
    print(
        f"alert latency: {args.triggers} freezing triggers every {GAP_MIN * 1000:.0f}-{GAP_MAX * 1000:.0f} ms, "
        f"background {args.rate:.0f} readings/s over {args.sensors} sensors (QoS 1), coldchain run "
        f"(influx.linger {settings.influx.linger.total_seconds() * 1000:.0f} ms, rules.checkpoint_every "
        f"{settings.rules.checkpoint_every.total_seconds() * 1000:.0f} ms, rules.tick "
        f"{settings.rules.tick.total_seconds() * 1000:.0f} ms)"
    )
    print(
        f"background: {load.sent} readings sent at {load.achieved_rate:.0f}/s (worst lag behind schedule "
        f"{load.max_lag * 1000:.0f} ms), {load.acked} acked; coldchain ingest received {received} of "
        f"{load.sent + args.triggers} (incl. triggers)"
    )
    print(
        f"CPU during the triggers, in cores of {os.cpu_count()}: {cpu.describe()}; "
        f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}"
    )
    print(table(broker, coldchain))
    if arrivals.unexpected:
        print(f"unexpected alert messages: {arrivals.unexpected[:5]}")
    if exit_code != 0:
        print(f"coldchain exited with {exit_code}; log: {service.log_path}")
    if coldchain.missing:
        print(f"{coldchain.missing} triggers got no alert within {MISSING_AFTER:.0f} s; log: {service.log_path}")
    passed = coldchain.missing == 0 and coldchain.percentile(99) * 1000 <= TARGET_P99_MS
    print(f"target: freezing alert p99 <= {TARGET_P99_MS:.0f} ms: {'PASS' if passed else 'FAIL'}")
    return coldchain.missing == 0 and exit_code == 0


def latencies(sent: list[float], arrived: dict[Any, float], keys: list[Any]) -> Figures:
    """Arrival - publish per key, ``inf`` when nothing arrived within ``MISSING_AFTER``."""
    out = []
    for at, key in zip(sent, keys, strict=True):
        got = arrived.get(key)
        out.append(got - at if got is not None and got - at <= MISSING_AFTER else math.inf)
    return Figures(out)


def table(broker: Figures, coldchain: Figures) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:8.1f}" if math.isfinite(seconds) else f"{'>' + str(int(MISSING_AFTER * 1000)):>8}"

    header = f"{'ms':<34}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}{'count':>7}{'missing':>9}"
    rows = [header, "-" * len(header)]
    for name, figures in (("broker round trip (baseline)", broker), ("publish -> freezing alert", coldchain)):
        cells = "".join(ms(figures.percentile(p)) for p in (50, 90, 99, 100))
        rows.append(f"{name:<34}{cells}{figures.count:>7}{figures.missing:>9}")
    rows.append(f"{'target':<34}{'':>8}{'':>8}{'<= ' + str(int(TARGET_P99_MS)):>8}{'':>8}{'':>7}{'0':>9}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--triggers", type=int, default=300, help="freezing readings to time (>= 200)")
    parser.add_argument("--rate", type=float, default=1000.0, help="background readings per second")
    parser.add_argument("--sensors", type=int, default=2000, help="background sensors")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of background load before the triggers")
    parser.add_argument("--seed", type=int, default=7, help="seed of the trigger spacing")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (config, coldchain log)")
    args = parser.parse_args()
    if args.triggers < 1 or args.rate <= 0 or args.sensors < 1:
        parser.error("--triggers, --rate and --sensors must be positive")
    if args.triggers < 200:
        print(f"note: with {args.triggers} triggers the p99 is little more than the maximum (the issue asks >= 200)")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
