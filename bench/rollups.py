"""The rollup keeper's own cost at fleet size: time per reading taken, per 5-minute boundary, memory per sensor.

``RollupKeeper`` alone (no broker, no store: its writer is a stub that counts what it is handed), for
``--sensors`` temperature sensors in 5-sensor units, each sending one reading a minute for 11 minutes
(two 5-minute boundaries), handed over in batches of 5,000 as ingest does. Printed: microseconds per
reading in ``observe`` (what ingest's thread pays, before acking), seconds of ``flush`` per boundary
(closing every sensor's interval and handing its rollup over), and, in a second pass under
``tracemalloc`` (which slows it), the keeper's memory per sensor. There is no baseline: without rollups
the keeper does not exist; compare with ingest's budget (bench/fleet.py: 0.35 cores at 100,000 sensors).

Run from the repository root (about a minute at 100,000 sensors):

    .venv/bin/python bench/rollups.py [--sensors 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coldchain.config import Settings
from coldchain.core.records import Record, TemperatureReading
from coldchain.roles.rollup_keeper import RollupKeeper

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class _Spool:
    batches = 0


class CountingWriter:
    """Stands in for the DurableWriter: counts the rollups handed over."""

    spool = _Spool()
    store: Any = None

    def __init__(self) -> None:
        self.written = 0

    def write(self, records: Sequence[Record]) -> None:
        self.written += len(records)


def run(sensors: int, traced: bool) -> tuple[float, float, int, int]:
    units = [{"id": f"u{i}", "site": f"s{i % 50}"} for i in range(sensors // 5)]
    inventory = [{"id": f"t{i}", "unit": f"u{i // 5}", "kind": "temperature"} for i in range(sensors)]
    settings = Settings(units=units, sensors=inventory)  # type: ignore[arg-type]
    writer = CountingWriter()
    now = [T0]
    if traced:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0] if traced else 0
    keeper = RollupKeeper(settings, writer, clock=lambda: now[0])  # type: ignore[arg-type]
    keeper._unfinished = None
    observe = flush = 0.0
    for minute in range(11):
        batch = [
            TemperatureReading(f"t{i}", f"u{i // 5}", f"s{i % 50}", T0 + timedelta(minutes=minute, seconds=i % 60), 5.0)
            for i in range(sensors)
        ]
        for chunk in range(0, sensors, 5000):
            began = time.perf_counter()
            keeper.observe(batch[chunk : chunk + 5000])
            observe += time.perf_counter() - began
        del batch
        now[0] = T0 + timedelta(minutes=minute + 1)
        began = time.perf_counter()
        keeper.flush(now[0])
        flush += time.perf_counter() - began
    memory = tracemalloc.get_traced_memory()[0] - base if traced else 0
    if traced:
        tracemalloc.stop()
    return observe / (11 * sensors) * 1e6, flush / 2, memory, writer.written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sensors", type=int, default=100_000)
    args = parser.parse_args()
    per_reading, per_boundary, _, written = run(args.sensors, traced=False)
    _, _, memory, _ = run(args.sensors, traced=True)
    rate = args.sensors / 60
    print(f"{args.sensors:,} sensors, one reading a minute ({rate:,.0f} readings/s), 11 minutes:")
    print(f"  observe: {per_reading:.2f} us per reading = {per_reading * rate / 1e6:.4f} cores at that rate")
    print(f"  flush:   {per_boundary:.2f} s per 5-minute boundary ({written:,} rollups handed over in all)")
    print(f"  memory:  {memory / args.sensors:,.0f} bytes per sensor ({memory / 1e6:,.0f} MB: the keeper alone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
