"""``coldchain run | ingest | rules``: the service's roles, in one process or apart."""

from __future__ import annotations

import argparse
import logging

from coldchain.adapters.logs import configure_logging
from coldchain.cli.loading import load_or_exit
from coldchain.config import config_warnings

log = logging.getLogger("coldchain.cli")


def _run_roles(args: argparse.Namespace, roles: tuple[str, ...]) -> int:
    from coldchain.roles.service import Service

    settings = load_or_exit(args.config)
    configure_logging(settings.log)
    for warning in config_warnings(settings) if "rules" in roles else []:
        log.warning(warning)
    service = Service(settings, roles)
    if service.rules is not None:  # named in the audit trail's config_loaded event
        service.rules.config_source = str(args.config.resolve()) if args.config is not None else "<defaults>"
    return service.run_until_signal()


def cmd_run(args: argparse.Namespace) -> int:
    """Every role of the service in one process."""
    return _run_roles(args, ("ingest", "rules", "api"))


def cmd_rules(args: argparse.Namespace) -> int:
    """Only the rules worker (plus health and metrics over HTTP)."""
    return _run_roles(args, ("rules", "api"))


def cmd_ingest(args: argparse.Namespace) -> int:
    """Only the ingest role (plus health and metrics over HTTP)."""
    return _run_roles(args, ("ingest", "api"))
