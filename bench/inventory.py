"""Start-up at fleet size: what loading and building a 100,000-sensor inventory costs, step by step.

For N temperature sensors in 5-sensor units this writes the inventory twice, as TOML tables (the
only way before ``[inventory]``; the baseline) and as CSV files, and times, in this one run:

- ``load_settings`` from the TOML and from the CSV files (the same ``Settings`` either way);
- ``Settings.frozen_inventory()``, ``MessageParser`` (the topic maps), a fresh ``RulesEngine``, and
  ``RulesEngine.restore`` from a snapshot of every sensor (the rules worker's start after a crash);
- ``coldchain check-config`` as a user runs it (a subprocess, wall time) on each.

    .venv/bin/python bench/inventory.py [--sensors 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coldchain.config import load_settings  # noqa: E402
from coldchain.contract.parser import MessageParser  # noqa: E402
from coldchain.core.rules import RulesEngine  # noqa: E402

SENSORS_PER_UNIT = 5
T = TypeVar("T")


def timed(what: str, action: Callable[[], T]) -> T:
    began = time.perf_counter()
    out = action()
    print(f"  {what:<44} {time.perf_counter() - began:>7.2f} s", flush=True)
    return out


def write_inventory(directory: Path, sensors: int) -> tuple[Path, Path]:
    units = (sensors + SENSORS_PER_UNIT - 1) // SENSORS_PER_UNIT
    toml = [f'[[units]]\nid = "u{u:06d}"\nsite = "site-{u % 20:02d}"\n' for u in range(units)]
    toml += [
        f'[[sensors]]\nid = "t{s:06d}"\nunit = "u{s // SENSORS_PER_UNIT:06d}"\nkind = "temperature"\n'
        for s in range(sensors)
    ]
    (directory / "tables.toml").write_text("".join(toml))
    (directory / "units.csv").write_text("id,site\n" + "".join(f"u{u:06d},site-{u % 20:02d}\n" for u in range(units)))
    rows = "".join(f"t{s:06d},u{s // SENSORS_PER_UNIT:06d},temperature\n" for s in range(sensors))
    (directory / "sensors.csv").write_text("id,unit,kind\n" + rows)
    (directory / "csv.toml").write_text('[inventory]\nunits = "units.csv"\nsensors = "sensors.csv"\n')
    return directory / "tables.toml", directory / "csv.toml"


def check_config(config: Path) -> float:
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "check-config", "--config", str(config)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sensors", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        toml, csv = write_inventory(Path(tmp), args.sensors)
        print(f"{args.sensors:,} sensors in {args.sensors // SENSORS_PER_UNIT:,} units")
        print("baseline: the inventory as TOML tables (the only way before [inventory]; this tree's loader)")
        timed("load_settings (TOML)", lambda: load_settings(toml))
        print(f"  {'coldchain check-config (TOML), wall':<44} {check_config(toml):>7.2f} s")
        print("this tree: the inventory as CSV files ([inventory])")
        settings = timed("load_settings (CSV)", lambda: load_settings(csv))
        print(f"  {'coldchain check-config (CSV), wall':<44} {check_config(csv):>7.2f} s")
        inventory = timed("Settings.frozen_inventory()", settings.frozen_inventory)
        timed("MessageParser (topic maps)", lambda: MessageParser(settings))
        engine = timed("RulesEngine (fresh)", lambda: RulesEngine(inventory))
        snapshot = json.loads(json.dumps(engine.snapshot()))
        timed("RulesEngine.restore (every sensor)", lambda: RulesEngine.restore(inventory, snapshot))


if __name__ == "__main__":
    main()
