"""``coldchain simulate``: publish the demo scenario's traffic to the configured broker."""

from __future__ import annotations

import argparse
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from coldchain.adapters.mqtt import PublishError
from coldchain.cli.loading import load_or_exit
from coldchain.core.times import format_time
from coldchain.demo.simulate import INCIDENTS, SCENARIO_LENGTH, Publisher, SimClock, build_scenario


def cmd_simulate(args: argparse.Namespace) -> int:
    """Publish the scenario for the configured inventory to the configured broker."""

    settings = load_or_exit(args.config)
    clock = SimClock(args.speed)
    messages = build_scenario(settings, clock.start, seed=args.seed)
    wall = SCENARIO_LENGTH.total_seconds() / args.speed
    print(
        f"simulating {len(settings.units)} units, {len(messages)} messages over {SCENARIO_LENGTH} of simulated time "
        f"({wall:.0f} s at speed {args.speed:g}), from {format_time(clock.start)} to {format_time(clock.end)}"
    )
    for incident in INCIDENTS:
        expect = f" -> {', '.join(incident.alerts)}" if incident.alerts else ""
        print(f"  +{timedelta(seconds=incident.at)}  {incident.what}{expect}")
    publisher = Publisher(settings.mqtt)
    stop = threading.Event()
    try:
        publisher.connect()
        clock.run()
        publisher.run(messages, clock, stop)
        publisher.flush()
    except KeyboardInterrupt:
        stop.set()
    except PublishError as exc:
        print(f"simulate: {exc}")
        return 1
    finally:
        publisher.close()
    print(f"published {publisher.sent} messages")
    return 0


def add_simulate_command(subparsers: Any) -> None:
    """``coldchain simulate --config F [--speed N] [--seed S]``."""
    command = subparsers.add_parser(
        "simulate",
        help="Publish realistic sensor traffic with scripted incidents to the configured broker.",
        description=(
            "Publish the demo scenario (compressor cycling, door openings, defrost, and scripted incidents) for "
            "the configured inventory. At --speed N the scenario runs N times faster, in the past, so every ts is "
            "at most now. A separate `coldchain run` judges event times as usual, but its clock rules (offline "
            "sensors, bag timers) run on the wall clock; `coldchain demo` shares one simulated clock instead."
        ),
    )
    command.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    command.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (>= 1)")
    command.add_argument("--seed", type=int, default=7, help="random seed of the traffic")
    command.set_defaults(func=cmd_simulate)
