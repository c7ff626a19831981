"""[[reports]]: exports made on a schedule, signed, kept in a directory and sent to notify targets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from coldchain.config.base import ConfigModel

ReportPeriod = Literal["day", "week", "month"]
"""How much each run covers: the previous local day, week (Monday to Sunday) or calendar month."""


class ReportConfig(ConfigModel):
    """A scheduled report (CONTRACT §1 ``[[reports]]``): the previous period's export, after local midnight."""

    name: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="Its name, as `reports run` takes it."
    )
    every: ReportPeriod = Field(description="day | week | month: the previous period, run after local midnight.")
    site: str | None = Field(default=None, description="Only this site's units (and its time zone for the period).")
    unit: str | None = Field(default=None, description="Only this unit.")
    targets: list[str] = Field(
        default_factory=list, description="Notify targets sent report.pdf (and the manifest) where they take files."
    )
    dir: Path | None = Field(default=None, description="Where its exports are kept; default var/reports/<name>.")

    @property
    def directory(self) -> Path:
        """``dir``, or ``var/reports/<name>``."""
        return self.dir if self.dir is not None else Path("var/reports") / self.name
