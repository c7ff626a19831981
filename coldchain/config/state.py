"""[state]: the directories coldchain keeps its durable state in (spool, snapshot, outbox, audit log)."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator

from coldchain.config.base import ConfigModel, Duration

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
_UNITS = {
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}
DEFAULT_MIN_FREE_BYTES = 500 * 10**6
DEFAULT_MIN_FREE_PERCENT = 5.0


class StateConfig(ConfigModel):
    """Free space under the state directories: ``disk_low`` fires before writes start to fail."""

    min_free: str | None = Field(
        default=None,
        description='Free space under which disk_low opens: a size ("500MB", "2GiB") or a share of the '
        'filesystem ("5%"). Unset: 5% or 500 MB, whichever is larger.',
    )
    check_every: Duration = Field(
        default=timedelta(seconds=10),
        ge=timedelta(seconds=1),
        le=timedelta(minutes=10),
        description="How often free space is measured.",
    )

    @field_validator("min_free")
    @classmethod
    def _check_min_free(cls, value: str | None) -> str | None:
        if value is not None:
            match = _SIZE.match(value)
            if match is None:
                raise ValueError('must be a size like "500MB" or "2GiB", or a share like "5%"')
            if match.group(2) == "%" and not 0 < float(match.group(1)) < 100:
                raise ValueError("a share must be between 0% and 100%")
        return value

    def min_free_bytes(self, total: int) -> int:
        """The minimum free space, in bytes, on a filesystem of ``total`` bytes."""
        if self.min_free is None:
            return max(int(total * DEFAULT_MIN_FREE_PERCENT / 100), DEFAULT_MIN_FREE_BYTES)
        match = _SIZE.match(self.min_free)
        assert match is not None  # validated
        number, unit = float(match.group(1)), match.group(2)
        return int(total * number / 100) if unit == "%" else int(number * _UNITS[unit])
