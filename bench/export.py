"""Audit export throughput: ``coldchain export`` of a year of 1-minute readings from a real influxd.

On a fresh influxd from ``tests/servers.py``:

1. seed ``--days`` days of one reading a minute for ``--sensors`` temperature sensors (two per
   unit; 365 days x 10 sensors = 5,256,000 readings), written as line protocol over HTTP in
   50,000-point batches (not measured), with a few excursions and gaps so the export has work;
2. fetch the same rows with plain chunked InfluxQL (``SELECT * FROM temperature WHERE time ...``,
   ``chunked=true``, 10,000 rows a chunk, every line parsed with ``json.loads``, rows counted):
   once to warm influxd's caches, and once more after the export; the faster run is the raw figure;
3. run ``coldchain export --config F --from D0 --to D1 --out DIR`` (csv,pdf: the default) as a
   child process, timed by the wall clock, its peak RSS from ``os.wait4``'s rusage.

Printed: both times, the export's speed as a share of the raw fetch's, the peak RSS, and the
targets (export <= 60 s, <= 300 MB, >= 25 % of the raw fetch speed).

Run from the repository root:

    .venv/bin/python bench/export.py [--days 365] [--sensors 10]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import Influxd  # noqa: E402

BATCH = 50_000
START = datetime(2025, 1, 1, tzinfo=UTC)
TARGET_SECONDS = 60.0
TARGET_RSS_MB = 300.0
TARGET_SHARE = 0.25


def celsius(sensor: int, minute: int) -> float | None:
    """A fridge's day: 5 °C with a slow swing, a 40-minute excursion every 9 days, a 30-minute gap every 13."""
    day, at = divmod(minute, 1440)
    if (day + sensor) % 13 == 0 and 600 <= at < 630:
        return None
    if (day + sensor) % 9 == 0 and 120 <= at < 160:
        return 9.5
    return round(5.0 + 1.5 * math.sin((minute + sensor * 97) / 240), 2)


def seed(server: Influxd, database: str, days: int, sensors: int) -> int:
    """Write the readings; the number written."""
    server.query(f'CREATE DATABASE "{database}"')
    start_ms = int(START.timestamp() * 1000)
    written = 0
    lines: list[str] = []
    client = httpx.Client(timeout=120)

    def flush() -> None:
        body = gzip.compress(("\n".join(lines)).encode(), compresslevel=1)
        response = client.post(
            f"{server.url}/write",
            params={"db": database, "precision": "ms"},
            content=body,
            headers={"Content-Encoding": "gzip"},
        )
        response.raise_for_status()
        lines.clear()

    keys = [f"temperature,sensor=t-{s:03d},site=bench-site,unit=fridge-{s // 2:02d}" for s in range(sensors)]
    for minute in range(days * 1440):
        ms = start_ms + minute * 60_000
        for s in range(sensors):
            value = celsius(s, minute)
            if value is None:
                continue
            lines.append(f"{keys[s]} celsius={float(value)!r} {ms}")
            written += 1
            if len(lines) >= BATCH:
                flush()
    if lines:
        flush()
    client.close()
    return written


def raw_fetch(server: Influxd, database: str, days: int) -> tuple[float, int]:
    """Seconds to fetch every reading with chunked InfluxQL, and the rows counted."""
    start_ms = int(START.timestamp() * 1000)
    end_ms = start_ms + days * 86_400_000
    q = f"SELECT * FROM temperature WHERE time >= {start_ms}ms AND time < {end_ms}ms ORDER BY time ASC"
    params = {"db": database, "q": q, "epoch": "ms", "chunked": "true", "chunk_size": "10000"}
    rows = 0
    began = time.monotonic()
    with httpx.stream("GET", f"{server.url}/query", params=params, timeout=600) as response:
        response.raise_for_status()
        pending = b""
        for chunk in response.iter_bytes():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    for result in json.loads(line).get("results", []):
                        for series in result.get("series", []):
                            rows += len(series["values"])
        if pending.strip():
            for result in json.loads(pending).get("results", []):
                for series in result.get("series", []):
                    rows += len(series["values"])
    return time.monotonic() - began, rows


def write_config(directory: Path, url: str, database: str, sensors: int) -> Path:
    lines = ["[influx]", f'url = "{url}"', f'database = "{database}"', 'timeout = "600s"']
    for unit in range((sensors + 1) // 2):
        lines += ["[[units]]", f'id = "fridge-{unit:02d}"', 'site = "bench-site"', f'name = "Bench fridge {unit}"']
    for s in range(sensors):
        lines += ["[[sensors]]", f'id = "t-{s:03d}"', f'unit = "fridge-{s // 2:02d}"', 'kind = "temperature"']
    path = directory / "coldchain.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_export(config: Path, out: Path, days: int) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS in MB, exit status, stdout) of ``coldchain export``."""
    last_day = (START + timedelta(days=days - 1)).date().isoformat()
    command = [
        sys.executable, "-m", "coldchain.cli", "export", "--config", str(config),
        "--from", START.date().isoformat(), "--to", last_day, "--out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    began = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - began, usage.ru_maxrss / 1024, process.returncode, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sensors", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coldchain-bench-export-"))
    database = "bench"
    try:
        with Influxd() as server:
            began = time.monotonic()
            written = seed(server, database, args.days, args.sensors)
            took = time.monotonic() - began
            print(f"seeded {written:,} readings ({args.sensors} sensors, {args.days} days) in {took:.1f}s")
            warm, rows = raw_fetch(server, database, args.days)
            print(f"raw fetch (warm-up): {warm:.1f}s for {rows:,} rows")
            config = write_config(work, server.url, database, args.sensors)
            seconds, rss_mb, status, output = run_export(config, work / "export", args.days)
            print(output.strip())
            if status != 0:
                print(f"export failed with exit status {status}", file=sys.stderr)
                return 1
            again, rows_again = raw_fetch(server, database, args.days)
            raw = min(warm, again)
            print(f"raw fetch (after):  {again:.1f}s for {rows_again:,} rows")
        sizes = {p.name: p.stat().st_size for p in (work / "export").iterdir()}
        share = raw / seconds
        print()
        print(f"readings                 {written:,}")
        print(f"export wall time         {seconds:.1f} s   (target <= {TARGET_SECONDS:.0f} s)")
        print(f"export peak RSS          {rss_mb:.0f} MB   (target <= {TARGET_RSS_MB:.0f} MB)")
        print(f"raw InfluxQL fetch       {raw:.1f} s   ({written / raw:,.0f} rows/s)")
        print(f"export speed / raw speed {share:.0%}   (target >= {TARGET_SHARE:.0%}; {written / seconds:,.0f} rows/s)")
        print("files: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(sizes.items())))
        met = seconds <= TARGET_SECONDS and rss_mb <= TARGET_RSS_MB and share >= TARGET_SHARE
        print("targets met" if met else "TARGETS MISSED")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
