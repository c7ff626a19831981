"""Throughput of the rules engine's ``observe`` on one core.

Generates N temperature readings (default 1,000,000) for 2,000 sensors in 100 fridges, one
reading per sensor per minute, mostly in range with some high, low and freezing excursions,
then times ``RulesEngine.observe`` fed the way the ingest worker feeds it: one reading per call,
and batches of 100. As an in-run floor it times a loop that only reads each reading's celsius
and compares it with 8.0, the least any Python pass over the readings can cost.

    .venv/bin/python bench/rules_engine.py [--readings N] [--sensors S] [--seed K]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from coldchain.config import Settings
from coldchain.core.records import TemperatureReading
from coldchain.core.rules import RulesEngine

TARGET = 200_000
SENSORS_PER_UNIT = 20
START = datetime(2026, 11, 30, tzinfo=UTC)


def make_settings(sensors: int) -> Settings:
    units = [
        {"id": f"fridge-{u:03d}", "site": f"site-{u % 7}", "name": f"Fridge {u}"}
        for u in range((sensors + SENSORS_PER_UNIT - 1) // SENSORS_PER_UNIT)
    ]
    inventory = [
        {"id": f"t-{s:04d}", "unit": f"fridge-{s // SENSORS_PER_UNIT:03d}", "kind": "temperature"}
        for s in range(sensors)
    ]
    return Settings(units=units, sensors=inventory)


def make_readings(settings: Settings, count: int, seed: int) -> list[TemperatureReading]:
    """Round-robin minute by minute; ~3% of sensors have one 20-40 min excursion."""
    rng = random.Random(seed)
    sensors = settings.sensors
    units = {unit.id: unit for unit in settings.units}
    minutes = count // len(sensors) + 1
    excursions: dict[str, tuple[int, int, float]] = {}
    for sensor in sensors:
        if rng.random() < 0.03:
            begin = rng.randrange(minutes)
            level = rng.choice((9.5, 11.0, 1.2, -0.5))
            excursions[sensor.id] = (begin, begin + rng.randrange(20, 40), level)
    readings: list[TemperatureReading] = []
    for minute in range(minutes):
        ts = START + timedelta(minutes=minute)
        for sensor in sensors:
            celsius = round(rng.uniform(3.5, 6.5), 2)
            window = excursions.get(sensor.id)
            if window is not None and window[0] <= minute < window[1]:
                celsius = window[2] + round(rng.uniform(-0.3, 0.3), 2)
            unit = units[sensor.unit]
            readings.append(TemperatureReading(sensor.id, unit.id, unit.site, ts, celsius))
            if len(readings) == count:
                return readings
    return readings


def floor_loop(readings: list[TemperatureReading]) -> int:
    above = 0
    for reading in readings:
        if reading.celsius > 8.0:
            above += 1
    return above


def observe_single(engine: RulesEngine, readings: list[TemperatureReading]) -> int:
    transitions = 0
    observe = engine.observe
    for reading in readings:
        transitions += len(observe([reading], reading.ts))
    return transitions


def observe_batches(engine: RulesEngine, readings: list[TemperatureReading], size: int = 100) -> int:
    transitions = 0
    observe = engine.observe
    for index in range(0, len(readings), size):
        batch = readings[index : index + size]
        transitions += len(observe(batch, batch[-1].ts))
    return transitions


def timed(run: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    result = run()
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    settings = make_settings(args.sensors)
    print(f"generating {args.readings:,} readings for {args.sensors:,} sensors ...", flush=True)
    readings = make_readings(settings, args.readings, args.seed)
    n = len(readings)

    rows: list[tuple[str, float, str]] = []
    seconds, _ = timed(lambda: floor_loop(readings))
    rows.append(("floor: read celsius, compare with 8.0", seconds, ""))
    seconds, single = timed(lambda: observe_single(RulesEngine(settings.frozen_inventory()), readings))
    rows.append(("observe, lists of 1", seconds, f"{single} transitions"))
    engine = RulesEngine(settings.frozen_inventory())
    seconds, batched = timed(lambda: observe_batches(engine, readings))
    rows.append(("observe, lists of 100", seconds, f"{batched} transitions"))

    ticks = 100
    last = readings[-1].ts
    seconds, _ = timed(lambda: sum(len(engine.tick(last + timedelta(seconds=i))) for i in range(ticks)))
    tick_ms = seconds / ticks * 1000

    print(f"\n{'run':<40} {'seconds':>8} {'readings/s':>12}  {'vs target':>9}  note")
    for name, secs, note in rows:
        rate = n / secs
        print(f"{name:<40} {secs:8.3f} {rate:12,.0f}  {rate / TARGET:8.1f}x  {note}")
    print(f"\ntarget: {TARGET:,} readings/s; tick over {args.sensors:,} sensors: {tick_ms:.2f} ms each")


if __name__ == "__main__":
    main()
