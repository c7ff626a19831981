"""``coldchain audit verify``: the store's audit chain against its MACs and every anchored head.

Exit 0 when the chain is intact, every MAC holds under the audit key and every anchor (the local
audit log's head, the retained ``<prefix>/audit/head``, each ``--anchor`` export) is found unchanged
in it; 1 naming the first missing or altered event; 2 when the chain is intact but could not be
proven (no audit key to check the MACs with, or an anchor that could not be read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from coldchain.cli.loading import load_or_exit
from coldchain.config import Settings
from coldchain.core.audit_chain import Anchor
from coldchain.core.times import format_time
from coldchain.reporting.audit_trail import manifest_anchor, read_chain, retained_anchor, verify_trail


def _keys(settings: Settings, extra: list[Path]) -> tuple[list[bytes], list[str]]:
    from coldchain.adapters.audit_log import load_audit_key

    keys: list[bytes] = []
    problems: list[str] = []
    try:
        key = load_audit_key(settings.rules, create=False)
    except ValueError as exc:
        problems.append(str(exc))
        key = None
    if key is not None:
        keys.append(key)
    for path in extra:
        try:
            data = path.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            problems.append(f"--key {path}: {exc.strerror}")
            continue
        keys.append(data)
    return keys, problems


def _local_anchor(settings: Settings) -> Anchor | None:
    from coldchain.adapters.audit_log import AuditLog

    path = settings.rules.audit_log_path
    if not path.is_file():
        return None
    log = AuditLog(path)
    try:
        head = log.head()
    finally:
        log.close()
    return None if head is None else Anchor(f"the local audit log ({path})", head.seq, head.hash)


def _retained(settings: Settings) -> tuple[Anchor | None, str | None]:
    from coldchain.adapters.mqtt import MqttError, read_retained
    from coldchain.contract.topics import Topics

    topic = Topics(settings.mqtt.topic_prefix).audit_head_of(settings.rules.audit_chain)
    try:
        payload = read_retained(settings.mqtt, topic)
    except MqttError as exc:
        return None, f"could not read the retained {topic}: {exc}"
    if payload is None:
        return None, None
    try:
        return retained_anchor(payload), None
    except ValueError as exc:
        return None, str(exc)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the store's chain, check its MACs and anchors: 0 proven, 1 naming the first break, 2 unproven."""
    from coldchain.adapters.store.factory import open_store
    from coldchain.adapters.store.port import StoreError

    settings = load_or_exit(args.config)
    keys, key_problems = _keys(settings, args.key or [])
    for problem in key_problems:
        print(f"audit verify: {problem}", file=sys.stderr)
    if key_problems:
        return 2
    anchors: list[Anchor] = []
    unreadable: list[str] = []
    local = _local_anchor(settings)
    if local is not None:
        anchors.append(local)
    if not args.no_broker:
        retained, why = _retained(settings)
        if retained is not None:
            anchors.append(retained)
        if why is not None:
            unreadable.append(why)
    for path in args.anchor or []:
        try:
            anchors.append(manifest_anchor(path))
        except ValueError as exc:
            unreadable.append(str(exc))
    store = open_store(settings)
    try:
        events = read_chain(store, chain=settings.rules.audit_chain)
    except StoreError as exc:
        print(f"audit verify: cannot read the audit trail: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    report = verify_trail(events, keys, anchors)
    report.unchecked.extend(unreadable)
    for note in report.notes:
        print(note)
    for problem in report.problems:
        print(f"audit chain {problem}", file=sys.stderr)
    if report.problems:
        print(f"({len(events)} events read; events from the first break on are unproven)", file=sys.stderr)
        return 1
    for item in report.unchecked:
        print(f"NOT VERIFIED: {item}")
    if not events:
        print("audit chain OK: no events recorded yet" if not anchors else "audit chain OK: no events in the store")
        return report.exit_code
    head = events[-1]
    print(f"audit chain OK: {len(events)} events, seq 1..{head.seq}, last at {format_time(head.at)}")
    print(f"head hash {head.hash}")
    return report.exit_code


def add_audit_command(subparsers: Any) -> None:
    """``coldchain audit verify --config F [--key FILE] [--anchor EXPORT] [--no-broker]``."""
    audit = subparsers.add_parser("audit", help="The audit trail: verify its hash chain.", description=__doc__)
    actions = audit.add_subparsers(dest="audit_command", required=True)
    verify = actions.add_parser(
        "verify",
        help="Check the store's chain, its MACs and every anchored head; name the first missing or altered event.",
        description="Read every audit event from the store, check each link and MAC, and find the local log's "
        "head, the retained <prefix>/audit/head and each --anchor export's head unchanged in it.",
    )
    verify.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    verify.add_argument(
        "--key", type=Path, action="append", help="another audit key file (e.g. one in use before a reset)"
    )
    verify.add_argument(
        "--anchor", type=Path, action="append", help="an export (its directory or manifest.json) whose head to find"
    )
    verify.add_argument("--no-broker", action="store_true", help="do not read the retained head from the broker")
    verify.set_defaults(func=cmd_audit_verify)
