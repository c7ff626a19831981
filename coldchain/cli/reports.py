"""``coldchain reports run NAME [--period P]``: one scheduled report at once, as the scheduler runs it.

Without ``--period`` it runs the period that ended at the last local midnight. The export is written into
the report's ``dir`` (``<dir>/<period>/``), signed, and sent to its targets; the run is audited
(``report_run`` or ``report_failed`` in the audit trail). Exit 0 when written and sent, 1 when it failed
(the reason on stderr), 2 for a wrong name or period. The ``report_failed`` alert is the scheduler's
(``coldchain run``): this command says so by its exit status.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coldchain.adapters.audit_log import AuditLog, load_audit_key
from coldchain.adapters.store.factory import open_store
from coldchain.adapters.store.port import Store, StoreError
from coldchain.cli.loading import load_or_exit
from coldchain.config import Settings
from coldchain.core.report_periods import last_ended, parse_period
from coldchain.reporting.scheduled import ReportFailed, find_report, report_timezone, run_report


def _fail(message: str, code: int) -> int:
    print(f"coldchain reports: {message}", file=sys.stderr)
    return code


def _audit(settings: Settings, store: Store, action: str, report: str, details: dict[str, Any], at: datetime) -> None:
    """Append to the local audit log (as the running service does) and copy what the store lacks."""
    log = AuditLog(settings.rules.audit_log_path, load_audit_key(settings.rules))
    try:
        log.append("coldchain", action, report, details, at)
        events = log.unstored()
        try:
            store.write(events)
        except StoreError as exc:  # the service copies them at its next start or audit
            print(f"coldchain reports: audit event kept locally, not yet in the store: {exc}", file=sys.stderr)
        else:
            log.mark_stored(event.seq for event in events)
    finally:
        log.close()


def cmd_reports_run(args: argparse.Namespace) -> int:
    settings = load_or_exit(args.config)
    try:
        report = find_report(settings, args.name)
    except KeyError as exc:
        return _fail(str(exc.args[0]), 2)
    timezone = report_timezone(settings, report)
    now = datetime.now(UTC)
    try:
        period = (
            parse_period(report.every, args.period, timezone)
            if args.period
            else last_ended(report.every, now, timezone)
        )
    except ValueError as exc:
        return _fail(f"--period: {exc}", 2)
    store = open_store(settings)
    base = {"period": period.name, "site": report.site or "", "dir": str(report.directory), "scheduled": False}
    try:
        try:
            run = run_report(store, settings, report, period, now)
        except ReportFailed as exc:
            _audit(settings, store, "report_failed", report.name, {**base, "error": str(exc)}, now)
            return _fail(str(exc), 1)
        details = {**base, "dir": str(run.out), "sent": run.sent, "without_files": run.without_files}
        _audit(settings, store, "report_run", report.name, details, now)
    finally:
        store.close()
    print(
        f"report {report.name} for {period.name} ({period.first_day} to {period.last_day}, {timezone}) "
        f"written to {run.out}"
    )
    if run.sent:
        print("sent with report.pdf and manifest.json attached to: " + ", ".join(run.sent))
    if run.without_files:
        print("told where it is (their channel takes no files): " + ", ".join(run.without_files))
    return 0


def add_reports_command(subparsers: Any) -> None:
    """``coldchain reports run NAME [--period P]``."""
    reports = subparsers.add_parser(
        "reports",
        help="Scheduled reports ([[reports]]): run one now.",
        description="Scheduled reports: the export of a period, signed, kept in the report's dir and sent.",
    )
    actions = reports.add_subparsers(dest="reports_command", metavar="run", required=True)
    run = actions.add_parser(
        "run",
        help="Run one report now (default: the period that ended at the last local midnight).",
        description="Write, sign and send one [[reports]] entry's export, as the scheduler of coldchain run does.",
    )
    run.add_argument("name", help="the report's name")
    run.add_argument("--period", help="2026-11-30 (day), 2026-W48 (week) or 2026-11 (month), in the site's zone")
    run.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    run.set_defaults(func=cmd_reports_run)
