"""Records to and from plain JSON-able dicts, for the spool and for dead letters.

Generic over the record dataclasses: each field is converted by its annotated type. Times travel
as integer epoch milliseconds (the precision they are stored at), bytes as latin-1 text so any
byte survives, enums as their values, tuples as lists.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import fields
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Any

from coldchain.adapters.store.port import Record
from coldchain.core.alert import Alert
from coldchain.core.records import (
    AuditEvent,
    BagEvent,
    BagStatus,
    NotificationAttempt,
    Rejection,
    SensorAvailability,
    ShakeReading,
    TemperatureReading,
)
from coldchain.core.times import from_millis, to_millis

RECORD_TYPES: dict[str, type] = {
    "temperature": TemperatureReading,
    "shake": ShakeReading,
    "bag_event": BagEvent,
    "rejected": Rejection,
    "alert": Alert,
    "notification": NotificationAttempt,
    "bag_timer": BagStatus,
    "audit": AuditEvent,
    "availability": SensorAvailability,
}
"""Each record type by the name of the measurement it is stored in."""

_NAMES = {cls: name for name, cls in RECORD_TYPES.items()}


def measurement_of(record: Record) -> str:
    """The measurement a record is stored in."""
    return _NAMES[type(record)]


def _base(hint: Any) -> Any:
    """The non-None member of ``X | None`` (our records never mix two other types in one field)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return members[0] if len(members) == 1 else Any
    return hint


@cache
def _hints(cls: type) -> dict[str, Any]:
    return {name: _base(hint) for name, hint in typing.get_type_hints(cls).items()}


def _out(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_millis(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def _in(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if hint is datetime:
        return from_millis(value)
    if hint is bytes:
        return value.encode("latin-1")
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


def record_to_dict(record: Record) -> dict[str, Any]:
    """A JSON-able dict with a ``type`` key naming the record's measurement."""
    data: dict[str, Any] = {"type": measurement_of(record)}
    for field in fields(record):
        data[field.name] = _out(getattr(record, field.name))
    return data


def record_from_dict(data: dict[str, Any]) -> Record:
    """The record a ``record_to_dict`` dict describes."""
    cls = RECORD_TYPES.get(data["type"])
    if cls is None:
        raise ValueError(f"unknown record type {data['type']!r}")
    hints = _hints(cls)
    return cls(**{field.name: _in(hints[field.name], data.get(field.name)) for field in fields(cls)})  # type: ignore[no-any-return]


def dumps(records: list[Record]) -> bytes:
    """A batch of records as compact JSON bytes."""
    return json.dumps([record_to_dict(r) for r in records], separators=(",", ":")).encode()


def loads(blob: bytes) -> list[Record]:
    """The batch ``dumps`` wrote."""
    return [record_from_dict(item) for item in json.loads(blob)]
