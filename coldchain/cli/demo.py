"""``coldchain demo``: the whole system in one process on a simulated pharmacy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from coldchain.demo.run import DemoError, run_demo


def cmd_demo(args: argparse.Namespace) -> int:
    """``coldchain demo``: exit 0 when every scripted alert was raised and the export written."""
    headless = args.headless or not sys.stdout.isatty()
    try:
        result = run_demo(
            duration=args.duration,
            speed=args.speed,
            headless=headless,
            out=args.out,
            data=args.data,
            mqtt_port=args.mqtt_port,
            api_port=args.api_port,
        )
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if result.complete else 1


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError("a port is 1..65535")
    return port


def add_demo_command(subparsers: Any) -> None:
    """``coldchain demo [--duration S] [--speed N] [--headless] [--out DIR] [--data DIR]``."""
    command = subparsers.add_parser(
        "demo",
        help="Run everything in-process on a simulated pharmacy: broker, SQLite, rules, console alerts.",
        description=(
            "Run the embedded broker, a SQLite store, ingest, rules and console notifications in one process while "
            "the simulator plays a scripted day of two fridges at high speed; show it live, then write the export."
        ),
    )
    command.add_argument("--duration", type=float, default=45.0, help="wall seconds the scenario takes (default 45)")
    command.add_argument("--speed", type=float, default=None, help="simulated seconds per wall second (overrides)")
    command.add_argument("--headless", action="store_true", help="no live view (also when stdout is not a terminal)")
    command.add_argument("--out", type=Path, default=Path("var/demo-export"), help="where the export goes")
    command.add_argument("--data", type=Path, default=Path("var/demo"), help="the demo's files (emptied at start)")
    command.add_argument("--mqtt-port", type=_port, default=None, help="embedded broker port (default 18830)")
    command.add_argument("--api-port", type=_port, default=None, help="HTTP API port (default: a free one)")
    command.set_defaults(func=cmd_demo)
