"""report.pdf's words: the overview and one section per unit, built from the export's figures."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from coldchain.config import Settings, Unit
from coldchain.core.audit_chain import ChainBreak
from coldchain.core.bag_history import BagLife
from coldchain.core.daily import DailyRow
from coldchain.core.excursions import (
    TEMPERATURE_KINDS,
    Episode,
    Measure,
)
from coldchain.core.records import AuditEvent
from coldchain.core.times import format_time, to_millis
from coldchain.reporting.tables import minutes_of, rounded

OUT_OF_CALIBRATION = "OUT OF CALIBRATION"


def audit_text(chain: list[AuditEvent], problem: ChainBreak | None) -> str:
    if problem is not None:
        return f"BROKEN at {problem}. Events from there on are unproven."
    if not chain:
        return "no operator action recorded up to the end of the period."
    head = chain[-1]
    return (
        f"{len(chain)} events up to the end of the period, hash chain intact; its head (an anchor: a later "
        f"copy of the trail must contain it unchanged) is seq {head.seq} at {format_time(head.at)}, "
        f"hash {head.hash}; see audit.csv."
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
        zone = next((s.timezone for s in settings.sites if s.id == unit.site), "UTC")
        data.overview.append(
            [
                unit.display_name,
                unit.site,
                ", ".join(s.id for s in sensors) or "none",
                f"{readings:,}",
                _num(lowest),
                _num(highest),
                _num(minutes_of(out_ms)),
                _num(minutes_of(unknown_ms)),
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
                ("out of range", f"{_num(minutes_of(out_ms))} min"),
                ("unknown (no data)", f"{_num(minutes_of(unknown_ms))} min"),
                ("days", f"local to {unit.site}, {zone}"),
                *[(f"{s.id} calibration", _certificate(s.calibration_certificate, s.calibration_due)) for s in sensors],
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
                + (f" (signed by {a.signer_name} ({a.signed_by}); meaning: {a.meaning})" if a.signed_by else "")
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
                    _num(minutes_of(end_ms - to_millis(e.started_at))),
                    _num(m.peak if m is not None and m.peak is not None else e.value),
                    _num(minutes_of(m.ms_beyond)) if m is not None else "",
                    _num(rounded(m.degree_minutes, 1)) if m is not None else "",
                    _num(rounded(m.mkt, 2)) if m is not None else "",
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
        due = {s.id: s.calibration_due for s in sensors}
        for r in rows:
            judged = not r.ms_unjudged
            expired = (cal_due := due.get(r.info.sensor)) is not None and r.local.date > cal_due
            section.daily.append(
                [
                    r.local.date_text + (f"\n{r.local.note}" if r.local.note else ""),
                    r.info.sensor,
                    str(r.readings),
                    _num(r.min),
                    _num(r.max),
                    _num(rounded(r.mean, 2)),
                    _num(minutes_of(r.ms_in)) if judged else "",
                    _num(minutes_of(r.ms_out)) if judged else "",
                    _num(minutes_of(r.ms_unknown)),
                    str(r.gaps),
                    r.status + (f"\n{OUT_OF_CALIBRATION}" if expired else ""),
                ]
            )
        data.units.append(section)


def _certificate(number: str, due: date | None) -> str:
    """A sensor's certificate as the report's summary line says it."""
    if due is None:
        return f"certificate {number}, no due date configured" if number else "not tracked"
    return f"certificate {number or '(no number)'} covers up to the end of {due.isoformat()}"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if abs(value) < 1e6 else f"{value:,.0f}"
