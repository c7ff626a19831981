"""``[homeassistant]``: Home Assistant MQTT discovery (opt-in)."""

from __future__ import annotations

from pydantic import Field

from coldchain.config.base import ConfigModel


class HomeAssistantConfig(ConfigModel):
    """Publish Home Assistant MQTT discovery configs (retained) for each unit's sensors, alerts and bags."""

    discovery: bool = Field(
        default=False, description="Publish discovery configs from the rules role (retained, at each connect)."
    )
    prefix: str = Field(
        default="homeassistant",
        min_length=1,
        max_length=200,
        pattern=r"^[^+#\s]+[^/+#\s]$|^[^/+#\s]$",
        description="Home Assistant's discovery prefix (its MQTT integration's setting).",
    )
