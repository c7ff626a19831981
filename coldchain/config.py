"""Settings and inventory: one TOML file, overridable by ``COLDCHAIN_*`` environment variables.

Every model forbids unknown keys so a typo names itself. Secrets are ``SecretStr`` and can come
from the TOML file, the environment (``COLDCHAIN_MQTT__PASSWORD``) or a file named by the
sibling ``*_file`` key (``COLDCHAIN_MQTT__PASSWORD_FILE=/run/secrets/mqtt``).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from coldchain.core import inventory as core
from coldchain.core.alert import AlertKind, Severity
from coldchain.core.durations import format_duration, parse_duration
from coldchain.core.inventory import Inventory
from coldchain.core.policy import WEEKDAYS, Weekday

Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
"""A configuration duration: ``"90s"``, ``"15m"``, ``"8h"``, ``"1h30m"`` (or seconds)."""


class ConfigModel(BaseModel):
    """Base of every configuration table: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret_file(path: Path | None, current: SecretStr) -> SecretStr:
    """The secret from ``path`` (trailing newline stripped) when given, else ``current``."""
    if path is None:
        return current
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from exc


class MqttConfig(ConfigModel):
    """The broker coldchain subscribes to and publishes alerts on."""

    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="mqtt://host:port, mqtts:// for TLS, or embedded://host:port to run a broker in-process "
        "(MQTT 3.1.1).",
    )
    username: str = Field(default="", description="Broker user; empty for anonymous.")
    password: SecretStr = Field(default=SecretStr(""), description="Broker password.")
    password_file: Path | None = Field(default=None, description="File holding the broker password.")
    client_id: str = Field(
        default="coldchain", min_length=1, description="Fixed client id: it names the persistent session."
    )
    topic_prefix: str = Field(default="coldchain", min_length=1, description="First topic level(s).")
    shared_group: str = Field(
        default="",
        pattern=r"^[^/+#]*$",
        description="Subscribe through $share/<group>/ so several ingest replicas split the load.",
    )
    keepalive: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive, seconds.")
    session_expiry: Duration = Field(
        default=timedelta(days=7), description="How long the broker keeps our session while we are away."
    )
    receive_maximum: int = Field(
        default=20000,
        ge=1,
        le=65535,
        description="Most unacknowledged QoS-1 messages the broker may have in flight to us.",
    )
    tls_ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://; system CAs if unset.")
    tls_insecure: bool = Field(default=False, description="Skip TLS hostname checks (testing only).")
    reconnect_min: Duration = Field(default=timedelta(seconds=1), description="First reconnect delay.")
    reconnect_max: Duration = Field(default=timedelta(seconds=30), description="Longest reconnect delay.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts", "embedded") or not parts.hostname:
            raise ValueError("must look like mqtt://host:1883, mqtts://host:8883 or embedded://127.0.0.1:1883")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if any(ch in value for ch in "+#") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must not contain '+' or '#' nor start or end with '/'")
        return value

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "password", read_secret_file(self.password_file, self.password))
        if self.embedded and self.shared_group:
            raise ValueError("shared_group needs an MQTT 5 broker; the embedded broker speaks MQTT 3.1.1 only")
        return self

    @property
    def embedded(self) -> bool:
        """True when coldchain runs the broker itself (``embedded://``): clients speak MQTT 3.1.1 to it."""
        return urlsplit(self.url).scheme == "embedded"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


class InfluxConfig(ConfigModel):
    """InfluxDB reached through the v1 HTTP API (/write, /query), served by 1.x, 2.x and 3.x."""

    url: str = Field(default="http://127.0.0.1:8086", description="Base URL of InfluxDB.")
    database: str = Field(default="coldchain", min_length=1, description="Database (bucket mapping on 2.x/3.x).")
    retention_policy: str = Field(default="", description='Retention policy; "" is the database default.')
    auth: Literal["none", "basic", "token"] = Field(default="none", description="token for InfluxDB 2.x/3.x.")
    username: str = Field(default="", description="User for basic auth.")
    password: SecretStr = Field(default=SecretStr(""), description="Password for basic auth.")
    password_file: Path | None = Field(default=None, description="File holding the password.")
    token: SecretStr = Field(default=SecretStr(""), description="API token for auth = token.")
    token_file: Path | None = Field(default=None, description="File holding the token.")
    create_database: bool = Field(default=True, description="CREATE DATABASE on start (1.x only).")
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Most points in one write.")
    linger: Duration = Field(
        default=timedelta(milliseconds=200), description="Longest a reading waits for its batch to fill."
    )
    timeout: Duration = Field(default=timedelta(seconds=10), description="HTTP timeout of one request.")
    gzip: bool = Field(default=True, description="Compress write bodies.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must look like http://host:8086")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _load_secrets(self) -> Self:
        object.__setattr__(self, "password", read_secret_file(self.password_file, self.password))
        object.__setattr__(self, "token", read_secret_file(self.token_file, self.token))
        if self.auth == "token" and not self.token.get_secret_value():
            raise ValueError("auth = 'token' needs influx.token (or influx.token_file)")
        if self.auth == "basic" and not self.username:
            raise ValueError("auth = 'basic' needs influx.username")
        return self


class StoreConfig(ConfigModel):
    """Where records are stored: InfluxDB (the ``[influx]`` table) or one SQLite file."""

    url: str = Field(
        default="influx",
        description='"influx" to use [influx]; "sqlite:///path/coldchain.db" for one SQLite file (small sites).',
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value != "influx" and not (value.startswith("sqlite:///") and len(value) > len("sqlite:///")):
            raise ValueError('must be "influx" or look like sqlite:///var/coldchain.db')
        return value

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (relative to the working directory unless absolute), or None for InfluxDB.

        ``sqlite:///var/x.db`` is ``var/x.db``; ``sqlite:////srv/x.db`` is ``/srv/x.db``, as in SQLAlchemy.
        """
        if not self.url.startswith("sqlite:///"):
            return None
        return Path(self.url.removeprefix("sqlite:///"))


class SpoolConfig(ConfigModel):
    """The on-disk spool that holds readings while InfluxDB is unreachable."""

    path: Path = Field(default=Path("var/coldchain-spool.sqlite"), description="SQLite file of the spool.")
    max_bytes: int = Field(
        default=1 << 30,
        ge=1 << 16,
        description="Size cap; when reached ingest stops acknowledging so the broker holds messages.",
    )


class RulesConfig(ConfigModel):
    """The rules worker: its own MQTT session and its durable state."""

    client_id: str = Field(
        default="coldchain-rules", min_length=1, description="Client id of the rules worker's persistent session."
    )
    state_path: Path = Field(
        default=Path("var/coldchain-rules.sqlite"),
        description="SQLite file holding the engine's snapshot (open alerts, pending excursions, bag timers).",
    )
    spool_path: Path = Field(
        default=Path("var/coldchain-rules-spool.sqlite"),
        description="Spool for alert records when `coldchain rules` runs in a process without ingest.",
    )
    audit_path: Path | None = Field(
        default=None,
        description="SQLite file of the local audit log (the hash chain's head); default: coldchain-audit.sqlite "
        "beside state_path.",
    )
    tick: Duration = Field(default=timedelta(seconds=1), description="How often the clock rules run.")
    checkpoint_every: Duration = Field(
        default=timedelta(seconds=1), description="Longest time between snapshots (messages are acked after one)."
    )

    @property
    def audit_log_path(self) -> Path:
        """Where the audit log lives: ``audit_path``, or beside the snapshot."""
        return self.audit_path if self.audit_path is not None else self.state_path.with_name("coldchain-audit.sqlite")

    @field_validator("tick")
    @classmethod
    def _at_most_a_second(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=10) <= value <= timedelta(seconds=1):
            raise ValueError("must be between 10ms and 1s (the clock rules run at least once a second)")
        return value

    @field_validator("checkpoint_every")
    @classmethod
    def _sane_checkpoint(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=10) <= value <= timedelta(minutes=1):
            raise ValueError("must be between 10ms and 1m")
        return value


class ExportConfig(ConfigModel):
    """Audit exports (``coldchain export``): how gaps are judged and how manifests are signed."""

    signing_key: SecretStr = Field(
        default=SecretStr(""), description="HMAC-SHA256 key signing manifest.json; empty: manifests are unsigned."
    )
    signing_key_file: Path | None = Field(default=None, description="File holding the signing key.")
    gap_after: Duration = Field(
        default=timedelta(minutes=10),
        description="Two consecutive readings of a sensor further apart than this leave the time between "
        "them unknown (a data gap), never in range.",
    )

    @field_validator("gap_after")
    @classmethod
    def _sane_gap(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("must be between 1s and 1d")
        return value

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "signing_key", read_secret_file(self.signing_key_file, self.signing_key))
        if 0 < len(self.signing_key.get_secret_value().encode()) < 16:
            raise ValueError("export.signing_key needs at least 16 bytes (or leave it empty for unsigned manifests)")
        return self


class NotifyTarget(ConfigModel):
    """A named notification channel: an apprise URL (mailto://, slack://, json://, ntfy://, …)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="How routes and tiers name it.")
    url: SecretStr = Field(default=SecretStr(""), description="Apprise URL; it may hold credentials.")
    url_file: Path | None = Field(default=None, description="File holding the apprise URL.")

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "url", read_secret_file(self.url_file, self.url))
        if not self.url.get_secret_value():
            raise ValueError(f"notify target {self.name!r} needs url (or url_file)")
        return self


class NotifyRoute(ConfigModel):
    """Alerts matching every given list go to ``targets``; an empty list matches anything."""

    severity: list[Severity] = Field(default_factory=list, description="Match these severities.")
    kind: list[AlertKind] = Field(default_factory=list, description="Match these alert kinds.")
    site: list[str] = Field(default_factory=list, description="Match these sites.")
    unit: list[str] = Field(default_factory=list, description="Match these units.")
    targets: list[str] = Field(min_length=1, description="Names of notify targets.")
    continue_matching: bool = Field(default=False, description="Also try the routes after this one.")


class NotifyConfig(ConfigModel):
    """Where alert notifications go."""

    targets: list[NotifyTarget] = Field(default_factory=list, description="Channels, by name.")
    routes: list[NotifyRoute] = Field(default_factory=list, description="First match wins (unless continue).")
    default_targets: list[str] = Field(
        default_factory=lambda: ["log"],
        min_length=1,
        description="The default route: alerts no route matches. 'log' (built in) writes to the service log.",
    )
    state_path: Path = Field(
        default=Path("var/coldchain-notify.sqlite"),
        description="The durable outbox: every notice planned, with its delivery state.",
    )
    retry_max: Duration = Field(default=timedelta(minutes=10), description="Longest backoff between retries.")
    give_up_after: Duration = Field(default=timedelta(hours=24), description="Stop retrying a delivery after this.")



class Shift(ConfigModel):
    """A weekly shift: on ``days`` from ``start`` to ``end`` local time (end before start: overnight)."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), description="Days the shift starts on.")
    start: str = Field(default="00:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local time.")
    end: str = Field(default="24:00", pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", description="HH:MM local time.")


class OncallTier(ConfigModel):
    """People paged for critical alerts, in escalation order."""

    name: str = Field(min_length=1, description="e.g. 'pharmacist on duty'.")
    targets: list[str] = Field(min_length=1, description="Names of notify targets.")
    timezone: str = Field(default="UTC", description="IANA time zone of the shifts, e.g. Europe/Berlin.")
    shifts: list[Shift] = Field(default_factory=lambda: [Shift()], description="When this tier is on call.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class OncallConfig(ConfigModel):
    """Escalation of critical alerts through the tiers until someone acknowledges."""

    tiers: list[OncallTier] = Field(default_factory=list, description="Tier 1 first.")
    escalate_after: Duration = Field(default=timedelta(minutes=15), description="Unacknowledged: next tier.")
    repeat_interval: Duration = Field(default=timedelta(minutes=30), description="Repeat until ack or resolve.")


class ApiUser(ConfigModel):
    """A person (or machine) allowed to call /api/ with a bearer token."""

    name: str = Field(min_length=1, description="Recorded on every action taken with this token.")
    token: SecretStr = Field(default=SecretStr(""), description="Bearer token.")
    token_file: Path | None = Field(default=None, description="File holding the token.")

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "token", read_secret_file(self.token_file, self.token))
        if len(self.token.get_secret_value()) < 8:
            raise ValueError(f"api user {self.name!r} needs a token of at least 8 characters")
        return self


class ApiConfig(ConfigModel):
    """The HTTP endpoint: health, readiness, metrics and the operator API."""

    listen: str = Field(default="127.0.0.1:8080", description="host:port to bind.")
    users: list[ApiUser] = Field(default_factory=list, description="Who may call /api/.")
    public_url: str = Field(
        default="", description="How people reach this API (for acknowledge links in notifications)."
    )
    link_secret: SecretStr = Field(default=SecretStr(""), description="Key signing acknowledge links.")
    link_secret_file: Path | None = Field(default=None, description="File holding the link key.")
    link_valid_for: Duration = Field(default=timedelta(hours=24), description="How long an ack link works.")

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "link_secret", read_secret_file(self.link_secret_file, self.link_secret))
        if 0 < len(self.link_secret.get_secret_value().encode()) < 16:
            raise ValueError("api.link_secret needs at least 16 bytes (or leave it empty for a generated key)")
        return self

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must look like 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class LogConfig(ConfigModel):
    """Logging: JSON lines for machines, plain text on a terminal."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Minimum level.")
    format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto = text on a terminal, JSON lines otherwise."
    )


class Profile(ConfigModel):
    """A product's storage rules. Every key defaults to the natalizumab (Tysabri) label."""

    min_celsius: float = Field(default=2.0, ge=-100, le=100, description="Lowest in-range temperature.")
    max_celsius: float = Field(default=8.0, ge=-100, le=100, description="Highest in-range temperature.")
    freeze_celsius: float = Field(default=0.0, ge=-100, le=100, description="At or below: freezing.")
    excursion_delay: Duration = Field(
        default=timedelta(minutes=15), description="How long out of range before an excursion alert opens."
    )
    clear_after: Duration = Field(default=timedelta(minutes=5), description="How long back in range to resolve.")
    agitation_g: float = Field(default=0.5, gt=0, description="Peak g at or above which the stock was shaken.")
    agitation_clear: Duration = Field(default=timedelta(minutes=5), description="Quiet time to resolve agitation.")
    diluted_use_within: Duration = Field(default=timedelta(hours=8), description="A diluted bag's shelf life.")
    bag_warning_before: Duration = Field(default=timedelta(hours=1), description="Warn this long before expiry.")

    @model_validator(mode="after")
    def _check_thresholds(self) -> Self:
        problems = verify_profile(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def verify_profile(profile: Profile) -> list[str]:
    """Cross-field problems of a profile, each as a sentence."""
    problems: list[str] = []
    if not profile.min_celsius < profile.max_celsius:
        problems.append(f"min_celsius ({profile.min_celsius}) must be below max_celsius ({profile.max_celsius})")
    if not profile.freeze_celsius <= profile.min_celsius:
        problems.append(
            f"freeze_celsius ({profile.freeze_celsius}) must not be above min_celsius ({profile.min_celsius})"
        )
    for name in ("excursion_delay", "clear_after", "agitation_clear", "diluted_use_within", "bag_warning_before"):
        if getattr(profile, name) <= timedelta(0):
            problems.append(f"{name} must be positive")
    if profile.bag_warning_before >= profile.diluted_use_within:
        problems.append("bag_warning_before must be shorter than diluted_use_within")
    return problems


BUILTIN_PROFILES: dict[str, Profile] = {"natalizumab": Profile()}


class ProfileOverrides(ConfigModel):
    """Per-unit changes to its profile; unset keys keep the profile's values."""

    min_celsius: float | None = None
    max_celsius: float | None = None
    freeze_celsius: float | None = None
    excursion_delay: Duration | None = None
    clear_after: Duration | None = None
    agitation_g: float | None = None
    agitation_clear: Duration | None = None
    diluted_use_within: Duration | None = None
    bag_warning_before: Duration | None = None


class Unit(ConfigModel):
    """A fridge."""

    id: str = Field(min_length=1, pattern=r"^[^/+#\s]+$", description="Stable identifier.")
    site: str = Field(min_length=1, description="Pharmacy or building the unit stands in.")
    name: str = Field(default="", description="What staff call it; defaults to the id.")
    profile: str = Field(default="natalizumab", description="Name of the product profile it stores.")
    offline_after: Duration = Field(
        default=timedelta(minutes=15), description="Silence after which a sensor of this unit is offline."
    )
    overrides: ProfileOverrides = Field(default_factory=ProfileOverrides, description="Per-unit profile changes.")

    @property
    def display_name(self) -> str:
        return self.name or self.id


class Sensor(ConfigModel):
    """A temperature probe or a shake sensor inside a unit."""

    id: str = Field(min_length=1, pattern=r"^[^/+#\s]+$", description="Its MQTT topic level; its identity.")
    unit: str = Field(min_length=1, description="Id of the unit it is in.")
    kind: Literal["temperature", "shake"] = Field(description="What it measures.")


def _merged_profiles(value: Any) -> Any:
    """Built-in profiles, each overridden key by key by the configured ones."""
    if not isinstance(value, dict):
        return value
    merged: dict[str, Any] = {name: profile.model_dump() for name, profile in BUILTIN_PROFILES.items()}
    for name, table in value.items():
        if isinstance(table, Profile):
            table = table.model_dump()
        if isinstance(table, dict) and name in merged:
            merged[name] = {**merged[name], **table}
        else:
            merged[name] = table
    return merged


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
    rules: RulesConfig = Field(default_factory=RulesConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    oncall: OncallConfig = Field(default_factory=OncallConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    profiles: dict[str, Profile] = Field(default_factory=lambda: dict(BUILTIN_PROFILES))
    units: list[Unit] = Field(default_factory=list)
    sensors: list[Sensor] = Field(default_factory=list)

    _profiles_merge = field_validator("profiles", mode="before")(lambda cls, v: _merged_profiles(v))

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

    def inventory(self) -> Inventory:
        """The frozen inventory the pure core judges and reports with (profiles with overrides applied)."""
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
        sensors = [core.Sensor(id=sensor.id, unit=sensor.unit, kind=sensor.kind) for sensor in self.sensors]
        return Inventory.of(units, sensors)


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
    return problems


def verify_notify(settings: Settings) -> list[str]:
    """Every route and tier names existing targets; target names are unique."""
    problems: list[str] = []
    names: set[str] = {"log"}
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


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, each naming its source and key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(problems))


ENV_PREFIX = "COLDCHAIN_"


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[tuple[str, ...], str]:
    """The ``COLDCHAIN_*`` variables set, by the key path they override (``("influx", "url")``) -> name."""
    environ = os.environ if environ is None else environ
    return {
        tuple(name[len(ENV_PREFIX) :].lower().split("__")): name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX)
    }


def _blame(file_source: str, loc: tuple[Any, ...], env: dict[tuple[str, ...], str]) -> str:
    """Who set the value at ``loc``: the environment variable whose key path holds it, else the file.

    An error about a whole table (a cross-field check) whose keys came partly from the environment
    names the file and those variables.
    """
    keys = tuple(str(part).lower() for part in loc)
    for path, name in sorted(env.items(), key=lambda item: len(item[0])):
        if keys[: len(path)] == path:
            return name
    inside = sorted(name for path, name in env.items() if path[: len(keys)] == keys)
    return ", ".join([file_source, *inside]) if keys and inside else file_source


def _entry_id(tables: Mapping[str, Any], table: str, index: int) -> str | None:
    """The ``id`` of ``tables[table][index]`` when there is one (to name inventory entries)."""
    entries = tables.get(table)
    if isinstance(entries, list) and 0 <= index < len(entries) and isinstance(entries[index], Mapping):
        entry_id = entries[index].get("id")
        return entry_id if isinstance(entry_id, str) else None
    return None


def _key_of(loc: tuple[Any, ...], tables: Mapping[str, Any]) -> str:
    """``sensors[0] (id 't-001').kind`` for a location inside the inventory, ``influx.url`` elsewhere."""
    key = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            key += f"[{part}]"
            if position == 1 and loc[0] in ("units", "sensors"):
                entry_id = _entry_id(tables, str(loc[0]), part)
                key += f" (id {entry_id!r})" if entry_id is not None else ""
        else:
            key += f".{part}"
    return key.lstrip(".")


def _error_lines(
    source: str,
    exc: ValidationError,
    env: dict[tuple[str, ...], str] | None = None,
    tables: Mapping[str, Any] | None = None,
) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = _key_of(loc, tables or {})
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        where = _blame(source, loc, env or {})
        for line in message.splitlines():
            lines.append(f"{where}: {key}: {line}" if key else f"{where}: {line}")
    return lines


def _field_annotation(path: tuple[str, ...]) -> Any:
    """The type of the setting at ``path`` (``("api", "users")`` -> ``list[ApiUser]``), or None if unknown."""
    model: Any = Settings
    annotation: Any = None
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        model = args[0] if get_origin(annotation) is not None and len(args) == 1 else annotation
    return annotation


def _is_complex(annotation: Any) -> bool:
    """Values of this type come from the environment as JSON (as pydantic-settings parses them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = get_origin(annotation)
    if origin in (list, dict, tuple, set, frozenset):
        return True
    return any(_is_complex(arg) for arg in get_args(annotation) if arg is not type(None)) if origin else False


def environment_json_errors(env: dict[tuple[str, ...], str], environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``COLDCHAIN_*`` variable that must hold JSON (a table or a list) and does not."""
    environ = os.environ if environ is None else environ
    lines: list[str] = []
    for path, name in sorted(env.items(), key=lambda item: item[1]):
        if not _is_complex(_field_annotation(path)):
            continue
        try:
            json.loads(environ[name])
        except json.JSONDecodeError as exc:
            lines.append(f"{name}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    return lines


def _environment_tables(env: dict[tuple[str, ...], str]) -> dict[str, Any]:
    """The inventory lists given whole in the environment (``COLDCHAIN_SENSORS='[...]'``), parsed."""
    tables: dict[str, Any] = {}
    for table in ("units", "sensors"):
        name = env.get((table,))
        if name is not None:
            try:
                tables[table] = json.loads(os.environ[name])
            except (json.JSONDecodeError, KeyError):
                continue
    return tables


def load_settings(path: Path | None) -> Settings:
    """Read ``path`` (TOML; None for defaults only) under ``COLDCHAIN_*`` overrides; raise ConfigError.

    Every problem is one line naming where the value came from (the file, or the environment
    variable that set it) and its key.
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(source, [f"{source}: cannot read: {exc.strerror}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(source, [f"{source}: cannot read: not UTF-8 text ({exc.reason})"]) from exc
        except tomllib.TOMLDecodeError as exc:
            message = re.sub(r"\(at line (\d+), column (\d+)\)", r"(line \1, column \2)", str(exc))
            raise ConfigError(source, [f"{source}: not valid TOML: {message}"]) from exc
    env = environment_overrides()
    try:
        return Settings(**data)
    except SettingsError as exc:
        lines = environment_json_errors(env) or [f"environment ({ENV_PREFIX}*): {exc}"]
        raise ConfigError(source, lines) from None
    except ValidationError as exc:
        tables = {**data, **_environment_tables(env)}
        lines = _error_lines(source, exc, env, tables)
        # field errors stop pydantic before the cross-checks: run those on the raw tables too, so one
        # run of check-config lists every problem (dangling references included)
        lines += [f"{source}: {line}" for line in verify_raw_references(data) if f"{source}: {line}" not in lines]
        raise ConfigError(source, lines) from exc


def config_warnings(settings: Settings) -> list[str]:
    """What a valid configuration probably did not mean: each a sentence naming the key to set."""
    warnings: list[str] = []
    if not settings.api.users:
        warnings.append(
            "api.users: no [[api.users]] configured: every /api/ call (acknowledge, bag events) is refused with 401"
        )
    named = set(settings.notify.default_targets)
    named.update(target for route in settings.notify.routes for target in route.targets)
    named.update(target for tier in settings.oncall.tiers for target in tier.targets)
    if named <= {"log"}:
        warnings.append(
            "notify: alerts go only to the service log (no [[notify.targets]] in notify.default_targets, "
            "routes or on-call tiers): nobody is told of an excursion"
        )
    if not settings.export.signing_key.get_secret_value():
        warnings.append(
            "export.signing_key: not set: audit exports are unsigned (export verify checks file hashes only)"
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


def verify_raw_references(data: dict[str, Any]) -> list[str]:
    """Dangling unit and profile references in unvalidated TOML tables (best effort, never raises)."""
    units = data.get("units") if isinstance(data.get("units"), list) else []
    sensors = data.get("sensors") if isinstance(data.get("sensors"), list) else []
    profiles = set(BUILTIN_PROFILES) | set(data.get("profiles") or {} if isinstance(data.get("profiles"), dict) else {})
    unit_ids = {unit.get("id") for unit in units if isinstance(unit, dict)}
    problems: list[str] = []
    for index, unit in enumerate(units):
        if isinstance(unit, dict) and isinstance(unit.get("profile"), str) and unit["profile"] not in profiles:
            known = ", ".join(sorted(profiles))
            problems.append(
                f"units[{index}] (id {unit.get('id')!r}).profile: unknown profile {unit['profile']!r} (known: {known})"
            )
    for index, sensor in enumerate(sensors):
        if isinstance(sensor, dict) and isinstance(sensor.get("unit"), str) and sensor["unit"] not in unit_ids:
            problems.append(f"sensors[{index}] (id {sensor.get('id')!r}).unit: unknown unit {sensor['unit']!r}")
    return problems
