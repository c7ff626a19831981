"""Audit exports for inspectors: ``coldchain export`` and ``coldchain export verify``.

One command answers "every reading of fridge A last quarter, every excursion, who responded, what
was done with the stock, and prove nobody edited it". It reads the store only through the storage
port (``Store.read_range``), so any store adapter serves it, and writes into a fresh directory:

- ``readings.csv`` every reading, streamed (constant memory: one pass feeds the file, the daily
  aggregation and the chart's envelope at once);
- ``daily.csv`` per sensor per UTC day, and ``gaps.csv`` every stretch without data (``daily.py``);
- ``excursions.csv`` every alert episode overlapping the period, measured from the readings
  (``excursions.py``, MKT from ``mkt.py``), with acknowledgements and notifications;
- ``bags.csv`` each diluted bag's life (``bag_history.py``);
- ``audit.csv`` the audit trail's hash chain from its first event to the end of the period;
- ``report.pdf`` for people (``report_pdf.py``); ``--format json`` adds a ``.json`` twin of every
  table (a JSON array, one object per line);
- ``manifest.json``: parameters, version, export time, row counts and every file's SHA-256, signed
  with HMAC-SHA256 when ``export.signing_key`` is configured.

The files are written into a hidden sibling directory and renamed into place at the end, so a
failed export leaves nothing half-written. A period with no reading at all is an error (exit 1)
that says where the selection's newest reading is: an inspector's question about a period the
system has no data for deserves a clear "no data", not a set of empty files. ``docs/exports.md``
documents every column.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import hmac
import json
import os
import re
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from coldchain import __version__
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Profile, Settings, Unit
from coldchain.core.audit_chain import GENESIS, ChainBreak, event_from_row, verify_chain
from coldchain.core.bag_history import BagLife, fold_bag_events
from coldchain.core.daily import DAY_MS, DailyAggregator, DailyRow, Gap, SensorInfo
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

FORMATS = ("csv", "json", "pdf")
DEFAULT_FORMATS = ("csv", "pdf")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "coldchain-export/1"
BAG_LOOKAROUND = timedelta(days=7)
"""How far before and after the period bag events are read (bags live hours)."""
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PROGRESS_EVERY = 16_384

READING_COLUMNS = ("time", "site", "unit", "sensor", "kind", "value")
DAILY_COLUMNS = (
    "date",
    "site",
    "unit",
    "sensor",
    "kind",
    "readings",
    "readings_out_of_range",
    "min",
    "max",
    "mean",
    "minutes_in_range",
    "minutes_out_of_range",
    "minutes_unknown",
    "gaps",
    "status",
)
GAP_COLUMNS = ("site", "unit", "sensor", "kind", "start", "end", "minutes", "status")
EXCURSION_COLUMNS = (
    "id",
    "kind",
    "severity",
    "site",
    "unit",
    "sensor",
    "subject",
    "started_at",
    "ended_at",
    "state",
    "duration_minutes",
    "peak",
    "limit",
    "minutes_beyond_limit",
    "degree_minutes",
    "minutes_unknown",
    "mkt_celsius",
    "mkt_window_start",
    "mkt_window_end",
    "mkt_readings",
    "acknowledged_by",
    "acknowledged_at",
    "note",
    "disposition",
    "notifications_sent",
    "notifications",
    "message",
)
BAG_COLUMNS = (
    "bag",
    "site",
    "unit",
    "product",
    "lot",
    "diluted_at",
    "diluted_by",
    "deadline",
    "infusion_started_at",
    "started_by",
    "infusion_completed_at",
    "completed_by",
    "discarded_at",
    "discarded_by",
    "used_within_limit",
    "outcome",
)
AUDIT_COLUMNS = ("seq", "time", "action", "actor", "subject", "details", "prev_hash", "hash", "in_period")


class ExportError(Exception):
    """The export cannot be made as asked; ``code`` is the exit status (2: the request is wrong)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- request ------------------------------------------------------------------------------------


def parse_when(text: str, *, end: bool = False) -> datetime:
    """``YYYY-MM-DD`` (UTC midnight; with ``end``, the midnight after, so the day is included) or RFC 3339.

    Raises ValueError with a sentence saying what is wrong.
    """
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date ({exc})") from None
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return midnight + timedelta(days=1) if end else midnight
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an RFC 3339 time ({exc})") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: write Z or +01:00 at its end, or give a date")
    return parsed.astimezone(UTC)


def parse_formats(text: str) -> tuple[str, ...]:
    """``csv,json,pdf`` (any non-empty subset, any order); ValueError naming an unknown one."""
    formats = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown format {', '.join(unknown) or '(none)'} (choose from {', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in formats)


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export: [start, end) (UTC), an optional site and unit, the formats, the directory."""

    start: datetime
    end: datetime
    out: Path
    site: str | None = None
    unit: str | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    from_text: str = ""
    to_text: str = ""


@dataclass(frozen=True, slots=True)
class Selection:
    """The units and sensors an export covers, and the tag filter that reads them."""

    units: list[Unit]
    infos: list[SensorInfo]
    tags: dict[str, str] | None
    text: str


def select(settings: Settings, site: str | None, unit: str | None) -> Selection:
    """The selection, or ExportError (exit 2) naming the known sites or units."""
    sites = sorted({u.site for u in settings.units})
    if site is not None and site not in sites:
        raise ExportError(f"unknown site {site!r} (known: {', '.join(sites) or 'none configured'})", 2)
    units = [u for u in settings.units if site is None or u.site == site]
    if unit is not None:
        chosen = [u for u in units if u.id == unit]
        if not chosen:
            known = ", ".join(u.id for u in units) or "none configured"
            where = f" at site {site!r}" if site is not None else ""
            raise ExportError(f"unknown unit {unit!r}{where} (known: {known})", 2)
        units = chosen
    ids = {u.id for u in units}
    infos = [
        sensor_info(settings, sensor.id, u.site, u.id, sensor.kind)
        for sensor in settings.sensors
        for u in units
        if sensor.unit == u.id and sensor.unit in ids
    ]
    tags = {"unit": unit} if unit is not None else ({"site": site} if site is not None else None)
    if unit is not None:
        text = f"unit {unit} ({units[0].display_name}) at site {units[0].site}"
    elif site is not None:
        text = f"site {site}: units {', '.join(u.id for u in units)}"
    else:
        text = f"every unit: {', '.join(u.id for u in units) or 'none configured'}"
    return Selection(units, infos, tags, text)


def _unit_of(settings: Settings, unit_id: str) -> Unit | None:
    return next((u for u in settings.units if u.id == unit_id), None)


def _profile(settings: Settings, unit_id: str) -> Profile | None:
    unit = _unit_of(settings, unit_id)
    return settings.unit_profile(unit) if unit is not None else None


def sensor_info(settings: Settings, sensor: str, site: str, unit: str, kind: str) -> SensorInfo:
    """A sensor with the limits of its unit's profile (none when the unit is not configured)."""
    profile = _profile(settings, unit)
    if profile is None:
        return SensorInfo(sensor, site, unit, kind)
    if kind == "shake":
        return SensorInfo(sensor, site, unit, kind, None, profile.agitation_g)
    return SensorInfo(sensor, site, unit, kind, profile.min_celsius, profile.max_celsius)


# -- output -------------------------------------------------------------------------------------


class _Table:
    """One table written as CSV and/or a JSON array (one object per line), row by row."""

    def __init__(self, directory: Path, name: str, columns: Sequence[str], formats: Sequence[str]) -> None:
        self.name = name
        self.columns = tuple(columns)
        self.rows = 0
        self.files: list[str] = []
        self._csv: IO[str] | None = None
        self._json: IO[str] | None = None
        if "csv" in formats:
            self.files.append(f"{name}.csv")
            self._csv = (directory / f"{name}.csv").open("w", encoding="utf-8", newline="")
            self.writer = csv.writer(self._csv, lineterminator="\n")
            self.writer.writerow(self.columns)
        if "json" in formats:
            self.files.append(f"{name}.json")
            self._json = (directory / f"{name}.json").open("w", encoding="utf-8")
            self._json.write("[")

    def add(self, values: Sequence[Any]) -> None:
        if self._csv is not None:
            self.writer.writerow(["" if v is None else v for v in values])
        if self._json is not None:
            item = json.dumps(dict(zip(self.columns, values, strict=True)), ensure_ascii=False)
            self._json.write(("\n" if self.rows == 0 else ",\n") + item)
        self.rows += 1

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._json is not None:
            self._json.write("\n]\n" if self.rows else "]\n")
            self._json.close()


_CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
"""``HH:MM:SS`` of every second of a day."""


class _ReadingsTable(_Table):
    """``readings``: the hot path, one row per reading, with cached time prefixes and tag escapes."""

    def __init__(self, directory: Path, formats: Sequence[str]) -> None:
        super().__init__(directory, "readings", READING_COLUMNS, formats)
        self._days: dict[int, str] = {}
        self._quoted: dict[str, str] = {}

    def time_text(self, ms: int) -> str:
        """``format_time`` of an epoch-ms instant, without building a datetime (day and second tables)."""
        day, rest = divmod(ms, DAY_MS)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = from_millis(day * DAY_MS).strftime("%Y-%m-%dT")
        second, millis = divmod(rest, 1000)
        if millis:
            return f"{prefix}{_CLOCK[second]}.{millis:03d}Z"
        return f"{prefix}{_CLOCK[second]}Z"

    def reading(self, ms: int, site: str, unit: str, sensor: str, kind: str, value: float) -> None:
        text = self.time_text(ms)
        if self._csv is not None:
            self.writer.writerow((text, site, unit, sensor, kind, value))
        if self._json is not None:
            quoted = self._quoted
            key = f"{site}\x00{unit}\x00{sensor}\x00{kind}"
            tags = quoted.get(key)
            if tags is None:
                tags = quoted[key] = (
                    f'"site":{json.dumps(site)},"unit":{json.dumps(unit)},'
                    f'"sensor":{json.dumps(sensor)},"kind":{json.dumps(kind)}'
                )
            sep = "\n" if self.rows == 0 else ",\n"
            self._json.write(f'{sep}{{"time":"{text}",{tags},"value":{value!r}}}')
        self.rows += 1


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, stream: IO[str], start_ms: int, end_ms: int, enabled: bool | None = None) -> None:
        self.stream = stream
        self.start = start_ms
        self.span = max(1, end_ms - start_ms)
        self.enabled = stream.isatty() if enabled is None else enabled
        self.began = time.monotonic()
        self._drawn = False

    def update(self, t_ms: int, readings: int) -> None:
        if not self.enabled:
            return
        share = min(1.0, max(0.0, (t_ms - self.start) / self.span))
        filled = int(share * 30)
        elapsed = time.monotonic() - self.began
        eta = f" ~{elapsed / share - elapsed:.0f}s left" if share > 0.02 else ""
        day = from_millis(t_ms).strftime("%Y-%m-%d")
        line = f"\rexport [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} {day} {readings:,} readings{eta}   "
        self.stream.write(line)
        self.stream.flush()
        self._drawn = True

    def note(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r{text:<90}")
            self.stream.flush()
            self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()
            self._drawn = False


def _minutes(ms: int) -> float:
    return round(ms / 60_000, 2)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _time(ts: datetime | None) -> str | None:
    return None if ts is None else format_time(ts)


def _day_text(day: int) -> str:
    return from_millis(day * DAY_MS).strftime("%Y-%m-%d")


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
        self.request = request
        self.selection = selection
        self.now = now
        self.work = work
        self.progress = progress
        self.start = request.start
        self.end = min(request.end, now)
        self.start_ms, self.end_ms = to_millis(self.start), to_millis(self.end)
        self.gap_ms = int(settings.export.gap_after.total_seconds() * 1000)
        self.tables: dict[str, _Table] = {}
        self.formats = request.formats
        self.table_formats = [f for f in request.formats if f in ("csv", "json")]

    def _table(self, name: str, columns: Sequence[str]) -> _Table:
        table = self.tables[name] = _Table(self.work, name, columns, self.table_formats)
        return table

    def run(self) -> ExportResult:
        from coldchain.reporting.report_pdf import Envelope

        envelope = Envelope(self.start_ms, self.end_ms)
        daily_rows = self._readings(envelope)
        self._daily(daily_rows)
        episodes, measures = self._excursions()
        bags = self._bags()
        chain, problem = self._audit()
        for table in self.tables.values():
            table.close()
        if "pdf" in self.formats:
            if self.progress is not None:
                self.progress.note("export: drawing report.pdf")
            self._report(envelope, daily_rows, episodes, measures, bags, chain, problem)
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
                    _minutes(gap.end_ms - gap.start_ms),
                    "unknown",
                )
            )

        daily = DailyAggregator(
            self.start_ms,
            self.end_ms,
            self.gap_ms,
            self.selection.infos,
            on_gap,
            limits_of=lambda sensor, site, unit, kind: sensor_info(self.settings, sensor, site, unit, kind),
        )
        readings = _ReadingsTable(self.work, self.table_formats)
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
                if progress is not None and not count % _PROGRESS_EVERY:
                    progress.update(ms, count)
            add_daily(sensor, site, unit, kind, ms, value)
        if count == 0:
            raise ExportError(self._no_readings(), 1)
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
        for row in rows:
            info = row.info
            judged = not row.ms_unjudged
            table.add(
                (
                    _day_text(row.day),
                    info.site,
                    info.unit,
                    info.sensor,
                    info.kind,
                    row.readings,
                    row.readings_out if judged else None,
                    row.min,
                    row.max,
                    _round(row.mean),
                    _minutes(row.ms_in) if judged else None,
                    _minutes(row.ms_out) if judged else None,
                    _minutes(row.ms_unknown),
                    row.gaps,
                    row.status,
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
        profile = _profile(self.settings, episode.unit)
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
        profile = _profile(self.settings, episode.unit)
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
            _time(end),
            episode.state if end is not None else f"{episode.state} (at export)",
            _minutes(duration_ms),
            (m.peak if m is not None and m.peak is not None else episode.value),
            limit.value if limit is not None and episode.sensor else None,
            _minutes(m.ms_beyond) if m is not None else None,
            _round(m.degree_minutes) if m is not None else None,
            _minutes(m.ms_unknown) if m is not None else None,
            _round(m.mkt) if m is not None else None,
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
        shelf = max(
            (self.settings.unit_profile(u).diluted_use_within for u in self.settings.units), default=timedelta(0)
        )
        around = BAG_LOOKAROUND + shelf
        rows = self.store.read_range("bag_event", self.start - around, self.end + around)
        deadlines = {
            str(row.get("bag")): row["time"]
            for row in self.store.read_range("bag_timer", self.start - around, self.end + 2 * around)
        }

        def use_within(unit: str) -> timedelta | None:
            profile = _profile(self.settings, unit)
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
                    _time(life.deadline),
                    _time(life.started_at),
                    life.started_by,
                    _time(life.completed_at),
                    life.completed_by,
                    _time(life.discarded_at),
                    life.discarded_by,
                    within or None,
                    outcome,
                )
            )
        return chosen

    # -- audit ----------------------------------------------------------------------------------

    def _audit(self) -> tuple[list[AuditEvent], ChainBreak | None]:
        chain = read_chain(self.store, until=self.end)
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
    ) -> None:
        from coldchain.reporting.report_pdf import ReportData, write_report

        data = ReportData(
            title="Cold-chain temperature record",
            period=f"{format_time(self.start)} to {format_time(self.end)}",
            exported_at=format_time(self.now),
            version=__version__,
            selection=self.selection.text,
            gap_after=format_duration(self.settings.export.gap_after),
            audit=_audit_text(chain, problem),
            signed=bool(self.settings.export.signing_key.get_secret_value()),
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            envelope=envelope,
            units=[],
            overview=[],
        )
        build_sections(data, self.settings, self.selection.units, daily_rows, episodes, measures, bags, self.now)
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
                "intact": problem is None,
                "first_break": str(problem) if problem is not None else None,
            },
            "files": files,
        }
        key = self.settings.export.signing_key.get_secret_value().encode()
        if key:
            manifest["signature"] = signature(manifest, key)
        (self.work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return bool(key)


def _audit_text(chain: list[AuditEvent], problem: ChainBreak | None) -> str:
    if problem is not None:
        return f"BROKEN at {problem}. Events from there on are unproven."
    if not chain:
        return "no operator action recorded up to the end of the period."
    return (
        f"{len(chain)} events up to the end of the period, hash chain intact "
        f"(last seq {chain[-1].seq}, hash {chain[-1].hash[:16]}…); see audit.csv."
    )


def build_sections(
    data: Any,
    settings: Settings,
    units: Sequence[Unit],
    daily_rows: Sequence[DailyRow],
    episodes: Sequence[Episode],
    measures: Mapping[str, Measure],
    bags: Sequence[BagLife],
    now: datetime,
) -> None:
    """Fill ``data`` (a ``ReportData``) with the overview and one section per unit, worded for people."""
    from coldchain.reporting.report_pdf import Span, UnitSection

    by_unit: dict[str, list[DailyRow]] = defaultdict(list)
    for row in daily_rows:
        by_unit[row.info.unit].append(row)
    data.overview = [
        [
            "Unit",
            "Site",
            "Sensors",
            "Readings",
            "Lowest °C",
            "Highest °C",
            "Out of range, min",
            "Unknown, min",
            "Excursions",
            "Bags",
        ]
    ]
    for unit in units:
        profile = settings.unit_profile(unit)
        rows = by_unit.get(unit.id, [])
        temps = [r for r in rows if r.info.kind == "temperature" and r.readings]
        lowest = min((r.min for r in temps if r.min is not None), default=None)
        highest = max((r.max for r in temps if r.max is not None), default=None)
        readings = sum(r.readings for r in rows)
        out_ms = sum(r.ms_out for r in rows if r.info.kind == "temperature")
        unknown_ms = sum(r.ms_unknown for r in rows if r.info.kind == "temperature")
        unit_episodes = [e for e in episodes if e.unit == unit.id]
        unit_bags = [b for b in bags if b.unit == unit.id]
        sensors = [s for s in settings.sensors if s.unit == unit.id]
        data.overview.append(
            [
                unit.display_name,
                unit.site,
                ", ".join(s.id for s in sensors) or "none",
                f"{readings:,}",
                _num(lowest),
                _num(highest),
                _num(_minutes(out_ms)),
                _num(_minutes(unknown_ms)),
                str(len(unit_episodes)),
                str(len(unit_bags)),
            ]
        )
        section = UnitSection(
            unit=unit.id,
            name=unit.display_name,
            site=unit.site,
            profile=unit.profile,
            low=profile.min_celsius,
            high=profile.max_celsius,
            temperature_sensors=[s.id for s in sensors if s.kind == "temperature"],
            other_sensors=[s.id for s in sensors if s.kind != "temperature"],
            summary=[
                ("readings", f"{readings:,}"),
                ("lowest", f"{_num(lowest)} °C"),
                ("highest", f"{_num(highest)} °C"),
                ("out of range", f"{_num(_minutes(out_ms))} min"),
                ("unknown (no data)", f"{_num(_minutes(unknown_ms))} min"),
            ],
        )
        for e in unit_episodes:
            m = measures.get(e.id)
            end_ms = to_millis(e.resolved_at or now)
            if e.kind in TEMPERATURE_KINDS:
                section.excursion_spans.append(Span(to_millis(e.started_at), end_ms))
            acks = "; ".join(
                f"{a.by} at {format_time(a.at) if a.at else '?'}"
                + (f": {a.disposition}" if a.disposition else "")
                + (f" — {a.note}" if a.note else "")
                for a in e.acknowledgements
            )
            channels = sorted({f"{d.channel}:{d.target}" for d in e.deliveries if d.outcome == "sent"})
            sent = sum(1 for d in e.deliveries if d.outcome == "sent")
            section.excursions.append(
                [
                    e.kind.replace("_", " "),
                    e.sensor or e.bag or e.subject,
                    format_time(e.started_at),
                    format_time(e.resolved_at) if e.resolved_at else "still open",
                    _num(_minutes(end_ms - to_millis(e.started_at))),
                    _num(m.peak if m is not None and m.peak is not None else e.value),
                    _num(_minutes(m.ms_beyond)) if m is not None else "",
                    _num(_round(m.degree_minutes, 1)) if m is not None else "",
                    _num(_round(m.mkt, 2)) if m is not None else "",
                    acks or "not acknowledged",
                    f"{sent} sent" + (f" ({', '.join(channels)})" if channels else ""),
                ]
            )
        for b in unit_bags:
            within, outcome = b.verdict(now)
            ended = b.completed_at or b.discarded_at
            section.bags.append(
                [
                    b.bag,
                    b.lot or "",
                    format_time(b.diluted_at),
                    b.diluted_by or "",
                    format_time(b.deadline) if b.deadline else "unknown",
                    format_time(b.started_at) if b.started_at else "",
                    format_time(ended) if ended else "",
                    within,
                    outcome,
                ]
            )
        for r in rows:
            judged = not r.ms_unjudged
            section.daily.append(
                [
                    _day_text(r.day),
                    r.info.sensor,
                    str(r.readings),
                    _num(r.min),
                    _num(r.max),
                    _num(_round(r.mean, 2)),
                    _num(_minutes(r.ms_in)) if judged else "",
                    _num(_minutes(r.ms_out)) if judged else "",
                    _num(_minutes(r.ms_unknown)),
                    str(r.gaps),
                    r.status,
                ]
            )
        data.units.append(section)


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if abs(value) < 1e6 else f"{value:,.0f}"


# -- manifest, signature, verification ---------------------------------------------------------------


def sha256_file(path: Path) -> str:
    """The SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers: the manifest without ``signature``, as canonical JSON."""
    body = {key: value for key, value in manifest.items() if key != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(key: bytes) -> str:
    """A short public name of a signing key (the start of its SHA-256), to tell keys apart."""
    return hashlib.sha256(key).hexdigest()[:16]


def signature(manifest: Mapping[str, Any], key: bytes) -> dict[str, str]:
    """The ``signature`` object: HMAC-SHA256 over ``canonical_manifest``."""
    mac = hmac.new(key, canonical_manifest(manifest), hashlib.sha256).hexdigest()
    return {"algorithm": "HMAC-SHA256", "key_id": key_id(key), "value": mac}


@dataclass(slots=True)
class Verification:
    """What ``verify_export`` found: problems make it fail; notes are said either way."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_export(directory: Path, key: bytes | None) -> Verification:
    """Recompute every file's SHA-256 against ``manifest.json``, name altered, missing and extra files,
    check the signature when ``key`` is given, and walk ``audit.csv``'s hash chain."""
    result = Verification()
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        result.problems.append(f"{MANIFEST}: missing (is {directory} an export?)")
        return result
    except (OSError, ValueError) as exc:
        result.problems.append(f"{MANIFEST}: unreadable ({exc})")
        return result
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict):
        result.problems.append(f"{MANIFEST}: has no file list")
        return result
    for name, entry in sorted(listed.items()):
        if not isinstance(name, str) or "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST):
            result.problems.append(f"{MANIFEST}: lists an invalid file name {name!r}")
            continue
        path = directory / name
        if not path.is_file():
            result.problems.append(f"{name}: MISSING")
            continue
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if sha256_file(path) != expected:
            result.problems.append(f"{name}: ALTERED (its SHA-256 differs from the manifest)")
        else:
            result.files += 1
    for path in sorted(directory.iterdir()):
        if path.name != MANIFEST and path.name not in listed:
            result.problems.append(f"{path.name}: EXTRA (not in the manifest)")
    sig = manifest.get("signature")
    if sig is None:
        if key:
            result.problems.append(f"{MANIFEST}: UNSIGNED, but a signing key is configured: expected a signature")
        else:
            result.notes.append("unsigned (no export.signing_key was configured when it was made)")
    elif not key:
        result.notes.append(
            f"signed (key id {sig.get('key_id', '?')}), but no export.signing_key is configured to check it"
        )
    elif not isinstance(sig, dict) or sig.get("algorithm") != "HMAC-SHA256":
        result.problems.append(f"{MANIFEST}: unknown signature format")
    elif not hmac.compare_digest(str(sig.get("value", "")), signature(manifest, key)["value"]):
        why = "another key signed it" if sig.get("key_id") != key_id(key) else "the manifest was edited"
        result.problems.append(f"{MANIFEST}: SIGNATURE DOES NOT MATCH ({why})")
    else:
        result.notes.append(f"signature valid (HMAC-SHA256, key id {sig.get('key_id')})")
    audit_csv = directory / "audit.csv"
    if audit_csv.is_file():
        problem = verify_chain(_audit_events(audit_csv))
        if problem is not None:
            result.problems.append(f"audit.csv: hash chain BROKEN at {problem}")
        else:
            result.notes.append("audit.csv: hash chain intact")
    return result


def _audit_events(path: Path) -> Iterator[AuditEvent]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from (event_from_row(row) for row in csv.DictReader(handle))


# -- command line -------------------------------------------------------------------------------








