"""The ``coldchain`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from coldchain import __version__
from coldchain.audit import add_audit_command
from coldchain.config import ConfigError, LogConfig, Settings, config_warnings, load_settings, no_config_loaded
from coldchain.dashboards_push import add_dashboards_command
from coldchain.demo import add_demo_command
from coldchain.export import add_export_command
from coldchain.logs import configure_logging
from coldchain.simulate import add_simulate_command
from coldchain.store.factory import describe_store

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
    print(f"  store  {describe_store(settings)}")
    print(f"  profiles: {', '.join(sorted(settings.profiles))}")
    kinds_by_unit: dict[str, Counter[str]] = {unit.id: Counter() for unit in settings.units}
    for sensor in settings.sensors:
        kinds_by_unit[sensor.unit][sensor.kind] += 1
    print(f"  {len(settings.units)} units, {len(settings.sensors)} sensors")
    for unit in settings.units:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds_by_unit[unit.id].items())) or "no sensors"
        print(f"    {unit.site}/{unit.id} ({unit.display_name}): profile {unit.profile}; {kinds}")
    for warning in config_warnings(settings):
        print(f"WARNING {warning}", file=sys.stderr)
    return 0


def _run_roles(args: argparse.Namespace, roles: tuple[str, ...]) -> int:
    from coldchain.service import Service

    settings = _load(args.config)
    configure_logging(settings.log)
    for warning in config_warnings(settings) if "rules" in roles else []:
        log.warning(warning)
    service = Service(settings, roles)
    if service.rules is not None:  # named in the audit trail's config_loaded event
        service.rules.config_source = str(args.config.resolve()) if args.config is not None else "<defaults>"
    service.run_until_signal()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Every role of the service in one process."""
    return _run_roles(args, ("ingest", "rules", "api"))


def cmd_rules(args: argparse.Namespace) -> int:
    """Only the rules worker (plus health and metrics over HTTP)."""
    return _run_roles(args, ("rules", "api"))


BAG_ACTIONS: dict[str, str] = {
    "dilute": "diluted",
    "start": "infusion_started",
    "complete": "infusion_completed",
    "discard": "discarded",
}


def cmd_bag(args: argparse.Namespace) -> int:
    """Publish a bag event (the contract's payload) and wait for the broker's acknowledgement."""
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from coldchain.alert import format_time
    from coldchain.messages import BagEventPayload, MessageParser, RejectedMessage
    from coldchain.mqtt import MqttError, publish_once

    settings = _load(args.config)
    if (unloaded := no_config_loaded(args.config, settings)) is not None:
        print(f"not sent: {unloaded}", file=sys.stderr)
        return 2
    body: dict[str, object] = {"ts": format_time(datetime.now(UTC)), "event": BAG_ACTIONS[args.action], "by": args.by}
    for key in ("unit", "lot", "product"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    try:  # refuse here what ingest would reject, with the same words
        MessageParser(settings).bag_event(args.bag_id, BagEventPayload.model_validate(body))
    except ValidationError as exc:
        print(f"not sent: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except RejectedMessage as exc:
        print(f"not sent: {exc.detail}", file=sys.stderr)
        return 2
    topic = f"{settings.mqtt.topic_prefix}/bags/{args.bag_id}/events"
    try:
        publish_once(settings.mqtt, topic, json.dumps(body).encode())
    except MqttError as exc:
        print(f"not sent: {exc}", file=sys.stderr)
        return 1
    print(f"{topic} {json.dumps(body)}")
    return 0


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
    add_dashboards_command(sub)
    add_simulate_command(sub)
    add_demo_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(LogConfig())
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
