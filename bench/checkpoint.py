"""The rules engine's checkpoints at fleet size, engine only: full snapshots (before) vs change records (after).

For N temperature sensors (5 per unit, one reading per sensor per minute, ts = the simulated
clock, about 0.5% of sensors in an excursion), this simulates ``--minutes`` of traffic second by
second, with a checkpoint every second as the rules worker does (``rules.checkpoint_every`` = 1 s):

- **before** (the baseline, still callable): ``RulesEngine.snapshot()`` + ``RulesState.save`` (the
  whole engine as JSON, written and fsynced) every second; timed on every ``--sample``-th second
  (it costs seconds at 100,000 sensors) into its own state file.
- **after**: what the worker does now: ``RulesEngine.changes(now)`` + ``RulesState.append`` (one
  fsynced commit, none when the record is empty), and a full snapshot when ``needs_snapshot``
  says the log outgrew the base (compaction, counted in the figures).

Printed per N: milliseconds per checkpoint (mean, and the worst including compactions) and bytes
of JSON written per minute, before and after; commits per minute after; and the time to restore
the engine from the file (base + change log) as a restart would.

    .venv/bin/python bench/checkpoint.py [--sensors 2000 --sensors 20000 --sensors 100000] [--minutes 4]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coldchain.adapters.rules_snapshot import RulesState  # noqa: E402
from coldchain.config import Settings  # noqa: E402
from coldchain.core.records import TemperatureReading  # noqa: E402
from coldchain.core.rules import RulesEngine  # noqa: E402

SENSORS_PER_UNIT = 5
START = datetime(2026, 11, 30, tzinfo=UTC)


def make_settings(sensors: int) -> Settings:
    units = [
        {"id": f"fridge-{u:05d}", "site": f"site-{u % 20:02d}"}
        for u in range((sensors + SENSORS_PER_UNIT - 1) // SENSORS_PER_UNIT)
    ]
    inventory = [
        {"id": f"t-{s:06d}", "unit": f"fridge-{s // SENSORS_PER_UNIT:05d}", "kind": "temperature"}
        for s in range(sensors)
    ]
    return Settings.model_validate({"units": units, "sensors": inventory})


def measure(sensors: int, minutes: int, sample: int, directory: Path, seed: int) -> dict[str, float]:
    settings = make_settings(sensors)
    inventory = settings.frozen_inventory()
    rng = random.Random(seed)
    ids = [(sensor.id, sensor.unit) for sensor in settings.sensors]
    hot = set(rng.sample(range(sensors), max(1, sensors // 200)))
    engine = RulesEngine(inventory)
    # warm-up: one minute of readings so every sensor has been heard, then the first full snapshot
    for i, (sensor, unit) in enumerate(ids):
        at = START + timedelta(seconds=60 * i / sensors)
        engine.observe([TemperatureReading(sensor, unit, "site", at, 5.0)], at)
    new_state = RulesState(directory / f"after-{sensors}.sqlite")
    old_state = RulesState(directory / f"before-{sensors}.sqlite")
    new_state.save(engine.snapshot())
    engine.mark_saved()
    per_second = sensors / 60
    old_ms: list[float] = []
    old_bytes: list[int] = []
    new_ms: list[float] = []
    new_bytes = commits = compactions = 0
    sent = 0.0
    cursor = 0
    seconds = minutes * 60
    for second in range(1, seconds + 1):
        now = START + timedelta(minutes=1, seconds=second)
        sent += per_second
        batch = []
        while cursor < int(sent):
            index = cursor % sensors
            sensor, unit = ids[index]
            celsius = 9.5 if index in hot and second > 30 else round(rng.uniform(3.5, 6.5), 2)
            batch.append(TemperatureReading(sensor, unit, "site", now - timedelta(milliseconds=cursor % 1000), celsius))
            cursor += 1
        engine.observe(batch, now)
        engine.tick(now)
        began = time.perf_counter()
        if new_state.needs_snapshot:
            new_bytes += new_state.save(engine.snapshot())
            engine.mark_saved()
            compactions += 1
            commits += 1
        else:
            record = engine.changes(now)
            if record and any(key != "stats" for key in record):
                new_bytes += new_state.append(record)
                commits += 1
        new_ms.append((time.perf_counter() - began) * 1000)
        if second % sample == 0:
            began = time.perf_counter()
            old_bytes.append(old_state.save(engine.snapshot()))
            old_ms.append((time.perf_counter() - began) * 1000)
    old_state.close()
    new_state.close()
    began = time.perf_counter()
    reopened = RulesState(directory / f"after-{sensors}.sqlite")
    loaded = reopened.load()
    assert loaded is not None
    RulesEngine.restore(inventory, loaded)
    restore_s = time.perf_counter() - began
    reopened.close()
    old_mean_bytes = sum(old_bytes) / len(old_bytes)
    return {
        "before_ms": sum(old_ms) / len(old_ms),
        "before_mb_min": old_mean_bytes * 60 / 1e6,
        "after_ms": sum(new_ms) / len(new_ms),
        "after_worst_ms": max(new_ms),
        "after_mb_min": new_bytes / minutes / 1e6,
        "commits_min": commits / minutes,
        "compactions": compactions,
        "restore_s": restore_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, action="append", help="fleet sizes (repeatable)")
    parser.add_argument("--minutes", type=int, default=4, help="simulated minutes of traffic per size")
    parser.add_argument("--sample", type=int, default=30, help="time the full-snapshot baseline every N seconds")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    sizes = args.sensors or [2000, 20000, 100000]
    print(
        f"{'sensors':>8} | {'before ms/ckpt':>14} {'before MB/min':>13} | {'after ms/ckpt':>13} {'worst ms':>9}"
        f" {'after MB/min':>12} {'commits/min':>11} {'compactions':>11} | {'restore s':>9}"
    )
    with tempfile.TemporaryDirectory(dir=ROOT) as directory:
        for sensors in sizes:
            f = measure(sensors, args.minutes, args.sample, Path(directory), args.seed)
            print(
                f"{sensors:>8} | {f['before_ms']:>14.1f} {f['before_mb_min']:>13.1f} | {f['after_ms']:>13.2f}"
                f" {f['after_worst_ms']:>9.0f} {f['after_mb_min']:>12.2f} {f['commits_min']:>11.0f}"
                f" {f['compactions']:>11.0f} | {f['restore_s']:>9.2f}",
                flush=True,
            )
    print("before: snapshot() + save() every second (JSON bytes; SQLite's WAL writes them about twice)")
    print("after:  changes(now) + append() every second, a full snapshot when the log outgrows it")


if __name__ == "__main__":
    main()
