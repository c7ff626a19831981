"""[rules] and [export]: the rules worker's session, clock and state; audit exports."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, between, read_key_file


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
    tick: Annotated[
        Duration,
        between(timedelta(milliseconds=10), timedelta(seconds=1), "the clock rules run at least once a second"),
    ] = Field(default=timedelta(seconds=1), description="How often the clock rules run.")
    checkpoint_every: Annotated[Duration, between(timedelta(milliseconds=10), timedelta(minutes=1))] = Field(
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
    gap_after: Annotated[Duration, between(timedelta(seconds=1), timedelta(days=1))] = Field(
        default=timedelta(minutes=10),
        description="Two consecutive readings of a sensor further apart than this leave the time between "
        "them unknown (a data gap), never in range.",
    )

    @model_validator(mode="after")
    def _load_secret(self) -> Self:
        key = read_key_file(self.signing_key_file, self.signing_key, "export.signing_key", "for unsigned manifests")
        object.__setattr__(self, "signing_key", key)
        return self
