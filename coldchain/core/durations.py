"""Human durations such as ``90s``, ``15m``, ``8h`` or ``1h30m``: parsed and written back; pure."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def parse_duration(value: object) -> timedelta:
    """Parse ``"15m"``-style strings (or a timedelta, or plain seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '90s', '15m' or '8h'")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a duration is a string like '90s', '15m' or '8h'")
    text = value.strip().replace(" ", "")
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{value!r} is not a duration like '90s', '15m', '8h' or '1h30m'")
    seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a timedelta the way it is written in the configuration (``"1h30m"``)."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if total:
        parts.append(f"{total:g}s")
    return "".join(parts)
