"""The inventory as the pure core sees it: frozen units, sensors and the product profiles they store.

Built once from the settings at the edge (``Settings.frozen_inventory()``), so the rules and reports never
touch configuration types. A unit carries its profile with its overrides already applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from types import MappingProxyType
from typing import Literal

SensorKind = Literal["temperature", "shake"]


@dataclass(frozen=True, slots=True)
class Profile:
    """A product's storage rules (CONTRACT §1 ``[profiles.*]``)."""

    min_celsius: float
    max_celsius: float
    freeze_celsius: float
    excursion_delay: timedelta
    clear_after: timedelta
    agitation_g: float
    agitation_clear: timedelta
    diluted_use_within: timedelta
    bag_warning_before: timedelta


@dataclass(frozen=True, slots=True)
class Unit:
    """A fridge, with the profile it stores (overrides applied)."""

    id: str
    site: str
    name: str
    profile_name: str
    profile: Profile
    offline_after: timedelta

    @property
    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class Sensor:
    """A temperature probe or a shake sensor inside a unit, with its calibration certificate if tracked."""

    id: str
    unit: str
    kind: SensorKind
    calibration_due: date | None = None
    calibration_certificate: str = ""


MONDAY_TO_FRIDAY = frozenset(range(5))
"""The default workdays (``date.weekday()`` numbers)."""


@dataclass(frozen=True, slots=True)
class Site:
    """A pharmacy or building: its IANA time zone, workdays (0 = Monday) and local review deadline.

    A site that units name without a ``[[sites]]`` entry is ``Site.default(id)``: UTC, Monday to Friday,
    no review deadline.
    """

    id: str
    name: str = ""
    timezone: str = "UTC"
    workdays: frozenset[int] = MONDAY_TO_FRIDAY
    review_due: time | None = None

    @classmethod
    def default(cls, site_id: str) -> Site:
        return cls(id=site_id)

    @property
    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class Inventory:
    """Units, sensors and configured sites by id, in configuration order."""

    units: Mapping[str, Unit] = field(default_factory=lambda: MappingProxyType({}))
    sensors: Mapping[str, Sensor] = field(default_factory=lambda: MappingProxyType({}))
    sites: Mapping[str, Site] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, units: list[Unit], sensors: list[Sensor], sites: list[Site] | None = None) -> Inventory:
        return cls(
            MappingProxyType({u.id: u for u in units}),
            MappingProxyType({s.id: s for s in sensors}),
            MappingProxyType({s.id: s for s in sites or ()}),
        )

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id)

    def site(self, site_id: str) -> Site:
        """The configured site, or the defaults for a site only units name."""
        return self.sites.get(site_id) or Site.default(site_id)

    def site_of(self, unit: Unit) -> Site:
        return self.site(unit.site)
