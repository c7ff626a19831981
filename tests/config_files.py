"""A test's configuration file: TOML text written to the test's own directory and read by the real loader."""

from __future__ import annotations

from pathlib import Path

from coldchain.config import Settings, load_settings


def load_config(tmp_path: Path, text: str) -> Settings:
    """``text`` as ``tmp_path/coldchain.toml``, loaded as coldchain loads its configuration."""
    path = tmp_path / "coldchain.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)
