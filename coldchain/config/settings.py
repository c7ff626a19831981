"""Settings and inventory: one TOML file, overridable by ``COLDCHAIN_*`` environment variables.

Every model forbids unknown keys so a typo names itself. Secrets are ``SecretStr`` and can come
from the TOML file, the environment (``COLDCHAIN_MQTT__PASSWORD``) or a file named by the
sibling ``*_file`` key (``COLDCHAIN_MQTT__PASSWORD_FILE=/run/secrets/mqtt``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Self

from pydantic import (
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from coldchain.config.api import ApiConfig, LogConfig
from coldchain.config.base import ENV_PREFIX
from coldchain.config.homeassistant import HomeAssistantConfig
from coldchain.config.inventory import (
    BUILTIN_PROFILES,
    WEEKDAYS,
    Profile,
    Scanner,
    Sensor,
    Site,
    Unit,
    merged_profiles,
    verify_sensor_formats,
)
from coldchain.config.inventory_table import InventoryConfig
from coldchain.config.mqtt import MqttConfig
from coldchain.config.notify import LOG_TARGET, NotifyConfig, OncallConfig
from coldchain.config.reports import ReportConfig
from coldchain.config.rollups import RollupsConfig
from coldchain.config.rules import ExportConfig, RulesConfig
from coldchain.config.state import StateConfig
from coldchain.config.store import InfluxConfig, SpoolConfig, StoreConfig
from coldchain.config.watchdog import WatchdogConfig
from coldchain.core import inventory as core
from coldchain.core.access import REVIEW_SIGNERS, SIGNING_ROLES, with_article
from coldchain.core.inventory import Inventory

_AS_GIVEN = ("sites", "units", "sensors")
"""Init values handed on as they are: their entries may be validated models (rows of the ``[inventory]`` CSV files)."""


class _InitValues(InitSettingsSource):
    """The init values (the TOML file) as pydantic-settings hands them on, but the inventory lists as given.

    With ``nested_model_default_partial_update`` pydantic-settings dumps every init value to plain data
    and validates it again: for 100,000 sensors read from CSV (already validated, as models) that costs
    seconds. Lists are never merged with the environment's values (a variable replaces a whole list), so
    keeping them as given changes nothing else.
    """

    def __call__(self) -> dict[str, Any]:
        given = {key: value for key, value in self.init_kwargs.items() if key in _AS_GIVEN}
        rest = {key: value for key, value in self.init_kwargs.items() if key not in _AS_GIVEN}
        dumped = TypeAdapter(dict[str, Any]).dump_python(rest) if self.nested_model_default_partial_update else rest
        return {**dumped, **given}


class Settings(BaseSettings):
    """The whole configuration: connections, profiles and the inventory."""

    model_config = SettingsConfigDict(
        env_prefix="COLDCHAIN_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    influx: InfluxConfig = Field(default_factory=InfluxConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    rollups: RollupsConfig = Field(default_factory=RollupsConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    oncall: OncallConfig = Field(default_factory=OncallConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    watchdog: WatchdogConfig = Field(default_factory=WatchdogConfig)
    profiles: dict[str, Profile] = Field(default_factory=lambda: dict(BUILTIN_PROFILES))
    inventory: InventoryConfig = Field(
        default_factory=InventoryConfig,
        description="CSV files adding sites, units and sensors.",
    )
    sites: list[Site] = Field(default_factory=list, description="Sites' time zones, workdays and review deadlines.")
    units: list[Unit] = Field(default_factory=list)
    sensors: list[Sensor] = Field(default_factory=list)
    scanners: list[Scanner] = Field(default_factory=list, description="Bag scanners, each with its own account.")
    reports: list[ReportConfig] = Field(default_factory=list, description="Exports made on a schedule.")

    _profiles_merge = field_validator("profiles", mode="before")(lambda cls, v: merged_profiles(v))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, which is handed in as init values.
        if isinstance(init_settings, InitSettingsSource):
            init_settings = _InitValues(settings_cls, init_settings.init_kwargs)
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _check_inventory(self) -> Self:
        problems = verify_inventory(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def unit_profile(self, unit: Unit) -> Profile:
        """The unit's profile with its overrides applied (validated when the settings were loaded)."""
        base = self.profiles[unit.profile]
        changes = unit.overrides.model_dump(exclude_none=True)
        return Profile.model_validate({**base.model_dump(), **changes}) if changes else base

    def frozen_inventory(self) -> Inventory:
        """The frozen inventory the pure core judges and reports with (profiles with overrides applied).

        Built once per settings (they are immutable): at fleet size it takes a noticeable fraction of a
        second, and exports, reviews and the rules worker all ask for it."""
        return self._frozen_inventory

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied; its frozen inventory is built again from its own fields."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_frozen_inventory", None)
        return copied

    @cached_property
    def _frozen_inventory(self) -> Inventory:
        units = [
            core.Unit(
                id=unit.id,
                site=unit.site,
                name=unit.name,
                profile_name=unit.profile,
                profile=core.Profile(**dict(self.unit_profile(unit))),
                offline_after=unit.offline_after,
            )
            for unit in self.units
        ]
        sensors = [
            core.Sensor(
                id=sensor.id,
                unit=sensor.unit,
                kind=sensor.kind,
                calibration_due=sensor.calibration_due,
                calibration_certificate=sensor.calibration_certificate,
            )
            for sensor in self.sensors
        ]
        sites = [
            core.Site(
                id=site.id,
                name=site.name,
                timezone=site.timezone,
                workdays=frozenset(WEEKDAYS.index(day) for day in site.workdays),
                review_due=site.review_due,
            )
            for site in self.sites
        ]
        return Inventory.of(units, sensors, sites)

    def rules_partition(self) -> Settings:
        """These settings as a rules worker of ``rules.sites`` sees them: only those sites' units, their
        sensors and the scanners of those sites (itself when ``rules.sites`` is empty: every site)."""
        if not self.rules.sites:
            return self
        sites = set(self.rules.sites)
        units = [unit for unit in self.units if unit.site in sites]
        unit_ids = {unit.id for unit in units}
        return self.model_copy(
            update={
                "units": units,
                "sensors": [sensor for sensor in self.sensors if sensor.unit in unit_ids],
                "scanners": [scanner for scanner in self.scanners if scanner.site in sites],
                "sites": [site for site in self.sites if site.id in sites],
            }
        )


def verify_inventory(settings: Settings) -> list[str]:
    """Dangling references, duplicate ids and bad per-unit profiles, each naming the entry at fault."""
    problems: list[str] = []
    unit_ids: set[str] = set()
    for index, unit in enumerate(settings.units):
        where = f"units[{index}] (id {unit.id!r})"
        if unit.id in unit_ids:
            problems.append(f"{where}: duplicate unit id")
        unit_ids.add(unit.id)
        if unit.profile not in settings.profiles:
            known = ", ".join(sorted(settings.profiles))
            problems.append(f"{where}.profile: unknown profile {unit.profile!r} (known: {known})")
            continue
        try:
            settings.unit_profile(unit)
        except ValidationError as exc:
            for error in exc.errors():
                problems.append(f"{where}.overrides: {error['msg'].removeprefix('Value error, ')}")
    problems += verify_notify(settings)
    sensor_ids: set[str] = set()
    for index, sensor in enumerate(settings.sensors):
        where = f"sensors[{index}] (id {sensor.id!r})"
        if sensor.id in sensor_ids:
            problems.append(f"{where}: duplicate sensor id")
        sensor_ids.add(sensor.id)
        if sensor.unit not in unit_ids:
            problems.append(f"{where}.unit: unknown unit {sensor.unit!r}")
    problems += verify_sensor_formats(settings.sensors, settings.mqtt.topic_prefix)
    problems += verify_scanners(settings)
    problems += verify_sites(settings)
    problems += verify_partition(settings)
    problems += verify_reports(settings)
    return problems


def verify_sites(settings: Settings) -> list[str]:
    """Duplicate site ids and sites no unit stands in."""
    problems: list[str] = []
    named = {unit.site for unit in settings.units}
    sites = settings.sites
    for index, where in named_entries("sites", [site.id for site in sites], problems):
        if sites[index].id not in named:
            problems.append(f"{where}: no unit is at this site (units name their site by id)")
    return problems


def verify_partition(settings: Settings) -> list[str]:
    """``rules.sites`` names sites that units stand in, each once."""
    named = {unit.site for unit in settings.units}
    problems: list[str] = []
    seen: set[str] = set()
    for index, site in enumerate(settings.rules.sites):
        if site in seen:
            problems.append(f"rules.sites[{index}]: site {site!r} listed twice")
        seen.add(site)
        if site not in named:
            problems.append(f"rules.sites[{index}]: no unit is at site {site!r} (units name their site by id)")
    return problems


def verify_reports(settings: Settings) -> list[str]:
    """Duplicate report names; filters and targets that name nothing configured."""
    problems: list[str] = []
    units = {unit.id: unit for unit in settings.units}
    sites = {unit.site for unit in settings.units}
    targets = {LOG_TARGET} | {target.name for target in settings.notify.targets}
    reports = settings.reports
    for index, where in named_entries("reports", [report.name for report in reports], problems):
        report = reports[index]
        if report.site is not None and report.site not in sites:
            problems.append(f"{where}.site: no unit is at site {report.site!r}")
        if report.unit is not None:
            unit = units.get(report.unit)
            if unit is None:
                problems.append(f"{where}.unit: unknown unit {report.unit!r}")
            elif report.site is not None and unit.site != report.site:
                problems.append(f"{where}.unit: unit {report.unit!r} is at site {unit.site!r}, not {report.site!r}")
        for name in report.targets:
            if name not in targets:
                known = ", ".join(sorted(targets))
                problems.append(f"{where}.targets: unknown notify target {name!r} (known: {known})")
    return problems


def named_entries(table: str, keys: Sequence[str], problems: list[str]) -> Iterator[tuple[int, str]]:
    """Each entry's index and the words that name it (``scanners[2] (id 'scan-01')``); a key seen
    before is a problem (``…: duplicate scanner id``)."""
    key_name = "name" if table == "reports" else "id"
    seen: set[str] = set()
    for index, key in enumerate(keys):
        where = f"{table}[{index}] ({key_name} {key!r})"
        if key in seen:
            problems.append(f"{where}: duplicate {table.removesuffix('s')} {key_name}")
        seen.add(key)
        yield index, where


def verify_scanners(settings: Settings) -> list[str]:
    """Duplicate scanner ids, scanner ids that are also sensor ids, and scanners at a site no unit is at."""
    problems: list[str] = []
    sites = {unit.site for unit in settings.units}
    sensors = {sensor.id for sensor in settings.sensors}
    scanners = settings.scanners
    for index, where in named_entries("scanners", [scanner.id for scanner in scanners], problems):
        scanner = scanners[index]
        if scanner.id in sensors:
            problems.append(f"{where}: also a sensor id (the broker's ACL ties both to the same username)")
        if scanner.site not in sites:
            problems.append(f"{where}.site: no unit is at site {scanner.site!r}")
    return problems


def verify_notify(settings: Settings) -> list[str]:
    """Every route and tier names existing targets; target names are unique."""
    problems: list[str] = []
    names: set[str] = {LOG_TARGET}
    for index, target in enumerate(settings.notify.targets):
        if target.name in names:
            problems.append(f"notify.targets[{index}] (name {target.name!r}): duplicate target name")
        names.add(target.name)

    def check(where: str, targets: list[str]) -> None:
        for name in targets:
            if name not in names:
                problems.append(f"{where}: unknown notify target {name!r} (known: {', '.join(sorted(names))})")

    check("notify.default_targets", settings.notify.default_targets)
    for index, route in enumerate(settings.notify.routes):
        check(f"notify.routes[{index}].targets", route.targets)
    for index, tier in enumerate(settings.oncall.tiers):
        check(f"oncall.tiers[{index}] ({tier.name!r}).targets", tier.targets)
    return problems


def config_warnings(settings: Settings) -> list[str]:
    """What a valid configuration probably did not mean: each a sentence naming the key to set."""
    warnings: list[str] = []
    if not settings.api.users:
        warnings.append(
            "api.users: no [[api.users]] configured: every /api/ call (acknowledge, bag events) is refused with 401"
        )
    reviews_due = sorted(site.id for site in settings.sites if site.review_due is not None)
    for user in settings.api.users:
        if user.role in SIGNING_ROLES and not user.can_sign:
            warnings.append(
                f"api.users {user.name!r}: {with_article(user.role)} without password_hash (or password_hash_file) can "
                "acknowledge but cannot sign a disposition (make one with `coldchain users hash-password`)"
            )
        elif user.role in SIGNING_ROLES and not user.full_name:
            warnings.append(
                f"api.users {user.name!r}: no full_name: what this {user.role} signs shows the user name "
                "instead of a printed name"
            )
        elif user.role in REVIEW_SIGNERS and not user.can_sign and reviews_due:
            warnings.append(
                f"api.users {user.name!r} (role {user.role}): no password_hash (or password_hash_file): cannot sign "
                f"the daily review (review_due at {', '.join(reviews_due)}; make one with `coldchain users "
                "hash-password`)"
            )
    if settings.rules.sites:
        others = sorted({unit.site for unit in settings.units} - set(settings.rules.sites))
        if others:
            warnings.append(
                f"rules.sites: this rules worker judges only {', '.join(sorted(settings.rules.sites))}; "
                f"{', '.join(others)} must be in exactly one other partition's rules.sites (no process can see "
                "another's configuration: check that every site is in one partition and none in two)"
            )
    named = set(settings.notify.default_targets)
    named.update(target for route in settings.notify.routes for target in route.targets)
    named.update(target for tier in settings.oncall.tiers for target in tier.targets)
    if named <= {LOG_TARGET}:
        warnings.append(
            "notify: alerts go only to the service log (no [[notify.targets]] in notify.default_targets, "
            "routes or on-call tiers): nobody is told of an excursion"
        )
    return warnings


def no_config_loaded(path: Path | None, settings: Settings) -> str | None:
    """Why a command that needs the inventory cannot work: nothing was loaded (no file, no inventory)."""
    if path is not None or settings.units:
        return None
    return (
        "no configuration loaded (the inventory is empty): name the file with --config FILE "
        f"(or set {ENV_PREFIX}* variables, e.g. {ENV_PREFIX}UNITS)"
    )
