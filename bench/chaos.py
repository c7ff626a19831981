"""Chaos soak: a steady stream of readings while coldchain, the broker, InfluxDB and the disk fail.

For ``--minutes`` (at least 10 for the figures that count), ``--sensors`` temperature sensors (200 by
default, in units of 10) each publish one QoS-1 reading a second to a real mosquitto, with scripted
excursions (a sensor above 8 °C for longer than its ``excursion_delay``, then back in range), into
``coldchain run`` writing to a real InfluxDB, its state directory on a small tmpfs, every alert
going to a local webhook. At random moments (seeded) one fault at a time, each kind once in random
order before any repeats:

- ``kill -9`` of coldchain, restarted after 2-5 s;
- mosquitto stopped (cleanly: it keeps the sessions and what it accepted) for 20 s, then started;
- InfluxDB stopped for a minute, then started;
- the state disk filled to its last 64 kB for 30 s, then freed.

It prints, with what each must be:

- readings the publisher got a PUBACK for vs readings stored (``count(celsius)``): equal;
- scripted excursions vs ``temperature_high`` alerts opened: each exactly once, with the episode's
  deterministic id (one id per episode), and no other;
- notifications per alert: no (alert, notice) delivered twice to the webhook;
- the longest time any role was dead: coldchain not answering ``/healthz`` (after a kill -9, until it
  is back) and the longest run of ``/readyz`` naming a role;
- the longest silence between a fault and its system alert at the webhook (broker_unreachable after
  ``mqtt.outage_alert_after`` = 10 s, store_unreachable after ``influx.outage_alert_after`` = 20 s,
  disk_low under ``state.min_free`` = 2 MB), each with that threshold as its baseline.

Needs root (the tmpfs). Run from the repository root; it uses about half a core:

    .venv/bin/python bench/chaos.py [--minutes 10] [--sensors 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coldchain.core.alert import alert_id  # noqa: E402
from tests.servers import Influxd, Mosquitto  # noqa: E402
from tests.service_process import ColdchainProcess, free_port  # noqa: E402

EXCURSION_DELAY = 20
"""Seconds above 8 °C before temperature_high opens (the units' profile override)."""
EXCURSION_LENGTH = 35
"""Seconds each scripted excursion stays above 8 °C."""
THRESHOLDS = {"broker_unreachable": 10.0, "store_unreachable": 20.0, "disk_low": 2.0}


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the webhook ---------------------------------------------------------------------------------


@dataclass
class Hook:
    """A local webhook target keeping (arrival monotonic time, title, body) of every notification."""

    received: list[tuple[float, str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> tuple[ThreadingHTTPServer, int]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with hook.lock:
                    hook.received.append((time.monotonic(), str(body.get("title")), str(body.get("message"))))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, int(server.server_address[1])

    def snapshot(self) -> list[tuple[float, str, str]]:
        with self.lock:
            return list(self.received)


def line_of(body: str, prefix: str) -> str:
    return next((line.removeprefix(prefix) for line in body.splitlines() if line.startswith(prefix)), "")


# -- the sensors ---------------------------------------------------------------------------------


class Sensors:
    """Every sensor publishes one reading a second; PUBACKs are counted per (sensor, ts)."""

    def __init__(self, port: int, prefix: str, sensors: list[str], rng: random.Random) -> None:
        self.prefix = prefix
        self.sensors = sensors
        self.rng = rng
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"chaos-pub-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_publish = self._on_publish
        self.published = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}
        self.excursions: list[tuple[str, datetime]] = []
        self._hot: dict[str, int] = {}
        self._stop = threading.Event()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="sensors", daemon=True)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self.acked += 1

    def start(self) -> None:
        self._thread.start()

    def excursion(self) -> None:
        """One sensor not already hot goes above 8 °C for EXCURSION_LENGTH seconds from its next reading."""
        calm = [s for s in self.sensors if s not in self._hot]
        if calm:
            self._hot[self.rng.choice(calm)] = -1

    def _run(self) -> None:
        tick = time.monotonic()
        second = int(time.time())
        while not self._stop.is_set():
            ts = datetime.fromtimestamp(second, UTC)
            for sensor in self.sensors:
                left = self._hot.get(sensor)
                celsius = 4.5
                if left is not None:
                    if left == -1:
                        self.excursions.append((sensor, ts))
                        left = EXCURSION_LENGTH
                    celsius = 10.0 if left > 0 else 4.5
                    if left <= 0:
                        del self._hot[sensor]
                    else:
                        self._hot[sensor] = left - 1
                payload = json.dumps({"ts": iso(ts), "celsius": celsius}).encode()
                self.client.publish(f"{self.prefix}/sensors/{sensor}/temperature", payload, qos=1)
                self.published += 1
            second += 1
            tick += 1.0
            self._stop.wait(max(0.0, tick - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def wait_acked(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < self.published and time.monotonic() < deadline:
            time.sleep(0.5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- watching coldchain --------------------------------------------------------------------------


class Watch:
    """Polls /healthz and /readyz every 0.5 s: the longest time coldchain was down, or a role named."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.down_since: float | None = None
        self.longest_down = 0.0
        self.role_since: float | None = None
        self.longest_role = 0.0
        self.role_problems: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.wait(0.5):
                now = time.monotonic()
                try:
                    healthy = client.get(self.api + "/healthz").status_code == 200
                    problems = client.get(self.api + "/readyz").json()["problems"]
                except (httpx.HTTPError, ValueError):
                    healthy, problems = False, []
                if not healthy:
                    self.down_since = self.down_since or now
                    self.longest_down = max(self.longest_down, now - self.down_since)
                else:
                    self.down_since = None
                roles = [p for p in problems if p.startswith("role ")]
                self.role_problems.update(roles)
                if roles:
                    self.role_since = self.role_since or now
                    self.longest_role = max(self.longest_role, now - self.role_since)
                else:
                    self.role_since = None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- the run -------------------------------------------------------------------------------------


def config_text(
    base: Path, state: Path, mqtt: Mosquitto, influx: Influxd, prefix: str, database: str, hook: int, sensors: list[str]
) -> str:
    lines = [
        "[mqtt]",
        f'url = "{mqtt.url}"',
        f'client_id = "chaos-{uuid.uuid4().hex[:6]}"',
        f'topic_prefix = "{prefix}"',
        'reconnect_max = "2s"',
        'outage_alert_after = "10s"',
        "[influx]",
        f'url = "{influx.url}"',
        f'database = "{database}"',
        'timeout = "2s"',
        'outage_alert_after = "20s"',
        "[spool]",
        f'path = "{state / "spool.sqlite"}"',
        "[state]",
        'min_free = "2MB"',
        'check_every = "2s"',
        "[rules]",
        f'client_id = "chaos-r-{uuid.uuid4().hex[:6]}"',
        f'state_path = "{state / "rules.sqlite"}"',
        "[notify]",
        f'state_path = "{state / "notify.sqlite"}"',
        'default_targets = ["hook"]',
        'retry_max = "2s"',
        "[[notify.targets]]",
        'name = "hook"',
        f'url = "json://127.0.0.1:{hook}/hook"',
        "[api]",
        f'listen = "127.0.0.1:{free_port()}"',
        "[log]",
        'format = "json"',
        'level = "INFO"',
    ]
    units = sorted({s.split("-")[1] for s in sensors})
    for unit in units:
        lines += [
            "[[units]]",
            f'id = "fridge-{unit}"',
            'site = "chaos-site"',
            'offline_after = "15m"',
            "[units.overrides]",
            f'excursion_delay = "{EXCURSION_DELAY}s"',
            'clear_after = "10s"',
        ]
    for sensor in sensors:
        lines += ["[[sensors]]", f'id = "{sensor}"', f'unit = "fridge-{sensor.split("-")[1]}"', 'kind = "temperature"']
    return "\n".join(lines) + "\n"


def count_readings(influx: Influxd, database: str) -> int:
    try:
        result = influx.query('SELECT count("celsius") FROM "temperature"', db=database)
        series = result["results"][0].get("series") or []
        return int(series[0]["values"][0][1]) if series else 0
    except (httpx.HTTPError, KeyError, IndexError, ValueError):
        return -1


def stored_alerts(influx: Influxd, database: str, kind: str) -> list[dict[str, Any]]:
    result = influx.query(f'SELECT * FROM "alert" WHERE "kind" = \'{kind}\'', db=database)
    out = []
    for series in result["results"][0].get("series") or []:
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sensors = [f"t-{i // 10:02d}-{i % 10}" for i in range(args.sensors)]
    base = Path(tempfile.mkdtemp(prefix="coldchain-chaos-"))
    state = base / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(state)], check=True)
    hook = Hook()
    hook_server, hook_port = hook.serve()
    mqtt, influx = Mosquitto().start(), Influxd().start()
    prefix, database = f"chaos{uuid.uuid4().hex[:6]}", f"chaos_{uuid.uuid4().hex[:6]}"
    config = base / "coldchain.toml"
    config.write_text(config_text(base, state, mqtt, influx, prefix, database, hook_port, sensors))
    service = ColdchainProcess(config, "run")
    faults: list[tuple[str, float, float]] = []  # (kind, started, ended) in monotonic time
    publisher: Sensors | None = None
    watch: Watch | None = None
    try:
        service.start()
        watch = Watch(service.api)
        publisher = Sensors(mqtt.port, prefix, sensors, rng)
        publisher.start()
        began = time.monotonic()
        end = began + args.minutes * 60
        next_excursion = began + 15
        next_fault = began + rng.uniform(40, 70)
        kinds = ["kill-9", "broker", "influx", "disk"]
        deck: list[str] = []
        print(f"chaos: {args.sensors} sensors at 1/s for {args.minutes:g} min, seed {args.seed}", flush=True)
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_excursion:
                publisher.excursion()
                next_excursion = now + rng.uniform(20, 40)
            if now >= next_fault and now < end - 90:
                if not deck:  # every kind once, in random order, before any repeats
                    deck = rng.sample(kinds, len(kinds))
                kind = deck.pop()
                started = time.monotonic()
                print(f"  {started - began:6.0f} s  fault: {kind}", flush=True)
                if kind == "kill-9":
                    service.kill()
                    time.sleep(rng.uniform(2, 5))
                    service.start()
                elif kind == "broker":
                    mqtt.stop()
                    time.sleep(20)
                    mqtt.start()
                elif kind == "influx":
                    influx.stop()
                    time.sleep(60)
                    influx.start()
                else:
                    filler = state / "filler"
                    free = shutil.disk_usage(state).free
                    with filler.open("wb") as out:
                        out.write(b"\0" * max(0, free - 64 * 1024))
                    time.sleep(30)
                    filler.unlink()
                faults.append((kind, started, time.monotonic()))
                next_fault = time.monotonic() + rng.uniform(30, 60)
            time.sleep(0.2)
        publisher.stop()
        publisher.wait_acked(120)
        # let the last excursions resolve and everything reach the store
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and count_readings(influx, database) < publisher.acked:
            time.sleep(1)
        time.sleep(EXCURSION_LENGTH)
        return report(args, publisher, influx, database, hook, watch, faults, began)
    finally:
        if watch is not None:
            watch.stop()
        if publisher is not None:
            publisher.close()
        service.kill()
        mqtt.close()
        influx.close()
        hook_server.shutdown()
        subprocess.run(["umount", "-l", str(state)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def report(
    args: argparse.Namespace,
    publisher: Sensors,
    influx: Influxd,
    database: str,
    hook: Hook,
    watch: Watch,
    faults: list[tuple[str, float, float]],
    began: float,
) -> int:
    ok = True
    stored = count_readings(influx, database)
    print("\nresults")
    print(
        f"  readings published {publisher.published}, PUBACKed {publisher.acked}, stored {stored}"
        f"  (must be equal: {'yes' if stored == publisher.acked else 'NO'})"
    )
    ok &= stored == publisher.acked
    expected = {alert_id("temperature_high", sensor, ts): (sensor, ts) for sensor, ts in publisher.excursions}
    rows = stored_alerts(influx, database, "temperature_high")
    opened = Counter(row["id"] for row in rows if row["state"] == "open")
    resolved = {row["id"] for row in rows if row["state"] == "resolved"}
    missing = [expected[i] for i in expected if i not in opened]
    extra = [i for i in opened if i not in expected]
    twice = [i for i, n in opened.items() if n > 1]
    print(
        f"  scripted excursions {len(expected)}, temperature_high alerts opened {len(opened)}"
        f" (one id per episode), resolved {len(resolved & set(expected))};"
        f" missing {len(missing)}, unexpected {len(extra)}, opened twice {len(twice)}"
    )
    ok &= not missing and not extra
    for sensor, ts in missing[:5]:
        print(f"    missing: {sensor} from {iso(ts)}")
    notices = Counter(
        (line_of(body, "Alert id: "), title, line_of(body, "Why you get this: ")) for _, title, body in hook.snapshot()
    )
    per_alert = Counter(key[0] for key in notices)
    duplicates = {key: n for key, n in notices.items() if n > 1}
    print(
        f"  notifications {sum(notices.values())} for {len(per_alert)} alerts"
        f" (max {max(per_alert.values(), default=0)} per alert); duplicates {len(duplicates)}"
    )
    for (aid, title, _), n in list(duplicates.items())[:5]:
        print(f"    {n}x {title} ({aid})")
    ok &= not duplicates
    print(f"  longest time coldchain was down (kill -9 until /healthz answers): {watch.longest_down:.1f} s")
    print(
        f"  longest run of /readyz naming a role: {watch.longest_role:.1f} s"
        + (f" ({', '.join(sorted({p.split(':')[0] for p in watch.role_problems}))})" if watch.role_problems else "")
    )
    kinds = {"broker": "MQTT broker unreachable", "influx": "Store unreachable", "disk": "Disk space low"}
    worst: dict[str, float] = {}
    received = hook.snapshot()
    for kind, started, ended in faults:
        words = kinds.get(kind)
        if words is None:
            continue
        alert_kind = {"broker": "broker_unreachable", "influx": "store_unreachable", "disk": "disk_low"}[kind]
        pages = [at for at, title, _ in received if words in title and "RESOLVED" not in title and at >= started]
        latency = (pages[0] - started) if pages and pages[0] <= ended + 30 else float("inf")
        worst[alert_kind] = max(worst.get(alert_kind, 0.0), latency)
    for alert_kind, latency in sorted(worst.items()):
        print(
            f"  longest silence fault -> {alert_kind} at the webhook: {latency:.1f} s"
            f" (baseline: the configured threshold {THRESHOLDS[alert_kind]:g} s)"
        )
        ok &= latency != float("inf")
    counts = Counter(kind for kind, _, _ in faults)
    print(f"  faults injected: {dict(counts)} over {(time.monotonic() - began) / 60:.1f} min")
    print(f"  verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
