"""Every dashboard panel's query over 1 day, 30 days and 1 year: raw readings (the baseline) vs rollups.

On a fresh influxd from ``tests/servers.py`` this seeds a site of ``--sensors`` temperature sensors
in 5-sensor units with 1-minute readings (line protocol, batches of 50,000 points) and their
5-minute and daily rollups (computed with ``coldchain.core.rollups``, as the keeper writes them).
A year of 1-minute data for 1,000 sensors (525 M points) is more than this machine seeds in a
bench run, so, honestly:

- the unit the unit dashboard shows (``fridge-0000``, 5 sensors) gets the full year of 1-minute raw
  readings and its rollups: its panels read exactly what they would read on a real site, since
  every unit panel filters by site, unit and sensor;
- every other sensor gets ``--other-days`` (default 1) of raw readings and ``--other-rollup-days``
  (default 2) of rollups
  (30 days of them, computed in Python for 995 sensors, take longer than a bench run; unit panels
  never read other units' data), so the index, the series count and the site-wide panels
  (overview: last reading per unit over 24 h) see a 1,000-sensor site.

Each query runs as Grafana sends it (``$timeFilter``, ``$__interval`` and variables interpolated
as in ``tests/test_dashboards.py``) over the last 1 day, 30 days and 1 year; median of 3 runs.
Panels without tiers print one figure (the sum of their targets). Panels with a raw and a rollup
tier run both tiers at the same interval (the tier condition
forced): raw is the baseline, rollup what the dashboard now reads from 5 minutes on (with Grafana's
1,000 points per panel: any range over ~3.5 days). The daily min/max table is compared against
the raw query it replaced. Target: at most 1 s per panel at 30 days.

Run from the repository root (seeding takes a few minutes):

    .venv/bin/python bench/dashboards.py [--sensors 1000] [--other-days 1] [--other-rollup-days 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coldchain.adapters.store.lineprotocol import encode
from coldchain.core.records import TemperatureReading
from coldchain.core.rollups import Band, SensorPlace, daily_of, rollups_of
from coldchain.core.times import from_millis
from tests.servers import Influxd
from tests.test_dashboards import BOARDS, QUERIES, interpolate

M = 60_000
D = 86_400_000
SITE = "site-1"
BAND = Band("temperature", 2.0, 8.0)
GAP = timedelta(minutes=10)
RANGES = {"1d": "now-1d", "30d": "now-30d", "1y": "now-365d"}
_TIER = re.compile(r" AND \$__interval_ms [<>]=? \d+")


def celsius(sensor_index: int, minute: int) -> float:
    """A plausible fridge: 5 °C with a daily swing, an excursion now and then."""
    value = 5.0 + 1.5 * ((minute % 1440) / 1440.0 - 0.5) + 0.1 * (sensor_index % 7)
    return round(value + (4.5 if minute % 9973 < 20 else 0.0), 2)


class Seeder:
    def __init__(self, db: Influxd, database: str) -> None:
        self.db = db
        self.database = database
        self.lines: list[str] = []
        self.points = 0

    def add(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= 50_000:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            response = self.db.write("\n".join(self.lines), self.database)
            assert response.status_code == 204, response.text[:300]
            self.points += len(self.lines)
            self.lines = []


def seed_sensor(seeder: Seeder, index: int, now: int, raw_days: int, rollup_days: int) -> None:
    sensor, unit = f"t-{index:05d}", f"fridge-{index // 5:04d}"
    place = SensorPlace(sensor, unit, SITE, BAND)
    start = now - rollup_days * D
    start -= start % D
    readings = []
    for minute in range((now - start) // M):
        at = start + minute * M
        value = celsius(index, minute)
        readings.append((from_millis(at), value))
        if at >= now - raw_days * D:
            seeder.add(encode(TemperatureReading(sensor, unit, SITE, from_millis(at), value)))
    five = rollups_of(readings, place, GAP)
    for rollup in [*five, *daily_of(five)]:
        seeder.add(encode(rollup))


def timed(client: httpx.Client, url: str, database: str, query: str) -> tuple[float, int]:
    """Median seconds of 3 runs, and the rows of the answer."""
    times, rows = [], 0
    for _ in range(3):
        began = time.perf_counter()
        response = client.get(f"{url}/query", params={"db": database, "q": query, "epoch": "ms"}, timeout=300)
        times.append(time.perf_counter() - began)
        response.raise_for_status()
        body = response.json()
        assert all("error" not in result for result in body["results"]), body
        rows = sum(len(s["values"]) for r in body["results"] for s in r.get("series", []))
    return statistics.median(times), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--other-days", type=int, default=1)
    parser.add_argument("--other-rollup-days", type=int, default=2)
    args = parser.parse_args()
    with Influxd() as db:
        db.start()
        database = "bench"
        db.query(f'CREATE DATABASE "{database}"')
        now = int(time.time()) * 1000
        seeder = Seeder(db, database)
        began = time.perf_counter()
        for index in range(5):
            seed_sensor(seeder, index, now, 365, 365)
        for index in range(5, args.sensors):
            seed_sensor(seeder, index, now, args.other_days, args.other_rollup_days)
        seeder.flush()
        seeded = time.perf_counter() - began
        print(
            f"seeded {seeder.points:,} points in {seeded:.0f} s: {args.sensors} sensors at {SITE}; fridge-0000's 5 "
            f"sensors 365 days of 1-minute raw + rollups, the others {args.other_days} d raw and "
            f"{args.other_rollup_days} d rollups"
        )
        selection = {
            "site": [SITE],
            "unit": ["fridge-0000"],
            "sensor": [f"t-{i:05d}" for i in range(5)],
        }
        baseline = {
            "coldchain-unit/panel/Daily min/max/A": (
                'SELECT min("celsius") AS "min", max("celsius") AS "max" FROM "temperature" WHERE "site" =~ '
                '/^(${site})$/ AND "unit" =~ /^(${unit})$/ AND "sensor" =~ /^(${sensor})$/ AND $timeFilter '
                'GROUP BY time(1d), "sensor" fill(none)'
            )
        }
        worst_30d = 0.0
        with httpx.Client() as client:
            print(f"{'panel query':58} {'range':>5} {'interval':>8} {'raw s':>8} {'rollup s':>9} {'rows':>7}")
            for key, ref in sorted(QUERIES.items()):
                if ref.where != "panel" or key.endswith("/B"):
                    continue
                board = dict(BOARDS[ref.board])
                for label, start in RANGES.items():
                    board["time"] = {"from": start, "to": "now"}
                    holder = ref.holder  # a panel with its own relative time (timeFrom) keeps it
                    other = QUERIES.get(f"{key[:-2]}/B")
                    tiered = other is not None and _TIER.search(other.query) is not None
                    rollup_query = QUERIES[f"{key[:-2]}/B"].query if tiered else None
                    raw_query = ref.query
                    if key in baseline:
                        raw_query, rollup_query = baseline[key], ref.query
                    sel = {name: selection[name] for name in selection if ref.board != "coldchain-alerts"}
                    raw_text = interpolate(_TIER.sub("", raw_query), board, holder, sel, now)
                    interval = re.search(r"time\((\w+)\)", raw_text)
                    raw_s, rows = timed(client, db.url, database, raw_text)
                    rollup_cell = ""
                    if rollup_query is not None:
                        rollup_text = interpolate(_TIER.sub("", rollup_query), board, holder, sel, now)
                        rollup_s, rows = timed(client, db.url, database, rollup_text)
                        rollup_cell = f"{rollup_s:9.3f}"
                        shown = rollup_s
                    else:
                        shown = raw_s
                    if label == "30d":
                        worst_30d = max(worst_30d, shown)
                    if other is not None and not tiered:  # a second, independent target of the same panel
                        extra_s, _ = timed(client, db.url, database, interpolate(other.query, board, holder, sel, now))
                        raw_s += extra_s
                    print(
                        f"{key[:58]:58} {label:>5} {interval.group(1) if interval else '-':>8} {raw_s:8.3f} "
                        f"{rollup_cell:>9} {rows:7}"
                    )
        verdict = "PASS" if worst_30d <= 1.0 else "FAIL"
        print(f"slowest panel at 30 days as the dashboards read it: {worst_30d:.3f} s (target <= 1 s): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
