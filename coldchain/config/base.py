"""The base of every configuration table: unknown keys are errors; durations and secret files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    SecretStr,
)

from coldchain.core.durations import format_duration, parse_duration

Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
"""A configuration duration: ``"90s"``, ``"15m"``, ``"8h"``, ``"1h30m"`` (or seconds)."""


def _written(value: timedelta) -> str:
    """A bound as the configuration writes it: ``10ms`` below a second, else ``format_duration``'s."""
    if timedelta(0) < value < timedelta(seconds=1):
        return f"{value // timedelta(milliseconds=1)}ms"
    return format_duration(value)


def between(low: timedelta, high: timedelta, why: str = "") -> AfterValidator:
    """The check of ``Annotated[Duration, between(low, high)]``: ``low <= value <= high``, else the error
    ``must be between 10ms and 1s`` (the bounds as written in the configuration), then `` (why)``."""
    says = f"must be between {_written(low)} and {_written(high)}" + (f" ({why})" if why else "")

    def check(value: timedelta) -> timedelta:
        if not low <= value <= high:
            raise ValueError(says)
        return value

    return AfterValidator(check)


def known_zone(value: str) -> str:
    """``value`` when it names an IANA time zone (``Europe/Berlin``); else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Berlin)") from exc
    return value


TimeZone = Annotated[str, AfterValidator(known_zone)]
"""An IANA time zone name, checked when the configuration loads."""

ENV_PREFIX = "COLDCHAIN_"
"""Every setting can be overridden by a variable ``COLDCHAIN_<TABLE>__<KEY>``."""


class ConfigModel(BaseModel):
    """Base of every configuration table: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def require_url(value: str, schemes: tuple[str, ...], looks_like: str) -> str:
    """``value`` if it is a URL with one of ``schemes`` and a host; else ValueError(``looks_like``)."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(looks_like)
    return value


def read_secret_file(path: Path | None, current: SecretStr) -> SecretStr:
    """The secret from ``path`` (trailing newline stripped) when given, else ``current``."""
    if path is None:
        return current
    try:
        return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from exc


MIN_KEY_BYTES = 16
"""The shortest key coldchain accepts for an HMAC (acknowledge links, legacy export signatures)."""


def read_key_file(path: Path | None, current: SecretStr, name: str, if_empty: str) -> SecretStr:
    """``read_secret_file``, then a key given must have ``MIN_KEY_BYTES``; else ValueError naming the setting
    ``name`` and what leaving it empty means (``if_empty``)."""
    key = read_secret_file(path, current)
    if 0 < len(key.get_secret_value().encode()) < MIN_KEY_BYTES:
        raise ValueError(f"{name} needs at least {MIN_KEY_BYTES} bytes (or leave it empty {if_empty})")
    return key
