"""[influx], [store] and [spool]: where records are kept, and the spool that holds them while the store is away."""

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

from coldchain.config.base import ConfigModel, Duration, read_secret_file, require_url


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
    outage_alert_after: Duration = Field(
        default=timedelta(minutes=10),
        ge=timedelta(seconds=1),
        le=timedelta(days=7),
        description="How long the store may fail (records spool meanwhile) before store_unreachable opens.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return require_url(value, ("http", "https"), "must look like http://host:8086").rstrip("/")

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
    keep_for: Duration = Field(
        default=timedelta(days=1095),
        ge=timedelta(0),
        description="How long records must be kept (the CDC toolkit asks three years); check-config warns when "
        "InfluxDB's retention policy keeps them for less. 0s: not checked.",
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
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="A spooled batch that fails to replay this many times (not for an unreachable store) is "
        "dead-lettered whole into the spool file's dead_letter table, so the batches behind it go on.",
    )
