"""The daily review of a unit (CDC storage toolkit: min/max checked and recorded each workday); pure.

``figures`` computes what the reviewer signs for, from the stored readings of the unit's temperature
sensors and the alert episodes of the window: the minimum, maximum and current temperature of each
sensor, the time out of range (each reading stands until the next one; a stretch longer than the
gap threshold is unknown and counts as neither) and the excursions opened in the window with their
dispositions. Nobody types a figure: the review record holds the figures it covered.

``ReviewRequest`` is what the HTTP edge passes to the rules worker (like ``signoff.Acknowledgement``);
``review_record`` turns it into the stored ``Review`` (measurement ``review``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from coldchain.core.excursions import Episode
from coldchain.core.records import Review
from coldchain.core.signature import Signer
from coldchain.core.times import format_time, from_millis, to_millis

REVIEW_MEANING = "daily review"
"""The meaning of the electronic signature on a review (CONTRACT §5)."""
DEFAULT_WINDOW = timedelta(hours=24)
"""What a unit's first review covers."""


@dataclass(frozen=True, slots=True)
class SensorFigures:
    """One temperature sensor over the review window."""

    sensor: str
    readings: int
    min_celsius: float | None
    max_celsius: float | None
    current_celsius: float | None
    current_at: datetime | None
    minutes_out_of_range: float
    minutes_unknown: float

    def to_payload(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor,
            "readings": self.readings,
            "min_celsius": self.min_celsius,
            "max_celsius": self.max_celsius,
            "current_celsius": self.current_celsius,
            "current_at": format_time(self.current_at) if self.current_at is not None else None,
            "minutes_out_of_range": self.minutes_out_of_range,
            "minutes_unknown": self.minutes_unknown,
        }


@dataclass(frozen=True, slots=True)
class ExcursionSeen:
    """An alert episode of the unit opened in the window, with what was decided about it."""

    id: str
    kind: str
    subject: str
    started_at: datetime
    resolved_at: datetime | None
    disposition: str | None
    acknowledged_by: str | None

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "started_at": format_time(self.started_at),
            "resolved_at": format_time(self.resolved_at) if self.resolved_at is not None else None,
            "disposition": self.disposition,
            "acknowledged_by": self.acknowledged_by,
        }


@dataclass(frozen=True, slots=True)
class ReviewFigures:
    """What a review of one unit covers: the window, the site's local date, sensors and excursions."""

    unit: str
    site: str
    local_date: str
    window_from: datetime
    window_to: datetime
    last_review_at: datetime | None
    sensors: tuple[SensorFigures, ...]
    excursions: tuple[ExcursionSeen, ...]

    def to_payload(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "site": self.site,
            "local_date": self.local_date,
            "from": format_time(self.window_from),
            "to": format_time(self.window_to),
            "last_review_at": format_time(self.last_review_at) if self.last_review_at is not None else None,
            "sensors": [s.to_payload() for s in self.sensors],
            "excursions": [e.to_payload() for e in self.excursions],
        }


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """A signed review as the edge verified it: the figures shown, the note, who signed."""

    figures: ReviewFigures
    by: str
    signer: Signer
    note: str | None = None


def local_date(at: datetime, timezone: str) -> str:
    """The ISO date of ``at`` in ``timezone``."""
    return at.astimezone(ZoneInfo(timezone)).date().isoformat()


def window_start(last_review_at: datetime | None, now: datetime) -> datetime:
    """Since the last review, or the last 24 hours when there was none (or it lies in the future)."""
    if last_review_at is None or last_review_at >= now:
        return now - DEFAULT_WINDOW
    return last_review_at


def sensor_figures(
    sensor: str,
    readings: Iterable[tuple[int, float]],
    start_ms: int,
    end_ms: int,
    low: float,
    high: float,
    gap_ms: int,
    before: tuple[int, float] | None = None,
) -> SensorFigures:
    """Min/max/current over [start, end) from readings oldest first (``before``: the last one before the window,
    which stands for the window's first stretch when it is within ``gap_ms``)."""
    count, lowest, highest = 0, None, None
    current: tuple[int, float] | None = None
    out_ms = unknown_ms = 0
    held = before if before is not None and start_ms - before[0] <= gap_ms else None
    cursor = start_ms

    def stretch(until: int) -> None:
        nonlocal out_ms, unknown_ms
        length = until - cursor
        if length <= 0:
            return
        if held is None or until - held[0] > gap_ms:
            unknown_ms += length  # as in daily.py: a stretch longer than the gap threshold is unknown
        elif not low <= held[1] <= high:
            out_ms += length

    for ms, value in readings:
        if not start_ms <= ms < end_ms:
            continue
        stretch(ms)
        cursor, held = ms, (ms, value)
        count += 1
        lowest = value if lowest is None else min(lowest, value)
        highest = value if highest is None else max(highest, value)
        current = (ms, value)
    stretch(end_ms)
    return SensorFigures(
        sensor=sensor,
        readings=count,
        min_celsius=lowest,
        max_celsius=highest,
        current_celsius=current[1] if current is not None else None,
        current_at=from_millis(current[0]) if current is not None else None,
        minutes_out_of_range=round(out_ms / 60_000, 2),
        minutes_unknown=round(unknown_ms / 60_000, 2),
    )


def excursions_opened(episodes: Iterable[Episode], start: datetime, end: datetime) -> tuple[ExcursionSeen, ...]:
    """The alert episodes that started in [start, end), oldest first, with their latest disposition and
    who first acknowledged them."""
    seen = []
    for e in episodes:
        if not start <= e.started_at < end:
            continue
        dispositions = [a.disposition for a in e.acknowledgements if a.disposition]
        seen.append(
            ExcursionSeen(
                id=e.id,
                kind=e.kind,
                subject=e.subject,
                started_at=e.started_at,
                resolved_at=e.resolved_at,
                disposition=dispositions[-1] if dispositions else None,
                acknowledged_by=e.acknowledgements[0].by if e.acknowledgements else None,
            )
        )
    return tuple(sorted(seen, key=lambda x: (x.started_at, x.id)))


def review_record(request: ReviewRequest, at: datetime, number: int) -> Review:
    """The stored review: the figures it covered as canonical JSON, signed with meaning ``daily review``."""
    f = request.figures
    return Review(
        unit=f.unit,
        site=f.site,
        at=at,
        by=request.by,
        full_name=request.signer.full_name,
        meaning=REVIEW_MEANING,
        note=request.note or "",
        local_date=f.local_date,
        window_from=f.window_from,
        window_to=f.window_to,
        figures=json.dumps(f.to_payload(), sort_keys=True, ensure_ascii=False, separators=(",", ":")),
        signature_id=f"review-{f.unit}-{to_millis(at)}-s{number}",
    )


def review_document(review: Review) -> dict[str, Any]:
    """A recorded review as the API answers it and the audit trail records it: the window, the figures
    signed for, and the signature (§11.50: name, full name, time, meaning)."""
    return {
        "unit": review.unit,
        "site": review.site,
        "local_date": review.local_date,
        "note": review.note or None,
        "from": format_time(review.window_from),
        "to": format_time(review.window_to),
        "figures": json.loads(review.figures),
        "signature": {
            "id": review.signature_id,
            "signed_by": review.by,
            "full_name": review.full_name,
            "signed_at": format_time(review.at),
            "meaning": review.meaning,
            "supersedes": None,
        },
    }
