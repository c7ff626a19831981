"""[watchdog]: how coldchain is watched from outside (a heartbeat URL; systemd's watchdog)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator

from coldchain.config.base import ConfigModel, Duration, read_secret_file, require_url


class WatchdogConfig(ConfigModel):
    """A dead-man's switch: an outside service (healthchecks.io, Uptime Kuma push, Better Stack…) that
    pages someone when coldchain stops requesting ``heartbeat_url``."""

    heartbeat_url: SecretStr = Field(
        default=SecretStr(""),
        description="http(s) URL requested every heartbeat_every while every role is healthy; empty = none. "
        "It usually carries a token: kept secret, never logged.",
    )
    heartbeat_url_file: Path | None = Field(default=None, description="File holding the heartbeat URL.")
    heartbeat_every: Duration = Field(
        default=timedelta(minutes=1),
        ge=timedelta(milliseconds=100),
        le=timedelta(hours=1),
        description="Time between heartbeats (and at most between systemd WATCHDOG=1 notifications).",
    )
    heartbeat_timeout: Duration = Field(
        default=timedelta(seconds=10),
        ge=timedelta(milliseconds=100),
        le=timedelta(minutes=1),
        description="How long one heartbeat request may take.",
    )

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "heartbeat_url", read_secret_file(self.heartbeat_url_file, self.heartbeat_url))
        url = self.heartbeat_url.get_secret_value()
        if url:
            require_url(url, ("http", "https"), "watchdog.heartbeat_url must be an http:// or https:// URL")
        return self
