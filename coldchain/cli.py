"""The ``coldchain`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from coldchain import __version__
from coldchain.config import ConfigError, LogConfig, Settings, load_settings
from coldchain.logs import configure_logging

log = logging.getLogger("coldchain.cli")


def _load(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print every problem (exit 1) or a summary of the inventory (exit 0)."""
    settings = _load(args.config)
    print(f"{args.config or '<defaults>'}: OK")
    print(f"  mqtt   {settings.mqtt.url} (client id {settings.mqtt.client_id}, prefix {settings.mqtt.topic_prefix})")
    print(f"  influx {settings.influx.url} database {settings.influx.database} (auth {settings.influx.auth})")
    print(f"  profiles: {', '.join(sorted(settings.profiles))}")
    kinds_by_unit: dict[str, Counter[str]] = {unit.id: Counter() for unit in settings.units}
    for sensor in settings.sensors:
        kinds_by_unit[sensor.unit][sensor.kind] += 1
    print(f"  {len(settings.units)} units, {len(settings.sensors)} sensors")
    for unit in settings.units:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds_by_unit[unit.id].items())) or "no sensors"
        print(f"    {unit.site}/{unit.id} ({unit.display_name}): profile {unit.profile}; {kinds}")
    return 0


def _run_roles(args: argparse.Namespace, roles: tuple[str, ...]) -> int:
    from coldchain.service import Service

    settings = _load(args.config)
    configure_logging(settings.log)
    Service(settings, roles).run_until_signal()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Every role of the service in one process."""
    return _run_roles(args, ("ingest", "api"))


def cmd_ingest(args: argparse.Namespace) -> int:
    """Only the ingest role (plus health and metrics over HTTP)."""
    return _run_roles(args, ("ingest", "api"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coldchain", description="Cold-chain monitoring for pharmacy fridges.")
    parser.add_argument("--version", action="version", version=f"coldchain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", type=Path, default=None, help="TOML configuration file")
        return command

    with_config("run", "Run every role of the service (ingest; rules and API as they land).").set_defaults(func=cmd_run)
    with_config("ingest", "Run the ingest role: MQTT readings into InfluxDB.").set_defaults(func=cmd_ingest)
    with_config("check-config", "Validate a configuration and summarise its inventory.").set_defaults(
        func=cmd_check_config
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(LogConfig())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
