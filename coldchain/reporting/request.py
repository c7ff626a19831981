"""What an export is asked for: the period, the selection of sites and units, the formats."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from coldchain.config import Settings, Unit
from coldchain.core.daily import SensorInfo
from coldchain.core.inventory import Inventory, Profile
from coldchain.core.local_days import calendar
from coldchain.core.times import from_millis

FORMATS = ("csv", "json", "pdf")


DEFAULT_FORMATS = ("csv", "pdf")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ExportError(Exception):
    """The export cannot be made as asked; ``code`` is the exit status (2: the request is wrong)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_when(text: str, *, end: bool = False, timezone: str = "UTC") -> datetime:
    """``YYYY-MM-DD`` (midnight starting that day in ``timezone``; with ``end``, the midnight after, so the day is
    included) or RFC 3339.

    Raises ValueError with a sentence saying what is wrong.
    """
    text = text.strip()
    if _DATE.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid date ({exc})") from None
        return from_millis(calendar(timezone).start_of(day + timedelta(days=1) if end else day))
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
    empty_ok: bool = False
    """A period without readings is still exported, saying so (scheduled reports); else it is an error."""


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
    inventory = settings.frozen_inventory()
    infos = [
        sensor_info(inventory, sensor.id, u.site, u.id, sensor.kind)
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


def selection_timezone(settings: Settings, site: str | None, unit: str | None) -> str:
    """The time zone a selection's dates are read in: its sites' zone when they share one, else UTC."""
    inventory = settings.frozen_inventory()
    zones = {
        inventory.site(u.site).timezone
        for u in settings.units
        if (site is None or u.site == site) and (unit is None or u.id == unit)
    }
    return zones.pop() if len(zones) == 1 else "UTC"


def unit_profile(inventory: Inventory, unit_id: str) -> Profile | None:
    """The profile (overrides applied) of a configured unit; None for a unit no longer configured."""
    unit = inventory.unit(unit_id)
    return unit.profile if unit is not None else None


def sensor_info(inventory: Inventory, sensor: str, site: str, unit: str, kind: str) -> SensorInfo:
    """A sensor with the limits of its unit's profile (none when the unit is not configured) and its site's zone."""
    zone = inventory.site(site).timezone
    profile = unit_profile(inventory, unit)
    if profile is None:
        return SensorInfo(sensor, site, unit, kind, timezone=zone)
    if kind == "shake":
        return SensorInfo(sensor, site, unit, kind, None, profile.agitation_g, zone)
    return SensorInfo(sensor, site, unit, kind, profile.min_celsius, profile.max_celsius, zone)


def typed_request(
    settings: Settings,
    from_text: str,
    to_text: str,
    out: Path,
    site: str | None = None,
    unit: str | None = None,
    format_text: str | None = None,
    *,
    option: Callable[[str], str] = str,
) -> ExportRequest:
    """The export a person asked for in text (the CLI's options, the API's query): dates are the selection's
    local midnights. ValueError naming the option at fault as ``option`` spells it (``--from``, ``from``)."""
    zone = selection_timezone(settings, site, unit)
    try:
        start = parse_when(from_text, timezone=zone)
    except ValueError as exc:
        raise ValueError(f"{option('from')}: {exc}") from None
    try:
        end = parse_when(to_text, end=True, timezone=zone)
    except ValueError as exc:
        raise ValueError(f"{option('to')}: {exc}") from None
    if end <= start:
        raise ValueError(f"{option('to')} {to_text} is before {option('from')} {from_text}")
    try:
        formats = parse_formats(format_text) if format_text else DEFAULT_FORMATS
    except ValueError as exc:
        raise ValueError(f"{option('format')}: {exc}") from None
    return ExportRequest(start, end, out, site, unit, formats, from_text, to_text)
