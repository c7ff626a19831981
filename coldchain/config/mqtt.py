"""[mqtt]: the broker, the persistent session, TLS."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from coldchain.config.base import ConfigModel, Duration, read_secret_file, require_url


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
    outage_alert_after: Duration = Field(
        default=timedelta(minutes=2),
        ge=timedelta(seconds=1),
        le=timedelta(days=1),
        description="How long the broker may be unreachable before the broker_unreachable alert opens.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        looks_like = "must look like mqtt://host:1883, mqtts://host:8883 or embedded://127.0.0.1:1883"
        return require_url(value, ("mqtt", "mqtts", "embedded"), looks_like)

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
