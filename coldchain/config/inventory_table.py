"""[inventory]: the CSV files that add sites, units and sensors to the TOML's tables (fleet-size inventories)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from coldchain.config.base import ConfigModel


class InventoryConfig(ConfigModel):
    """CSV files exported from an asset system; relative paths are relative to the configuration file's directory.

    Each file has a header row of the TOML keys of its table (``[[sites]]``, ``[[units]]``,
    ``[[sensors]]``); an empty cell takes the key's default. Rows add to the TOML's entries.
    """

    sites: Path | None = Field(default=None, description="CSV of [[sites]] rows (workdays space-separated).")
    units: Path | None = Field(
        default=None, description="CSV of [[units]] rows; overrides.<key> columns set the unit's profile overrides."
    )
    sensors: Path | None = Field(default=None, description="CSV of [[sensors]] rows.")
