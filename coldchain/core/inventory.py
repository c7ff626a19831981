"""The inventory as the pure core sees it: frozen units, sensors and the product profiles they store.

Built once from the settings at the edge (``Settings.inventory()``), so the rules and reports never
touch configuration types. A unit carries its profile with its overrides already applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
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
    """A temperature probe or a shake sensor inside a unit."""

    id: str
    unit: str
    kind: SensorKind


@dataclass(frozen=True, slots=True)
class Inventory:
    """Units and sensors by id, in configuration order."""

    units: Mapping[str, Unit] = field(default_factory=lambda: MappingProxyType({}))
    sensors: Mapping[str, Sensor] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, units: list[Unit], sensors: list[Sensor]) -> Inventory:
        return cls(MappingProxyType({u.id: u for u in units}), MappingProxyType({s.id: s for s in sensors}))

    def unit(self, unit_id: str) -> Unit | None:
        return self.units.get(unit_id)
