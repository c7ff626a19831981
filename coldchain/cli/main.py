"""The ``coldchain`` command line: every command's parser, and ``main``."""

from __future__ import annotations

import argparse
from pathlib import Path

from coldchain import __version__
from coldchain.adapters.logs import configure_logging
from coldchain.cli.audit import add_audit_command
from coldchain.cli.bag import BAG_ACTIONS, cmd_bag
from coldchain.cli.check_config import cmd_check_config
from coldchain.cli.dashboards import add_dashboards_command
from coldchain.cli.demo import add_demo_command
from coldchain.cli.export import add_export_command
from coldchain.cli.rejected import add_rejected_command
from coldchain.cli.reports import add_reports_command
from coldchain.cli.service import cmd_ingest, cmd_rules, cmd_run
from coldchain.cli.simulate import add_simulate_command
from coldchain.cli.users import add_users_command
from coldchain.config import LogConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coldchain", description="Cold-chain monitoring for pharmacy fridges.")
    parser.add_argument("--version", action="version", version=f"coldchain {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", type=Path, default=None, help="TOML configuration file")
        return command

    with_config("run", "Run every role of the service: ingest, rules, HTTP.").set_defaults(func=cmd_run)
    with_config("ingest", "Run the ingest role: MQTT readings into InfluxDB.").set_defaults(func=cmd_ingest)
    with_config("rules", "Run the rules worker: readings and bag events into alerts.").set_defaults(func=cmd_rules)
    bag = with_config("bag", "Record a diluted bag's life: dilute, start, complete, discard.")
    bag.add_argument("action", choices=sorted(BAG_ACTIONS), help="what happened to the bag")
    bag.add_argument("bag_id", help="the bag's label")
    bag.add_argument("--unit", help="fridge it is stored in (required for dilute)")
    bag.add_argument("--lot", help="lot number of the product")
    bag.add_argument("--product", help="product (default: the unit's profile)")
    bag.add_argument("--by", required=True, help="who did it")
    bag.set_defaults(func=cmd_bag)
    with_config("check-config", "Validate a configuration and summarise its inventory.").set_defaults(
        func=cmd_check_config
    )
    add_audit_command(sub)
    add_export_command(sub)
    add_rejected_command(sub)
    add_reports_command(sub)
    add_dashboards_command(sub)
    add_simulate_command(sub)
    add_demo_command(sub)
    add_users_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(LogConfig())
    return int(args.func(args))
