"""The retained status message of a coldchain MQTT connection (CONTRACT §4 "Status"); pure.

``<prefix>/status/<client_id>`` holds ``{"state": "online", ...}`` while the connection is up, and
``{"state": "offline", ...}`` after it went away: published by a clean stop, or by the broker as the
connection's last will when coldchain died or lost the network. Sirens, Home Assistant or a second
site watch it (``value_json.state``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from coldchain.core.times import format_time


@dataclass(frozen=True, slots=True)
class Status:
    """Who is announcing: the role, its client id, coldchain's version and when the process started."""

    role: str
    client_id: str
    version: str
    started_at: datetime

    def payload(self, state: Literal["online", "offline"]) -> bytes:
        return json.dumps(
            {
                "state": state,
                "role": self.role,
                "client_id": self.client_id,
                "version": self.version,
                "started_at": format_time(self.started_at),
            }
        ).encode()
