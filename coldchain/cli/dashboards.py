"""``coldchain dashboards push``: upload the dashboards to an existing Grafana."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from coldchain.dashboards.build import build_dashboards, with_datasource, zone_name
from coldchain.dashboards.parts import DATASOURCE_UID
from coldchain.dashboards.push import DEFAULT_TIMEOUT, GrafanaPushError, connect, ensure_folder, push_dashboards


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    """Push every dashboard; print one line per dashboard saved. Exit 1 when Grafana refuses, 2 on bad use."""
    token = args.token or os.environ.get("GRAFANA_TOKEN") or None
    password = args.password or os.environ.get("GRAFANA_PASSWORD") or None
    if token and args.user:
        print("give either --token or --user/--password, not both", file=sys.stderr)
        return 2
    if args.user and password is None:
        print("--user needs --password (or GRAFANA_PASSWORD)", file=sys.stderr)
        return 2
    if not token and not args.user:
        print("give --token (or GRAFANA_TOKEN), or --user and --password", file=sys.stderr)
        return 2
    boards = [with_datasource(board, args.datasource_uid) for board in build_dashboards(args.timezone).values()]
    try:
        api = connect(args.grafana_url, token=token, user=args.user, password=password, timeout=args.timeout)
        folder_uid = ensure_folder(api, args.folder or "")
        pushed = push_dashboards(api, boards, folder_uid=folder_uid)
    except GrafanaPushError as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    for item in pushed:
        print(f"{item.uid} version {item.version}: {item.title} at {item.url}")
    return 0


def add_dashboards_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``dashboards push`` to the ``coldchain`` parser's subcommands; returns the ``dashboards`` parser."""
    dashboards: argparse.ArgumentParser = subparsers.add_parser(
        "dashboards", help="Grafana dashboards.", description="Grafana dashboards."
    )
    actions = dashboards.add_subparsers(dest="dashboards_command", required=True)
    push: argparse.ArgumentParser = actions.add_parser(
        "push",
        help="Upload the dashboards to an existing Grafana.",
        description="Upload coldchain's dashboards to an existing Grafana, replacing earlier versions (same uids).",
    )
    push.add_argument("--grafana-url", required=True, help="Grafana's base URL, e.g. https://grafana.example.org")
    push.add_argument("--token", help="service account token (default: $GRAFANA_TOKEN)")
    push.add_argument("--user", help="Grafana user (basic auth), with --password")
    push.add_argument("--password", help="password of --user (default: $GRAFANA_PASSWORD)")
    push.add_argument("--folder", help="folder title, created if missing (default: Grafana's root folder)")
    push.add_argument(
        "--datasource-uid",
        default=DATASOURCE_UID,
        help=f"uid of the InfluxDB (InfluxQL) datasource in that Grafana (default: {DATASOURCE_UID})",
    )
    push.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per HTTP request")
    push.add_argument(
        "--timezone",
        type=zone_name,
        default="UTC",
        help="your site's IANA zone (its [[sites]] timezone): the unit dashboard's zone and its Daily min/max days "
        "(default UTC; the overview and alerts dashboards stay UTC)",
    )
    push.set_defaults(func=cmd_dashboards_push)
    return dashboards


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coldchain.dashboards.push push …`` (the same as ``coldchain dashboards push …``)."""
    parser = argparse.ArgumentParser(prog="coldchain")
    add_dashboards_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dashboards", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
