"""[api] and [log]: the HTTP API, its users and links; logging."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, read_secret_file


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
    client_timeout: Duration = Field(
        default=timedelta(seconds=30),
        ge=timedelta(seconds=1),
        le=timedelta(minutes=10),
        description="A client idle this long, or still sending its request after this long, is disconnected.",
    )
    max_connections: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Most HTTP connections served at once; more are answered 503 and closed.",
    )

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
