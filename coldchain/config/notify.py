"""[notify] and [oncall]: channels, routes, on-call tiers and their shifts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, TimeZone, read_secret_file
from coldchain.core.alert import AlertKind, Severity
from coldchain.core.policy import WEEKDAYS, Weekday

LOG_TARGET = "log"
"""The built-in target: the notice goes to the service log (logger ``coldchain.notify``, WARNING) and counts as sent."""


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
        default_factory=lambda: [LOG_TARGET],
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
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of the shifts, e.g. Europe/Berlin.")
    shifts: list[Shift] = Field(default_factory=lambda: [Shift()], description="When this tier is on call.")


class OncallConfig(ConfigModel):
    """Escalation of critical alerts through the tiers until someone acknowledges."""

    tiers: list[OncallTier] = Field(default_factory=list, description="Tier 1 first.")
    escalate_after: Duration = Field(default=timedelta(minutes=15), description="Unacknowledged: next tier.")
    repeat_interval: Duration = Field(default=timedelta(minutes=30), description="Repeat until ack or resolve.")
