"""[api] and [log]: the HTTP API, its users and links; logging."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, read_key_file, read_secret_file
from coldchain.core.access import DEFAULT_ROLE, Role


class ApiUser(ConfigModel):
    """A person (or machine) allowed to call /api/ with a bearer token, in one role (CONTRACT §1, §5)."""

    name: str = Field(min_length=1, description="Recorded on every action taken with this token.")
    full_name: str = Field(
        default="", max_length=200, description="Printed on what this user signs (e.g. 'Jane Doe, PharmD')."
    )
    role: Role = Field(
        default=DEFAULT_ROLE, description="viewer | staff | pharmacist | auditor | admin: what this user may do."
    )
    token: SecretStr = Field(default=SecretStr(""), description="Bearer token.")
    token_file: Path | None = Field(default=None, description="File holding the token.")
    token_sha256: str = Field(
        default="",
        pattern=r"^([0-9a-fA-F]{64})?$",
        description="SHA-256 (hex) of the bearer token, instead of the token itself: only the hash is configured.",
    )
    password_hash: SecretStr = Field(
        default=SecretStr(""),
        description="argon2id hash of the signing password (`coldchain users hash-password`); none: cannot sign.",
    )
    password_hash_file: Path | None = Field(default=None, description="File holding the signing password's hash.")

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        object.__setattr__(self, "token", read_secret_file(self.token_file, self.token))
        object.__setattr__(self, "password_hash", read_secret_file(self.password_hash_file, self.password_hash))
        token = self.token.get_secret_value()
        if self.token_sha256:
            if token:
                raise ValueError(f"api user {self.name!r}: give token (or token_file) or token_sha256, not both")
        elif len(token) < 8:
            raise ValueError(f"api user {self.name!r} needs a token of at least 8 characters")
        hashed = self.password_hash.get_secret_value()
        if hashed:
            from argon2 import extract_parameters

            try:
                extract_parameters(hashed)
            except ValueError:  # argon2's InvalidHashError
                raise ValueError(
                    f"api user {self.name!r}: password_hash is not an argon2 hash "
                    "(make one with `coldchain users hash-password`)"
                ) from None
        return self

    @property
    def token_digest(self) -> bytes:
        """SHA-256 of the bearer token: what a presented token is compared with."""
        if self.token_sha256:
            return bytes.fromhex(self.token_sha256)
        return hashlib.sha256(self.token.get_secret_value().encode()).digest()

    @property
    def can_sign(self) -> bool:
        """Whether a signing password is configured."""
        return bool(self.password_hash.get_secret_value())


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
        key = read_key_file(self.link_secret_file, self.link_secret, "api.link_secret", "for a generated key")
        object.__setattr__(self, "link_secret", key)
        return self

    @model_validator(mode="after")
    def _distinct_users(self) -> Self:
        names: set[str] = set()
        tokens: dict[bytes, str] = {}
        for user in self.users:
            if user.name in names:
                raise ValueError(f"api.users: the name {user.name!r} is given twice")
            names.add(user.name)
            other = tokens.setdefault(user.token_digest, user.name)
            if other != user.name:
                raise ValueError(f"api.users: {other!r} and {user.name!r} have the same token")
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
