"""Loading the configuration for a command: its problems are printed once, here, and end the command."""

from __future__ import annotations

import sys
from pathlib import Path

from coldchain.config import ConfigError, Settings, load_settings


def load_or_exit(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise SystemExit(1) from None
