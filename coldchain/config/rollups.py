"""[rollups]: the 5-minute and daily summaries of every sensor's readings that wide dashboards read."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field

from coldchain.config.base import ConfigModel, Duration, between


class RollupsConfig(ConfigModel):
    """Rollups (measurements ``rollup_5m`` and ``rollup_1d``), kept by the process that ingests."""

    enabled: bool = Field(default=True, description="Write rollups as readings arrive (dashboards read them).")
    settle: Annotated[Duration, between(timedelta(0), timedelta(hours=1))] = Field(
        default=timedelta(minutes=1),
        description="How long after an interval (or day) ends its rollup is written; a reading arriving later "
        "corrects it by recomputing the interval from the stored readings.",
    )
    state_path: Path = Field(
        default=Path("var/coldchain-rollups.sqlite"),
        description="SQLite file keeping the intervals waiting to be recomputed (a late reading's correction "
        "survives a crash).",
    )
    recompute_every: Annotated[Duration, between(timedelta(milliseconds=100), timedelta(minutes=10))] = Field(
        default=timedelta(seconds=10),
        description="How often intervals touched by late or buffered readings are recomputed from the store.",
    )
