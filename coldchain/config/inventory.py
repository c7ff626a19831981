"""Profiles, units and sensors: the inventory as configured.

Validated here, then frozen for the pure core by ``Settings.frozen_inventory()``.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any, Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, TimeZone, known_zone


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


Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WEEKDAYS: tuple[Weekday, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""How ``workdays`` names the days of the week (Monday first, as ``date.weekday()`` counts)."""


def monday_to_friday() -> list[Weekday]:
    return list(WEEKDAYS[:5])


class Site(ConfigModel):
    """A pharmacy or building: its local time, its workdays and when the daily review is due (CONTRACT §1)."""

    id: str = Field(min_length=1, pattern=r"^[^/+#\s]+$", description="The id its units name as their site.")
    name: str = Field(default="", description="What staff call it; defaults to the id.")
    timezone: TimeZone = Field(
        default="UTC", description="IANA zone: days, reviews and schedules are local to the site."
    )
    workdays: list[Weekday] = Field(
        default_factory=monday_to_friday,
        description="The days on which the daily review is due.",
    )
    review_due: time | None = Field(
        default=None,
        description='Local time ("10:00") by which a workday\'s review must be signed; unset: no deadline, '
        "so no review_missed.",
    )

    @field_validator("review_due", mode="before")
    @classmethod
    def _hours_minutes(cls, value: Any) -> Any:
        if isinstance(value, str):
            hours, sep, minutes = value.partition(":")
            if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
                raise ValueError(f'{value!r} is not a local time like "10:00"')
            if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
                raise ValueError(f"{value!r} is not a time of day")
            return time(int(hours), int(minutes))
        return value

    @property
    def display_name(self) -> str:
        return self.name or self.id


class Unit(ConfigModel):
    """A fridge."""

    id: str = Field(min_length=1, pattern=r"^[^/+#\s]+$", description="Stable identifier.")
    site: str = Field(min_length=1, description="Pharmacy or building the unit stands in.")
    name: str = Field(default="", description="What staff call it; defaults to the id.")
    profile: str = Field(default="natalizumab", description="Name of the product profile it stores.")
    offline_after: Duration = Field(
        default=timedelta(minutes=15), description="Silence after which a sensor of this unit is offline."
    )
    overrides: ProfileOverrides = Field(
        default=ProfileOverrides(), description="Per-unit profile changes."
    )  # one shared default (frozen): a factory would build one per unit, 20,000 for a fleet

    @property
    def display_name(self) -> str:
        return self.name or self.id


SENSOR_FORMATS = ("coldchain", "zigbee2mqtt", "tasmota", "shelly", "esphome", "ttn", "json")
"""The payload formats a sensor may speak (CONTRACT §2a); decoders in ``coldchain.contract.formats``."""
SHAKE_FORMATS = ("coldchain", "zigbee2mqtt", "json")
"""The formats that can carry shake readings."""
AVAILABILITY_SUFFIX = "/availability"
"""Zigbee2MQTT publishes a device's availability on ``<topic>/availability``."""


class Sensor(ConfigModel):
    """A temperature probe or a shake sensor inside a unit, speaking the contract or its device's own format."""

    id: str = Field(min_length=1, pattern=r"^[^/+#\s]+$", description="Its MQTT topic level; its identity.")
    unit: str = Field(min_length=1, description="Id of the unit it is in.")
    kind: Literal["temperature", "shake"] = Field(description="What it measures.")
    format: str = Field(
        default="coldchain", description=f"Payload format: {' | '.join(SENSOR_FORMATS)} (default coldchain)."
    )
    topic: str = Field(
        default="",
        max_length=1024,
        description="The exact topic the device publishes on; required unless format = coldchain, forbidden then.",
    )
    field: str = Field(
        default="",
        max_length=200,
        description="Which value, where a payload carries several; empty = the format's default.",
    )
    ts: str = Field(
        default="", max_length=200, description="json only: dotted path of the timestamp; empty = arrival time."
    )
    timezone: str = Field(default="UTC", description="IANA zone for payload times written without an offset.")
    temperature_unit: Literal["celsius", "fahrenheit"] = Field(
        default="celsius", description="The unit of the value, where the payload does not say."
    )
    calibration_due: date | None = Field(
        default=None, description="When its calibration certificate runs out (ISO date); unset: not tracked."
    )
    calibration_certificate: str = Field(
        default="", max_length=200, description="The number of its current calibration certificate."
    )

    def claimed_topics(self) -> tuple[str, ...]:
        """The exact topics this sensor publishes on (none of its own for the contract's format)."""
        if self.format == "coldchain":
            return ()
        if self.format == "zigbee2mqtt":
            return (self.topic, self.topic + AVAILABILITY_SUFFIX)
        return (self.topic,)


def verify_sensor_formats(sensors: list[Sensor], topic_prefix: str) -> list[str]:
    """Formats, topics and mapping keys of the sensors, each problem naming the sensor."""
    problems: list[str] = []
    owners: dict[str, str] = {}
    for index, sensor in enumerate(sensors):
        where = f"sensors[{index}] (id {sensor.id!r})"
        if sensor.format not in SENSOR_FORMATS:
            problems.append(f"{where}.format: unknown format {sensor.format!r} (known: {', '.join(SENSOR_FORMATS)})")
            continue
        if sensor.format == "coldchain":
            if sensor.topic:
                problems.append(
                    f"{where}.topic: a coldchain-format sensor publishes on "
                    f"{topic_prefix}/sensors/{sensor.id}/{sensor.kind}; remove topic or set format"
                )
            continue
        if sensor.kind == "shake" and sensor.format not in SHAKE_FORMATS:
            problems.append(f"{where}.kind: format {sensor.format!r} carries no shake readings")
        if not sensor.topic:
            problems.append(f"{where}.topic: required for format {sensor.format!r}")
            continue
        if any(char in sensor.topic for char in "+#\x00") or sensor.topic.endswith("/"):
            problems.append(f"{where}.topic: {sensor.topic!r} must be an exact topic (no +, #, trailing /)")
        if sensor.topic == topic_prefix or sensor.topic.startswith(topic_prefix + "/"):
            problems.append(
                f"{where}.topic: {sensor.topic!r} is under mqtt.topic_prefix {topic_prefix!r}, coldchain's own"
            )
        if sensor.ts and sensor.format != "json":
            problems.append(f"{where}.ts: only a json-format sensor names its timestamp's path")
        try:
            known_zone(sensor.timezone)
        except ValueError as exc:
            problems.append(f"{where}.timezone: {exc}")
        for topic in sensor.claimed_topics():
            if topic in owners:
                problems.append(f"{where}.topic: {topic!r} is already the topic of sensor {owners[topic]!r}")
            owners.setdefault(topic, sensor.id)
    return problems


class Scanner(ConfigModel):
    """A bag scanner: publishes on ``<prefix>/scanners/<id>/bags/<bag>/events`` with its own broker account."""

    id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^/+#\s]+$",
        description="Its MQTT topic level; the broker's ACL ties it to the device's credentials.",
    )
    site: str = Field(min_length=1, description="The site it stands in: it records events of that site's units.")


def merged_profiles(value: Any) -> Any:
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
