"""Alert episodes as an inspector reads them: who responded, and how far and how long it went; pure.

``fold_alerts`` turns the stored alert transitions (measurement ``alert``, one point per state
change, oldest first) into episodes by id: the start is ``started_at``, the end the resolved
point's ``resolved_at``, every distinct acknowledgement is kept (who, when, note, disposition, and
the electronic signature of a disposition: from the point's ``history`` when it has one);
``attach_notifications`` adds the delivery attempts (measurement ``notification``) by ``alert_id``.

``measure`` computes, from the readings of the alert's sensor, what the episode did beyond its
limit: the peak, the minutes beyond the limit and the degree-minutes beyond it (the excess over
the limit times the time it lasted), with the same sample-and-hold rule as ``daily.py`` (each
reading stands until the next one; a stretch longer than the gap threshold is unknown and counts
for nothing), and the MKT (``mkt.py``) of the 24 hours ending when the excursion ended, or of the
whole excursion when it lasted longer than that: what the pharmacist deciding about the stock at
its end could compute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from coldchain.core.inventory import Profile
from coldchain.core.mkt import MktAccumulator
from coldchain.core.times import parse_time

MKT_WINDOW_MS = 24 * 3_600_000

TEMPERATURE_KINDS = ("temperature_high", "temperature_low", "freezing")


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who acknowledged the alert, when, and what they said and did with the stock."""

    by: str
    at: datetime | None
    note: str | None
    disposition: str | None
    signed_by: str | None = None
    """The signer's user name (a disposition is an electronic signature)."""
    signer_name: str | None = None
    """The signer's printed full name."""
    signed_at: datetime | None = None
    meaning: str | None = None
    signature_id: str | None = None
    supersedes: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to notify someone of the alert."""

    at: datetime
    target: str
    channel: str
    purpose: str
    tier: int
    attempt: int
    outcome: str
    error: str | None


@dataclass(slots=True)
class Episode:
    """One alert episode, from its stored transitions."""

    id: str
    kind: str
    severity: str
    site: str
    unit: str
    subject: str
    sensor: str | None
    bag: str | None
    started_at: datetime
    resolved_at: datetime | None
    state: str
    """The last state stored."""
    value: float | None
    """The peak the rules engine recorded."""
    message: str
    acknowledgements: list[Acknowledgement] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)


def fold_alerts(rows: Iterable[Mapping[str, Any]]) -> dict[str, Episode]:
    """Episodes by id from alert rows (oldest first): later points update state, end and peak."""
    episodes: dict[str, Episode] = {}
    for row in rows:
        alert_id = row.get("id")
        if not alert_id:
            continue
        episode = episodes.get(alert_id)
        resolved = row.get("resolved_at")
        value = row.get("value")
        if episode is None:
            episode = episodes[alert_id] = Episode(
                id=alert_id,
                kind=str(row.get("kind", "")),
                severity=str(row.get("severity", "")),
                site=str(row.get("site", "")),
                unit=str(row.get("unit", "")),
                subject=str(row.get("subject", "")),
                sensor=row.get("sensor"),
                bag=row.get("bag"),
                started_at=parse_time(row["started_at"]) if row.get("started_at") else row["time"],
                resolved_at=None,
                state=str(row.get("state", "")),
                value=float(value) if value is not None else None,
                message=str(row.get("message", "")),
            )
        episode.state = str(row.get("state", episode.state))
        if resolved:
            episode.resolved_at = parse_time(resolved)
        if value is not None:
            episode.value = float(value)
        for ack in _acknowledgements(row):
            if not any((a.by, a.at) == (ack.by, ack.at) for a in episode.acknowledgements):
                episode.acknowledgements.append(ack)
    return episodes


def _acknowledgements(row: Mapping[str, Any]) -> list[Acknowledgement]:
    """The acknowledgements a stored alert point holds: its ``history`` (JSON), or the single one of older points."""
    history = row.get("history")
    if history:
        out = []
        for entry in json.loads(history):
            signature = entry.get("signature") or {}
            signed_at = signature.get("signed_at")
            out.append(
                Acknowledgement(
                    str(entry["by"]),
                    parse_time(entry["at"]),
                    entry.get("note"),
                    entry.get("disposition"),
                    signed_by=signature.get("signed_by"),
                    signer_name=signature.get("full_name"),
                    signed_at=parse_time(signed_at) if signed_at else None,
                    meaning=signature.get("meaning"),
                    signature_id=signature.get("id"),
                    supersedes=signature.get("supersedes"),
                )
            )
        return out
    by = row.get("acknowledged_by")
    if not by:
        return []
    at = row.get("acknowledged_at")
    return [Acknowledgement(str(by), parse_time(at) if at else None, row.get("note"), row.get("disposition"))]


def overlaps(episode: Episode, start: datetime, end: datetime) -> bool:
    """Whether the episode was active at some moment of [start, end)."""
    return episode.started_at < end and (episode.resolved_at is None or episode.resolved_at >= start)


def attach_notifications(episodes: Mapping[str, Episode], rows: Iterable[Mapping[str, Any]]) -> None:
    """Add each notification row (oldest first) to its episode by ``alert_id``; others are skipped."""
    for row in rows:
        episode = episodes.get(str(row.get("alert_id", "")))
        if episode is None:
            continue
        episode.deliveries.append(
            Delivery(
                at=row["time"],
                target=str(row.get("target", "")),
                channel=str(row.get("channel", "")),
                purpose=str(row.get("purpose", "")),
                tier=int(row.get("tier", 0)),
                attempt=int(row.get("attempt", 0)),
                outcome=str(row.get("outcome", "")),
                error=row.get("error"),
            )
        )


@dataclass(frozen=True, slots=True)
class Limit:
    """The limit an episode kind is beyond: ``value`` and which side of it is beyond."""

    value: float
    side: str
    """``above`` (>), ``below`` (<), ``at_or_below`` (<=) or ``at_or_above`` (>=)."""
    degrees: bool
    """Whether the excess is in degrees (degree-minutes make sense)."""

    def excess(self, reading: float) -> float | None:
        """How far ``reading`` is beyond the limit (0 exactly at an inclusive limit), or None if it is not."""
        if self.side == "above":
            return reading - self.value if reading > self.value else None
        if self.side == "below":
            return self.value - reading if reading < self.value else None
        if self.side == "at_or_below":
            return self.value - reading if reading <= self.value else None
        return reading - self.value if reading >= self.value else None

    def worse(self, a: float, b: float) -> float:
        """The reading further beyond the limit."""
        return max(a, b) if self.side in ("above", "at_or_above") else min(a, b)


def limit_for(kind: str, profile: Profile) -> Limit | None:
    """The limit of a sensor episode kind under ``profile``; None for kinds without one."""
    if kind == "temperature_high":
        return Limit(profile.max_celsius, "above", True)
    if kind == "temperature_low":
        return Limit(profile.min_celsius, "below", True)
    if kind == "freezing":
        return Limit(profile.freeze_celsius, "at_or_below", True)
    if kind == "agitation":
        return Limit(profile.agitation_g, "at_or_above", False)
    return None


@dataclass(frozen=True, slots=True)
class Measure:
    """What the readings say about an episode."""

    peak: float | None
    ms_beyond: int
    degree_minutes: float | None
    ms_unknown: int
    mkt: float | None
    mkt_readings: int
    mkt_start_ms: int | None
    mkt_end_ms: int | None


def mkt_window(start_ms: int, end_ms: int) -> tuple[int, int]:
    """The 24 h ending at the episode's end, or the episode itself when it is longer."""
    return (min(start_ms, end_ms - MKT_WINDOW_MS), end_ms) if end_ms - start_ms <= MKT_WINDOW_MS else (start_ms, end_ms)


def measure(
    readings: Iterable[tuple[int, float]], start_ms: int, end_ms: int, limit: Limit, gap_ms: int, with_mkt: bool
) -> Measure:
    """Measure the episode [start_ms, end_ms) from the sensor's readings (epoch ms, oldest first).

    ``readings`` should cover the MKT window (from ``end_ms - 24 h``) and run to ``end_ms + gap_ms``;
    readings outside [start, end) only close stretches. ``with_mkt``: readings are °C.
    """
    mkt_from, mkt_to = mkt_window(start_ms, end_ms)
    mkt = MktAccumulator()
    peak: float | None = None
    ms_beyond = 0
    degree_ms = 0.0
    ms_unknown = 0
    covered_from = start_ms  # time before this is already attributed (or outside the episode)
    last: tuple[int, float] | None = None

    def stretch(a: int, b: int, value: float | None, unknown: bool) -> None:
        nonlocal ms_beyond, degree_ms, ms_unknown, covered_from
        a, b = max(a, covered_from, start_ms), min(b, end_ms)
        if b <= a:
            return
        covered_from = b
        if unknown or value is None:
            ms_unknown += b - a
            return
        excess = limit.excess(value)
        if excess is not None:
            ms_beyond += b - a
            degree_ms += excess * (b - a)

    for t, value in readings:
        if with_mkt and mkt_from <= t < mkt_to:
            mkt.add(value)
        if last is not None:
            stretch(last[0], t, last[1], t - last[0] > gap_ms)
        elif t > start_ms:
            stretch(start_ms, t, None, True)  # nothing known before the first reading
        if start_ms <= t < end_ms:
            peak = value if peak is None else limit.worse(peak, value)
        last = (t, value)
        if t >= end_ms:
            break
    if last is None:
        stretch(start_ms, end_ms, None, True)
    elif last[0] < end_ms:
        stretch(last[0], end_ms, last[1], end_ms - last[0] > gap_ms)
    return Measure(
        peak=peak,
        ms_beyond=ms_beyond,
        degree_minutes=degree_ms / 60_000 if limit.degrees else None,
        ms_unknown=ms_unknown,
        mkt=mkt.celsius() if with_mkt else None,
        mkt_readings=mkt.count,
        mkt_start_ms=mkt_from if with_mkt else None,
        mkt_end_ms=mkt_to if with_mkt else None,
    )
