"""One run of a scheduled report (``[[reports]]``): the previous period's export, signed, kept and sent.

``run_report`` writes the export of one period (``core/report_periods.py``) into ``<dir>/<period>/``
exactly as ``coldchain export`` does (every table, report.pdf, manifest.json signed with Ed25519), a
period without readings included (its report says so), then sends report.pdf and manifest.json to
the report's notify targets as attachments where the channel takes files. ``done_periods`` reads
back which periods a report has: the directories holding a manifest (an export is renamed into place
only once complete), so a run missed while coldchain was down is found and caught up at the next start.

Both ``coldchain reports run`` and the scheduler role (``roles/report_scheduler.py``) call these.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from coldchain.adapters.notify import DeliveryError, send_files
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import LOG_TARGET, ReportConfig, Settings
from coldchain.core.report_periods import Period, parse_period
from coldchain.core.times import format_time
from coldchain.reporting.export import run_export
from coldchain.reporting.manifest import MANIFEST
from coldchain.reporting.request import ExportError, ExportRequest

log = logging.getLogger("coldchain.reports")


class ReportFailed(Exception):
    """A run that did not write, sign or send its report; the message says why."""


@dataclass(slots=True)
class ReportRun:
    """What one run did."""

    report: str
    period: str
    out: Path
    sent: list[str] = field(default_factory=list)
    """Targets that received report.pdf and the manifest as attachments."""
    without_files: list[str] = field(default_factory=list)
    """Targets whose channel takes no files: told where the report is."""
    notes: list[str] = field(default_factory=list)


def report_timezone(settings: Settings, report: ReportConfig) -> str:
    """The zone a report's periods are local to: its site's (or its unit's site's); UTC without either."""
    inventory = settings.frozen_inventory()
    site = report.site
    if site is None and report.unit is not None:
        unit = inventory.unit(report.unit)
        site = unit.site if unit is not None else None
    return inventory.site(site).timezone if site is not None else "UTC"


def find_report(settings: Settings, name: str) -> ReportConfig:
    """The configured report called ``name``; KeyError naming the known ones."""
    for report in settings.reports:
        if report.name == name:
            return report
    known = ", ".join(r.name for r in settings.reports) or "none configured"
    raise KeyError(f"no report {name!r} (known: {known})")


def done_periods(report: ReportConfig, timezone: str) -> set[str]:
    """The periods whose export is complete in the report's directory."""
    directory = report.directory
    if not directory.is_dir():
        return set()
    done = set()
    for path in directory.iterdir():
        if path.is_dir() and (path / MANIFEST).is_file():
            try:
                parse_period(report.every, path.name, timezone)
            except ValueError:
                continue
            done.add(path.name)
    return done


def run_report(
    store: Store,
    settings: Settings,
    report: ReportConfig,
    period: Period,
    now: datetime,
    send: Callable[..., bool] = send_files,
) -> ReportRun:
    """Export, sign and send ``period`` of ``report``; ReportFailed when any step fails (what was written stays)."""
    out = report.directory / period.name
    request = ExportRequest(
        period.start,
        period.end,
        out,
        report.site,
        report.unit,
        from_text=period.first_day.isoformat(),
        to_text=period.last_day.isoformat(),
        empty_ok=True,
    )
    if period.end > now:
        raise ReportFailed(f"period {period.name} has not ended yet (it ends at {format_time(period.end)})")
    try:
        result = run_export(store, settings, request, now)
    except ExportError as exc:
        raise ReportFailed(f"export of {period.name} into {out}: {exc}") from None
    except StoreError as exc:
        raise ReportFailed(f"cannot read the store: {exc}") from None
    except OSError as exc:
        raise ReportFailed(f"cannot write {out}: {exc}") from None
    run = ReportRun(report.name, period.name, out, notes=list(result.warnings))
    files = [out / "report.pdf", out / MANIFEST]
    title = f"coldchain report {report.name}: {period.name}"
    body = (
        f"The {report.every}ly report {report.name} for {period.name} ({period.first_day} to {period.last_day}, "
        f"{format_time(period.start)} to {format_time(period.end)}) is attached: report.pdf and its signed "
        f"manifest.json. The whole export is kept in {out}; check it with: coldchain export verify {out} "
        "--public-key <the pinned key>."
    )
    failures = []
    targets = {target.name: target for target in settings.notify.targets}
    for name in report.targets:
        if name == LOG_TARGET:
            log.info("%s: %s", title, body, extra={"report": report.name, "period": period.name})
            continue
        target = targets.get(name)
        if target is None:
            failures.append(f"{name}: no such notify target")
            continue
        try:
            (run.sent if send(target, title, body, files) else run.without_files).append(name)
        except DeliveryError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        raise ReportFailed(f"{period.name} was written to {out} but not sent to " + "; ".join(failures))
    return run
