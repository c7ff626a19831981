"""``coldchain export`` and ``coldchain export verify``: audit exports from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.store.factory import open_store
from coldchain.adapters.store.port import StoreError
from coldchain.cli.loading import load_or_exit
from coldchain.core.times import to_millis
from coldchain.reporting.export import run_export
from coldchain.reporting.manifest import MANIFEST
from coldchain.reporting.progress import Progress
from coldchain.reporting.request import DEFAULT_FORMATS, ExportError, typed_request
from coldchain.reporting.signing import load_signer, public_key_file
from coldchain.reporting.verify import verify_export


def _fail(message: str, code: int) -> int:
    print(f"coldchain export: {message}", file=sys.stderr)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    """``coldchain export --from … --to … --out DIR``."""

    missing = [flag for flag, value in (("--from", args.from_), ("--to", args.to), ("--out", args.out)) if not value]
    if missing:
        return _fail(f"{', '.join(missing)} required (or: coldchain export verify DIR)", 2)
    settings = load_or_exit(args.config)
    try:
        request = typed_request(
            settings, args.from_, args.to, args.out, args.site, args.unit, args.format, option=lambda name: f"--{name}"
        )
    except ValueError as exc:
        return _fail(str(exc), 2)
    start, end = request.start, request.end
    now = datetime.now(UTC)
    progress = Progress(sys.stderr, to_millis(start), to_millis(min(end, now)))
    store = open_store(settings)
    began = time.monotonic()
    try:
        result = run_export(store, settings, request, now, progress)
    except ExportError as exc:
        return _fail(str(exc), exc.code)
    except StoreError as exc:
        return _fail(f"cannot read the store: {exc}", 1)
    finally:
        store.close()
    rows = result.rows
    print(
        f"exported {rows.get('readings', 0):,} readings, {rows.get('excursions', 0)} excursions, "
        f"{rows.get('bags', 0)} bags and {rows.get('audit', 0)} audit events to {result.out} "
        f"in {time.monotonic() - began:.1f}s ({'signed' if result.signed else 'unsigned'})"
    )
    print("files: " + ", ".join(result.files))
    if result.audit_break:
        print(f"warning: the audit trail's hash chain is BROKEN at {result.audit_break}", file=sys.stderr)
    return 0


def cmd_export_verify(args: argparse.Namespace) -> int:
    """``coldchain export verify DIR [--public-key F]``: 0 intact and signed by the trusted key; 1 altered,
    missing, extra or badly signed; 2 intact but trust not established (unsigned, or no trusted key)."""

    settings = load_or_exit(getattr(args, "verify_config", None) or args.config)
    key = settings.export.signing_key.get_secret_value().encode() or None
    if not args.directory.is_dir():
        print(f"coldchain export verify: {args.directory} is not a directory", file=sys.stderr)
        return 1
    trusted = None
    if args.public_key is not None:
        try:
            trusted = public_key_file(args.public_key)
        except ValueError as exc:
            print(f"coldchain export verify: --public-key: {exc}", file=sys.stderr)
            return 2
    result = verify_export(args.directory, key, trusted)
    for problem in result.problems:
        print(problem)
    for note in result.notes:
        print(note)
    if result.exit_code == 1:
        print(f"export NOT intact: {len(result.problems)} problem(s)", file=sys.stderr)
    elif result.exit_code == 2:
        print(f"export intact ({result.files} files match {MANIFEST}) but NOT VERIFIED: {result.trust_note}")
    else:
        print(f"export OK: {result.files} files match {MANIFEST}, signed by the trusted key")
    return result.exit_code


def cmd_export_key(args: argparse.Namespace) -> int:
    """``coldchain export key``: print the public key that signs manifests (JSON, as GET /api/keys/export)."""
    settings = load_or_exit(getattr(args, "key_config", None) or args.config)
    try:
        signer = load_signer(settings)
    except ValueError as exc:
        return _fail(str(exc), 1)
    print(json.dumps(signer.describe(), indent=2))
    return 0


def add_export_command(subparsers: Any) -> None:
    """``coldchain export …`` and ``coldchain export verify DIR``."""
    export = subparsers.add_parser(
        "export",
        help="Write an audit export (readings, daily, excursions, bags, audit trail, report.pdf, manifest).",
        description="Write an audit export of a period into a new directory, or verify one (export verify DIR).",
    )
    export.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    export.add_argument("--from", dest="from_", metavar="DATE", help="first day (YYYY-MM-DD, UTC) or RFC 3339 time")
    export.add_argument("--to", metavar="DATE", help="last day, included (YYYY-MM-DD) or RFC 3339 time (excluded)")
    export.add_argument("--site", help="only this site")
    export.add_argument("--unit", help="only this unit")
    export.add_argument(
        "--format", default=",".join(DEFAULT_FORMATS), help="csv, json, pdf, comma-separated (default: csv,pdf)"
    )
    export.add_argument("--out", type=Path, help="new (or empty) directory to write into")
    export.set_defaults(func=cmd_export)
    actions = export.add_subparsers(dest="export_command", metavar="verify|key")
    key = actions.add_parser(
        "key",
        help="Print the Ed25519 public key that signs export manifests (give it to inspectors to pin).",
        description="Print the export signing key's public half and fingerprint as JSON (created once if needed).",
    )
    key.add_argument("--config", dest="key_config", type=Path, default=argparse.SUPPRESS, help="configuration")
    key.set_defaults(func=cmd_export_key)
    verify = actions.add_parser(
        "verify",
        help="Re-check an export's files against its manifest (and its signature).",
        description="Recompute every file's SHA-256, name altered, missing or extra files, check the signature.",
    )
    verify.add_argument("directory", type=Path, help="the export's directory")
    verify.add_argument(
        "--config",
        dest="verify_config",
        type=Path,
        default=argparse.SUPPRESS,
        help="configuration (its export.signing_key checks legacy HMAC-signed exports)",
    )
    verify.add_argument(
        "--public-key",
        type=Path,
        default=None,
        help="the trusted Ed25519 public key (GET /api/keys/export's JSON, PEM, or base64)",
    )
    verify.set_defaults(func=cmd_export_verify)
