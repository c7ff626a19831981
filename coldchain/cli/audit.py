"""``coldchain audit verify``: walk the audit trail's hash chain in the store and name the first break."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from coldchain.cli.loading import load_or_exit
from coldchain.core.audit_chain import verify_chain
from coldchain.core.times import format_time
from coldchain.reporting.audit_trail import read_chain


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the store's chain: exit 0 with the count and head hash, 1 naming the first break."""
    from coldchain.adapters.store.factory import open_store
    from coldchain.adapters.store.port import StoreError

    settings = load_or_exit(args.config)
    store = open_store(settings)
    try:
        events = read_chain(store)
    except StoreError as exc:
        print(f"audit verify: cannot read the audit trail: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    problem = verify_chain(events)
    if problem is not None:
        print(f"audit chain BROKEN at {problem}", file=sys.stderr)
        print(f"({len(events)} events read; every event from seq {problem.seq} on is unproven)", file=sys.stderr)
        return 1
    if not events:
        print("audit chain OK: no events recorded yet")
        return 0
    head = events[-1]
    print(f"audit chain OK: {len(events)} events, seq 1..{head.seq}, last at {format_time(head.at)}")
    print(f"head hash {head.hash}")
    return 0


def add_audit_command(subparsers: Any) -> None:
    """``coldchain audit verify --config F``."""
    audit = subparsers.add_parser("audit", help="The audit trail: verify its hash chain.", description=__doc__)
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify",
        help="Walk the hash chain in the store and report the first break.",
        description="Read every audit event from the store, sort by seq and check each link.",
    )
    verify.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    verify.set_defaults(func=cmd_audit_verify)
