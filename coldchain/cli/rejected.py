"""``coldchain rejected list|replay``: the stored rejections, and re-running them after a fix."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coldchain.cli.loading import load_or_exit
from coldchain.core.records import RejectReason
from coldchain.core.times import format_time
from coldchain.reporting.request import parse_when


def _window(args: argparse.Namespace) -> tuple[datetime, datetime] | None:
    try:
        start = parse_when(args.from_) if args.from_ else datetime(1970, 1, 1, tzinfo=UTC)
        end = parse_when(args.to, end=True) if args.to else datetime.now(UTC) + timedelta(minutes=1)
    except ValueError as exc:
        print(f"coldchain rejected: {exc}", file=sys.stderr)
        return None
    return start, end


def cmd_rejected(args: argparse.Namespace) -> int:
    """``coldchain rejected list|replay [--reason R] [--from T] [--to T] [--topic PATTERN]``."""
    from coldchain.adapters.store.factory import open_store
    from coldchain.adapters.store.port import StoreError
    from coldchain.roles.replay import rejected_rows, replay

    if args.reason and args.reason not in {reason.value for reason in RejectReason}:
        known = ", ".join(reason.value for reason in RejectReason)
        print(f"coldchain rejected: --reason {args.reason!r} is not a reason (known: {known})", file=sys.stderr)
        return 2
    window = _window(args)
    if window is None:
        return 2
    settings = load_or_exit(args.config)
    store = open_store(settings)
    try:
        rows = rejected_rows(store, window[0], window[1], args.reason, args.topic)
        if args.rejected_command == "list":
            for row in rows:
                print(
                    f"{format_time(row.at)}  {row.reason:<20} {row.topic}  {row.detail[:160]}"
                    f"  ({len(row.payload)} bytes)"
                )
            print(f"{len(rows)} rejected message(s)")
            return 0
        if not rows:
            print("nothing to replay: no rejected message matches")
            return 0
        return _replay(settings, store, rows, args, replay)
    except StoreError as exc:
        print(f"coldchain rejected: cannot read the store: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _replay(settings: Any, store: Any, rows: list[Any], args: argparse.Namespace, replay: Any) -> int:
    from coldchain.adapters.audit_log import AuditLog, load_audit_key

    audit_path = settings.rules.audit_log_path
    if not audit_path.is_file():
        print(
            f"coldchain rejected: no audit log at {audit_path}: run replay where the rules worker keeps its state"
            " (rules.state_path / rules.audit_path), so the replay is recorded in the audit trail",
            file=sys.stderr,
        )
        return 2
    key = load_audit_key(settings.rules, create=False)
    if key is None:
        print("coldchain rejected: no audit key beside the audit log: cannot record the replay", file=sys.stderr)
        return 2
    result = replay(store, settings, rows)
    for item, count in result.accepted:
        print(f"accepted  {format_time(item.at)}  {item.topic}  ({count} record(s) stored)")
    for item, reason, why in result.still_rejected:
        print(f"rejected  {format_time(item.at)}  {item.topic}  {reason}: {why[:160]}")
    selection = {"reason": args.reason, "from": args.from_, "to": args.to, "topic": args.topic}
    log = AuditLog(audit_path, key)
    try:
        event = log.append(args.by or getpass.getuser(), "rejected_replayed", "rejected", result.details(selection),
                           datetime.now(UTC))  # fmt: skip
        if event is not None:
            store.write([event])
            log.mark_stored([event.seq])
    finally:
        log.close()
    print(
        f"replayed {len(rows)} message(s): {len(result.accepted)} accepted, {len(result.still_rejected)} still rejected"
        " (recorded in the audit trail)"
    )
    print(json.dumps({"accepted": len(result.accepted), "still_rejected": len(result.still_rejected)}))
    return 0


def add_rejected_command(subparsers: Any) -> None:
    """``coldchain rejected list|replay``."""
    rejected = subparsers.add_parser(
        "rejected",
        help="List stored rejections, or replay them through the parser after a fix.",
        description=__doc__,
    )
    actions = rejected.add_subparsers(dest="rejected_command", required=True)
    for name, text in (
        ("list", "List the stored rejections that match."),
        ("replay", "Parse the matching rejections again with their original arrival time; store what is accepted."),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--config", type=Path, default=None, help="TOML configuration file")
        action.add_argument("--reason", help="only this reason (e.g. unknown_sensor, ts_in_future)")
        action.add_argument("--from", dest="from_", metavar="T", help="arrivals from (YYYY-MM-DD or RFC 3339)")
        action.add_argument("--to", metavar="T", help="arrivals up to (a day included; a time excluded)")
        action.add_argument("--topic", help="MQTT topic filter, e.g. 'coldchain/sensors/t-009/+'")
        if name == "replay":
            action.add_argument("--by", help="who replays (recorded in the audit trail; default: the OS user)")
        action.set_defaults(func=cmd_rejected)
