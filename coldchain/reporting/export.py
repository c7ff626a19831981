"""Audit exports for inspectors: ``coldchain export`` and ``coldchain export verify``.

One command answers "every reading of fridge A last quarter, every excursion, who responded, what
was done with the stock, and prove nobody edited it". It reads the store only through the storage
port (``Store.read_range``), so any store adapter serves it, and writes into a fresh directory:

- ``readings.csv`` every reading, streamed (constant memory: one pass feeds the file, the daily
  aggregation and the chart's envelope at once);
- ``daily.csv`` per sensor per local day of its site (``local_days.py``: date, zone, UTC offset, 23/24/25
  hours, whether the sensor was in calibration), and ``gaps.csv`` every stretch without data (``daily.py``);
- ``calibration.csv`` each sensor's certificate, due date and the period's days in and out of calibration;
- ``excursions.csv`` every alert episode overlapping the period, measured from the readings
  (``excursions.py``, MKT from ``mkt.py``), with acknowledgements and notifications;
- ``bags.csv`` each diluted bag's life (``bag_history.py``);
- ``audit.csv`` the audit trail's hash chain from its first event to the end of the period;
- ``reviews.csv`` every signed daily review of the period (``reviews.py``); report.pdf shows each day's
  review or NOT REVIEWED;
- ``signatures.csv`` every electronic signature of the period (signer, printed name, time, meaning,
  the alert and the disposition, the signature it replaced), read from that chain;
- ``report.pdf`` for people (``report_pdf.py``); ``--format json`` adds a ``.json`` twin of every
  table (a JSON array, one object per line);
- ``manifest.json``: parameters, version, export time, row counts, the audit chain's head (an
  anchor) and every file's SHA-256, signed with Ed25519 (``reporting/signing.py``; the signer's public
  key and fingerprint are in the manifest and on report.pdf's first page).

The files are written into a hidden sibling directory and renamed into place at the end, so a
failed export leaves nothing half-written. A period with no reading at all is an error (exit 1)
that says where the selection's newest reading is: an inspector's question about a period the
system has no data for deserves a clear "no data", not a set of empty files. ``docs/exports.md``
documents every column.
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from coldchain import __version__
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Settings
from coldchain.core.audit_chain import GENESIS, ChainBreak, verify_chain
from coldchain.core.bag_history import BagLife, fold_bag_events
from coldchain.core.calibration_rules import expires_at, in_calibration
from coldchain.core.daily import DailyAggregator, DailyRow, Gap
from coldchain.core.durations import format_duration
from coldchain.core.excursions import (
    TEMPERATURE_KINDS,
    Episode,
    Measure,
    attach_notifications,
    fold_alerts,
    limit_for,
    measure,
    mkt_window,
    overlaps,
)
from coldchain.core.records import AuditEvent
from coldchain.core.times import format_time, from_millis, to_millis
from coldchain.reporting.audit_trail import read_chain
from coldchain.reporting.manifest import MANIFEST, MANIFEST_FORMAT, canonical_manifest, sha256_file
from coldchain.reporting.progress import PROGRESS_EVERY, Progress
from coldchain.reporting.request import ExportError, ExportRequest, Selection, select, sensor_info, unit_profile
from coldchain.reporting.reviews import REVIEW_COLUMNS, attach_reviews, read_reviews, review_row
from coldchain.reporting.sections import audit_text, build_sections
from coldchain.reporting.signing import ManifestSigner, load_signer
from coldchain.reporting.tables import (
    AUDIT_COLUMNS,
    BAG_COLUMNS,
    CALIBRATION_COLUMNS,
    DAILY_COLUMNS,
    EXCURSION_COLUMNS,
    GAP_COLUMNS,
    SIGNATURE_COLUMNS,
    ReadingsTable,
    Table,
    minutes_of,
    optional_time,
    rounded,
)

BAG_LOOKAROUND = timedelta(days=7)
"""How far before and after the period bag events are read (bags live hours)."""
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


# -- the export ---------------------------------------------------------------------------------


@dataclass(slots=True)
class ExportResult:
    """What an export wrote."""

    out: Path
    rows: dict[str, int]
    files: list[str]
    signed: bool
    audit_break: str | None
    end_of_data: datetime
    warnings: list[str] = field(default_factory=list)


def run_export(
    store: Store,
    settings: Settings,
    request: ExportRequest,
    now: datetime,
    progress: Progress | None = None,
) -> ExportResult:
    """Export ``request`` from ``store`` as of ``now`` into ``request.out`` (which must be new or empty)."""
    now = from_millis(to_millis(now))  # the store's precision
    if request.end <= request.start:
        raise ExportError(f"--to ({format_time(request.end)}) is not after --from ({format_time(request.start)})", 2)
    if request.start >= now:
        raise ExportError(f"nothing to export: the period starts at {format_time(request.start)}, in the future", 2)
    selection = select(settings, request.site, request.unit)
    out = request.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not empty: give a new directory (exports are never overwritten)", 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        result = _Exporter(store, settings, request, selection, now, work, progress).run()
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        if progress is not None:
            progress.done()
    result.out = out
    return result


class _Exporter:
    """One export's state: the files being written and what later sections need from earlier ones."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        request: ExportRequest,
        selection: Selection,
        now: datetime,
        work: Path,
        progress: Progress | None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.inventory = settings.frozen_inventory()
        self.request = request
        self.selection = selection
        self.now = now
        self.work = work
        self.progress = progress
        self.start = request.start
        self.end = min(request.end, now)
        self.start_ms, self.end_ms = to_millis(self.start), to_millis(self.end)
        self.gap_ms = int(settings.export.gap_after.total_seconds() * 1000)
        self.tables: dict[str, Table] = {}
        self.formats = request.formats
        self.table_formats = [f for f in request.formats if f in ("csv", "json")]
        self._signer: ManifestSigner | None = None
        self.notes: list[str] = []
        """What the reader must know first (a period without readings), in the manifest and on report.pdf."""

    @property
    def signer(self) -> ManifestSigner:
        """The export signing key, loaded (or created once) when the export is about to be signed."""
        if self._signer is None:
            try:
                self._signer = load_signer(self.settings)
            except ValueError as exc:
                raise ExportError(f"cannot sign the export: {exc}", 1) from None
        return self._signer

    def _table(self, name: str, columns: Sequence[str]) -> Table:
        table = self.tables[name] = Table(self.work, name, columns, self.table_formats)
        return table

    def run(self) -> ExportResult:
        from coldchain.reporting.report_pdf import Envelope

        envelope = Envelope(self.start_ms, self.end_ms)
        daily_rows = self._readings(envelope)
        self._daily(daily_rows)
        self._calibration(daily_rows)
        episodes, measures = self._excursions()
        bags = self._bags()
        chain, problem = self._audit()
        self._signatures(chain)
        reviews = read_reviews(self.store, self.start, self.end, self.selection.tags)
        table = self._table("reviews", REVIEW_COLUMNS)
        for review in reviews:
            table.add(review_row(review))
        for table in self.tables.values():
            table.close()
        if "pdf" in self.formats:
            if self.progress is not None:
                self.progress.note("export: drawing report.pdf")
            self._report(envelope, daily_rows, episodes, measures, bags, chain, problem, reviews)
        signed = self._manifest(chain, problem)
        files = sorted(p.name for p in self.work.iterdir())
        return ExportResult(
            out=self.work,
            rows={name: table.rows for name, table in self.tables.items()},
            files=files,
            signed=signed,
            audit_break=str(problem) if problem is not None else None,
            end_of_data=self.end,
        )

    # -- readings, daily, gaps ------------------------------------------------------------------

    def _stream(self, measurement: str, value_field: str, kind: str) -> Iterator[tuple[int, str, str, str, str, float]]:
        rows = self.store.read_range(
            measurement,
            from_millis(self.start_ms - self.gap_ms),
            from_millis(self.end_ms + self.gap_ms + 1),
            self.selection.tags,
        )
        for row in rows:
            value = row.get(value_field)
            if value is None:
                continue
            yield (
                to_millis(row["time"]),
                kind,
                row.get("sensor", ""),
                row.get("site", ""),
                row.get("unit", ""),
                float(value),
            )

    def _readings(self, envelope: Any) -> list[DailyRow]:
        gaps = self._table("gaps", GAP_COLUMNS)

        def on_gap(gap: Gap) -> None:
            info = gap.info
            gaps.add(
                (
                    info.site,
                    info.unit,
                    info.sensor,
                    info.kind,
                    format_time(from_millis(gap.start_ms)),
                    format_time(from_millis(gap.end_ms)),
                    minutes_of(gap.end_ms - gap.start_ms),
                    "unknown",
                )
            )

        daily = DailyAggregator(
            self.start_ms,
            self.end_ms,
            self.gap_ms,
            self.selection.infos,
            on_gap,
            limits_of=lambda sensor, site, unit, kind: sensor_info(self.inventory, sensor, site, unit, kind),
        )
        readings = ReadingsTable(self.work, self.table_formats)
        self.tables["readings"] = readings
        start_ms, end_ms = self.start_ms, self.end_ms
        progress = self.progress
        add_daily, add_reading, add_envelope = daily.add, readings.reading, envelope.add
        merged = heapq.merge(
            self._stream("temperature", "celsius", "temperature"), self._stream("shake", "peak_g", "shake")
        )
        count = 0
        for ms, kind, sensor, site, unit, value in merged:
            if start_ms <= ms < end_ms:
                add_reading(ms, site, unit, sensor, kind, value)
                if kind == "temperature":
                    add_envelope(sensor, ms, value)
                count += 1
                if progress is not None and not count % PROGRESS_EVERY:
                    progress.update(ms, count)
            add_daily(sensor, site, unit, kind, ms, value)
        if count == 0:
            if not self.request.empty_ok:
                raise ExportError(self._no_readings(), 1)
            self.notes.append("No readings in this period: every sensor's time is unknown, never in range.")
        return daily.finish()

    def _no_readings(self) -> str:
        newest: datetime | None = None
        sensors = {info.sensor for info in self.selection.infos}
        try:
            for measurement in ("temperature", "shake"):
                for sensor, row in self.store.latest(measurement, "sensor").items():
                    if sensor in sensors and (newest is None or row["time"] > newest):
                        newest = row["time"]
        except StoreError:
            newest = None
        where = (
            f"the newest reading of this selection is from {format_time(newest)}"
            if newest
            else ("the store holds no reading of this selection at all")
        )
        return (
            f"no readings of {self.selection.text} between {format_time(self.start)} and {format_time(self.end)} "
            f"({where}); nothing was exported"
        )

    def _daily(self, rows: list[DailyRow]) -> None:
        table = self._table("daily", DAILY_COLUMNS)
        sensors = self.inventory.sensors
        for row in rows:
            info = row.info
            judged = not row.ms_unjudged
            calibrated = in_calibration(sensors.get(info.sensor), row.local)
            table.add(
                (
                    row.local.date_text,
                    info.timezone,
                    row.local.utc_offset,
                    row.local.hours,
                    info.site,
                    info.unit,
                    info.sensor,
                    info.kind,
                    row.readings,
                    row.readings_out if judged else None,
                    row.min,
                    row.max,
                    rounded(row.mean),
                    minutes_of(row.ms_in) if judged else None,
                    minutes_of(row.ms_out) if judged else None,
                    minutes_of(row.ms_unknown),
                    row.gaps,
                    row.status,
                    None if calibrated is None else ("yes" if calibrated else "no"),
                )
            )

    def _calibration(self, rows: list[DailyRow]) -> None:
        """calibration.csv: one row per sensor of the selection, judged over the local days of ``rows``."""
        table = self._table("calibration", CALIBRATION_COLUMNS)
        days: dict[str, list[bool | None]] = {}
        for row in rows:
            days.setdefault(row.info.sensor, []).append(
                in_calibration(self.inventory.sensors.get(row.info.sensor), row.local)
            )
        for info in self.selection.infos:
            sensor = self.inventory.sensors.get(info.sensor)
            due = sensor.calibration_due if sensor is not None else None
            judged = days.get(info.sensor, [])
            inside, outside = judged.count(True), judged.count(False)
            if due is None:
                status = "not tracked (no calibration_due configured)"
            elif outside:
                status = f"OUT OF CALIBRATION on {outside} day(s)"
            else:
                status = "in calibration every day"
            table.add(
                (
                    info.site,
                    info.unit,
                    info.sensor,
                    info.kind,
                    (sensor.calibration_certificate or None) if sensor is not None else None,
                    due.isoformat() if due is not None else None,
                    info.timezone,
                    format_time(from_millis(expires_at(due, info.timezone))) if due is not None else None,
                    inside if due is not None else None,
                    outside if due is not None else None,
                    status,
                )
            )

    # -- excursions -----------------------------------------------------------------------------

    def _excursions(self) -> tuple[list[Episode], dict[str, Measure]]:
        if self.progress is not None:
            self.progress.note("export: excursions")
        tags = self.selection.tags
        folded = fold_alerts(self.store.read_range("alert", _BEGINNING, _FAR_FUTURE, tags))
        chosen = sorted(
            (e for e in folded.values() if overlaps(e, self.start, self.end)),
            key=lambda e: (e.started_at, e.kind, e.subject),
        )
        episodes = {e.id: e for e in chosen}
        if episodes:
            since = min(e.started_at for e in chosen)
            attach_notifications(episodes, self.store.read_range("notification", since, _FAR_FUTURE, tags))
        measures: dict[str, Measure] = {}
        table = self._table("excursions", EXCURSION_COLUMNS)
        for episode in chosen:
            measured = self._measure(episode)
            if measured is not None:
                measures[episode.id] = measured
            table.add(self._excursion_row(episode, measured))
        return chosen, measures

    def _measure(self, episode: Episode) -> Measure | None:
        profile = unit_profile(self.inventory, episode.unit)
        limit = limit_for(episode.kind, profile) if profile is not None and episode.sensor else None
        if limit is None or episode.sensor is None:
            return None
        start_ms = to_millis(episode.started_at)
        end_ms = to_millis(episode.resolved_at or self.now)
        temperature = episode.kind in TEMPERATURE_KINDS
        measurement, value_field = ("temperature", "celsius") if temperature else ("shake", "peak_g")
        first = mkt_window(start_ms, end_ms)[0] if temperature else start_ms
        rows = self.store.read_range(
            measurement, from_millis(first), from_millis(end_ms + self.gap_ms + 1), {"sensor": episode.sensor}
        )
        readings = ((to_millis(r["time"]), float(r[value_field])) for r in rows if r.get(value_field) is not None)
        return measure(readings, start_ms, end_ms, limit, self.gap_ms, with_mkt=temperature)

    def _excursion_row(self, episode: Episode, m: Measure | None) -> tuple[Any, ...]:
        end = episode.resolved_at
        duration_ms = to_millis(end or self.now) - to_millis(episode.started_at)
        profile = unit_profile(self.inventory, episode.unit)
        limit = limit_for(episode.kind, profile) if profile is not None else None
        acks = episode.acknowledgements
        sent = sum(1 for d in episode.deliveries if d.outcome == "sent")
        deliveries = " | ".join(
            f"{format_time(d.at)} {d.channel}:{d.target} {d.purpose} tier {d.tier} attempt {d.attempt}: {d.outcome}"
            + (f" ({d.error})" if d.error else "")
            for d in episode.deliveries
        )
        return (
            episode.id,
            episode.kind,
            episode.severity,
            episode.site,
            episode.unit,
            episode.sensor,
            episode.bag or episode.subject,
            format_time(episode.started_at),
            optional_time(end),
            episode.state if end is not None else f"{episode.state} (at export)",
            minutes_of(duration_ms),
            (m.peak if m is not None and m.peak is not None else episode.value),
            limit.value if limit is not None and episode.sensor else None,
            minutes_of(m.ms_beyond) if m is not None else None,
            rounded(m.degree_minutes) if m is not None else None,
            minutes_of(m.ms_unknown) if m is not None else None,
            rounded(m.mkt) if m is not None else None,
            format_time(from_millis(m.mkt_start_ms)) if m is not None and m.mkt_start_ms is not None else None,
            format_time(from_millis(m.mkt_end_ms)) if m is not None and m.mkt_end_ms is not None else None,
            m.mkt_readings if m is not None and m.mkt is not None else None,
            " | ".join(a.by for a in acks) or None,
            " | ".join(format_time(a.at) if a.at else "" for a in acks) or None,
            " | ".join(a.note or "" for a in acks) or None,
            " | ".join(a.disposition or "" for a in acks) or None,
            sent,
            deliveries or None,
            episode.message,
        )

    # -- bags -----------------------------------------------------------------------------------

    def _bags(self) -> list[BagLife]:
        shelf = max((u.profile.diluted_use_within for u in self.inventory.units.values()), default=timedelta(0))
        around = BAG_LOOKAROUND + shelf
        rows = self.store.read_range("bag_event", self.start - around, self.end + around)
        deadlines = {
            str(row.get("bag")): row["time"]
            for row in self.store.read_range("bag_timer", self.start - around, self.end + 2 * around)
        }

        def use_within(unit: str) -> timedelta | None:
            profile = unit_profile(self.inventory, unit)
            return profile.diluted_use_within if profile is not None else None

        lives = fold_bag_events(rows, use_within, deadlines)
        site, unit = self.request.site, self.request.unit
        chosen = sorted(
            (
                life
                for life in lives.values()
                if (unit is None or life.unit == unit)
                and (site is None or life.site == site)
                and life.diluted_at < self.end
                and (life.ended_at is None or life.ended_at >= self.start)
            ),
            key=lambda life: (life.diluted_at, life.bag),
        )
        table = self._table("bags", BAG_COLUMNS)
        for life in chosen:
            within, outcome = life.verdict(self.now)
            table.add(
                (
                    life.bag,
                    life.site,
                    life.unit,
                    life.product,
                    life.lot,
                    format_time(life.diluted_at),
                    life.diluted_by,
                    optional_time(life.deadline),
                    optional_time(life.started_at),
                    life.started_by,
                    optional_time(life.completed_at),
                    life.completed_by,
                    optional_time(life.discarded_at),
                    life.discarded_by,
                    within or None,
                    outcome,
                )
            )
        return chosen

    # -- audit ----------------------------------------------------------------------------------

    def _audit(self) -> tuple[list[AuditEvent], ChainBreak | None]:
        chain = read_chain(self.store, until=self.end, chain=self.settings.rules.audit_chain)
        problem = verify_chain(chain)
        table = self._table("audit", AUDIT_COLUMNS)
        for event in chain:
            table.add(
                (
                    event.seq,
                    format_time(event.at),
                    event.action,
                    event.actor,
                    event.subject,
                    event.details,
                    event.prev_hash,
                    event.hash,
                    "yes" if self.start <= event.at < self.end else "no",
                )
            )
        return chain, problem

    def _signatures(self, chain: list[AuditEvent]) -> None:
        """signatures.csv: the signed acknowledgements of the period in the selection, oldest first."""
        units = {u.id for u in self.selection.units}
        table = self._table("signatures", SIGNATURE_COLUMNS)
        for event in chain:
            if event.action != "acknowledged" or not self.start <= event.at < self.end:
                continue
            details = json.loads(event.details)
            signature = details.get("signature")
            if not signature or details.get("unit") not in units:
                continue
            table.add(
                (
                    signature["signed_at"],
                    signature["signed_by"],
                    signature["full_name"],
                    signature["meaning"],
                    details.get("disposition"),
                    event.subject,
                    details.get("kind"),
                    details.get("site"),
                    details.get("unit"),
                    details.get("subject"),
                    details.get("note"),
                    event.actor,
                    signature["id"],
                    signature.get("supersedes"),
                    event.seq,
                )
            )

    # -- report and manifest --------------------------------------------------------------------

    def _report(
        self,
        envelope: Any,
        daily_rows: list[DailyRow],
        episodes: list[Episode],
        measures: dict[str, Measure],
        bags: list[BagLife],
        chain: list[AuditEvent],
        problem: ChainBreak | None,
        reviews: list[dict[str, Any]],
    ) -> None:
        from coldchain.reporting.report_pdf import ReportData, write_report

        data = ReportData(
            title="Cold-chain temperature record",
            period=f"{format_time(self.start)} to {format_time(self.end)}",
            exported_at=format_time(self.now),
            version=__version__,
            selection=self.selection.text,
            gap_after=format_duration(self.settings.export.gap_after),
            audit=audit_text(chain, problem),
            signed=True,
            signer=self.signer.fingerprint,
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            envelope=envelope,
            units=[],
            overview=[],
            notes=self.notes,
        )
        build_sections(data, self.settings, self.selection.units, daily_rows, episodes, measures, bags, self.now)
        attach_reviews(data, self.inventory, reviews, self.start, self.end)
        write_report(self.work / "report.pdf", data)

    def _manifest(self, chain: list[AuditEvent], problem: ChainBreak | None) -> bool:
        files = {}
        for path in sorted(self.work.iterdir()):
            files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
        head = chain[-1] if chain else None
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "coldchain_version": __version__,
            "exported_at": format_time(self.now),
            "parameters": {
                "from": self.request.from_text or format_time(self.request.start),
                "to": self.request.to_text or format_time(self.request.end),
                "start": format_time(self.start),
                "end": format_time(self.request.end),
                "end_of_data": format_time(self.end),
                "site": self.request.site,
                "unit": self.request.unit,
                "formats": list(self.formats),
                "gap_after": format_duration(self.settings.export.gap_after),
                "units": [u.id for u in self.selection.units],
                "sensors": [info.sensor for info in self.selection.infos],
            },
            "row_counts": {name: table.rows for name, table in sorted(self.tables.items())},
            "audit_chain": {
                "events": len(chain),
                "head_seq": head.seq if head else 0,
                "head_hash": head.hash if head else GENESIS,
                "head_time": format_time(head.at) if head else None,
                "intact": problem is None,
                "first_break": str(problem) if problem is not None else None,
            },
            "files": files,
            "notes": self.notes,
            "signer": self.signer.describe(),
        }
        manifest["signature"] = self.signer.sign(canonical_manifest(manifest))
        (self.work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return True
