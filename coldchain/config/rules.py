"""[rules] and [export]: the rules worker's session, clock and state; audit exports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, read_secret_file


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
    audit_key_file: Path | None = Field(
        default=None,
        description="File holding the key (at least 16 bytes) that MACs every audit event; default: "
        "coldchain-audit.key in the state directory, created once. Keep it where the store's credentials do not reach.",
    )
    sites: list[str] = Field(
        default_factory=list,
        description="The sites this rules worker judges (its partition); empty: every site. Give each partition "
        "its own client_id, state_path, spool_path and audit_path.",
    )
    tick: Duration = Field(default=timedelta(seconds=1), description="How often the clock rules run.")
    checkpoint_every: Duration = Field(
        default=timedelta(seconds=1), description="Longest time between snapshots (messages are acked after one)."
    )
    calibration_warn_before: Duration = Field(
        default=timedelta(days=30),
        description="How long before a sensor's calibration_due the calibration_due warning opens.",
    )

    @property
    def state_dir(self) -> Path:
        """The directory of the worker's state and of the keys coldchain creates (``state_path``'s)."""
        return self.state_path.parent

    @property
    def audit_chain(self) -> str:
        """The audit chain this worker keeps: "" (the one chain), or a partition's own, named by its client id."""
        return self.client_id if self.sites else ""

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
        default=SecretStr(""),
        description="Legacy HMAC-SHA256 key: only to verify exports made before Ed25519 signatures (new ones are "
        "signed with private_key_file).",
    )
    signing_key_file: Path | None = Field(default=None, description="File holding the signing key.")
    private_key_file: Path | None = Field(
        default=None,
        description="PEM file of the Ed25519 private key signing manifest.json; default: "
        "coldchain-export-ed25519.pem in the state directory, created once.",
    )
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
