"""Records as InfluxDB line protocol, millisecond precision: pure functions, no I/O.

Schema (one measurement per record type, tags in key order, timestamps in epoch milliseconds):

- ``temperature,sensor=…,site=…,unit=… celsius=4.0,seq=1031i,battery_pct=87.0 <ts>``
- ``shake,sensor=…,site=…,unit=… peak_g=0.7,seq=12i <ts>``
- ``bag_event,bag=…,site=…,unit=… event="diluted",product="…",lot="…",by="…" <ts>``
- ``rejected,reason=… topic="…",detail="…",payload="…" <received_at>``
- ``alert,kind=…,severity=…,site=…,subject=…,unit=… id="…",state="open",… <updated_at>``
- ``notification,channel=…,kind=…,outcome=…,severity=…,site=…,unit=… alert_id="…",target="…",purpose="…",``
  ``tier=1i,attempt=2i,error="…" <at>``

Optional fields (None) and empty tags are left out. Float fields are written as ``repr(float(x))``
(``4.0``, ``1e+16``) and integer fields with the ``i`` suffix, whatever Python type the caller
passed, so a field's type never depends on the value (an int ``celsius`` is still ``4.0``, never
``4i``, which would conflict with the float field for good).

Text is escaped so that one point is one line and InfluxDB 1.x reads back what was written, except
what line protocol or InfluxQL cannot carry (the first two normalised as telegraf does):

- a line feed or carriage return is stored as the two characters ``\\n`` or ``\\r``;
- trailing backslashes of a tag value are dropped (1.x cannot parse a tag value ending in one);
- U+0000 is dropped from tag values (InfluxQL cannot express it, so no query could select it).

Which attributes are tags and which are fields is ``points.py``'s schema, shared with the SQLite
store: ``encode`` writes any record from its point (``encode_point``), except temperature and
shake readings, which have hand-written encoders producing the same lines faster (they are most
of the traffic; ``tests/test_points.py`` checks both agree). ``encode`` dispatches on the record's
type through ``ENCODERS``; ``@encoder(ItsType)`` registers a function of one's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, TypeVar

from coldchain.adapters.store.points import POINT_MAKERS, Point
from coldchain.core.records import Record, ShakeReading, TemperatureReading
from coldchain.core.times import to_millis

ENCODERS: dict[type, Callable[[Any], str]] = {}
"""Line encoder of each record type."""

_R = TypeVar("_R")

# Tag values: comma, equals and space are escaped; a backslash stays literal because InfluxDB 1.x
# only unescapes "\,", "\=" and "\ " in tags (so "\\" would be stored as two backslashes).
_TAG_ESCAPES = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\0": None})
# String field values: backslash and double quote are escaped; 1.x unescapes both.
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\\\n", "\r": "\\\\r"})
_MEASUREMENT_ESCAPES = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})


def escape_measurement(name: str) -> str:
    """A measurement name as line protocol (comma and space escaped)."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_tag(value: str) -> str:
    """A tag key or value as line protocol; "" when nothing representable is left (omit the tag)."""
    if "," in value or "=" in value or " " in value or "\n" in value or "\r" in value or "\0" in value:
        value = value.translate(_TAG_ESCAPES)
    if value.endswith("\\"):
        value = value.rstrip("\\")
    return value


def stored_tag_value(value: str) -> str:
    """The value InfluxDB keeps for a tag written through ``escape_tag`` (to filter on it)."""
    return value.replace("\n", "\\n").replace("\r", "\\r").replace("\0", "").rstrip("\\")


def escape_string(value: str) -> str:
    """A string field value as line protocol, with its double quotes."""
    if '"' in value or "\\" in value or "\n" in value or "\r" in value:
        value = value.translate(_STRING_ESCAPES)
    return f'"{value}"'


@lru_cache(maxsize=16384)
def series_key(measurement: str, tags: tuple[tuple[str, str | None], ...]) -> str:
    """``measurement,k=v,…`` with tags sorted by key and empty or None values left out.

    Cached: a fleet has a few thousand series, and each one's key is escaped once.
    """
    parts = [escape_measurement(measurement)]
    for key, value in sorted(tags):
        if value:
            escaped = escape_tag(value)
            if escaped:
                parts.append(f"{escape_tag(key)}={escaped}")
    return ",".join(parts)


def encoder(record_type: type[_R]) -> Callable[[Callable[[_R], str]], Callable[[_R], str]]:
    """Register the decorated function as the line encoder of ``record_type``."""

    def register(function: Callable[[_R], str]) -> Callable[[_R], str]:
        ENCODERS[record_type] = function
        return function

    return register


def encode(record: Record) -> str:
    """One record as one line of line protocol, without a trailing newline."""
    function = ENCODERS.get(type(record))
    if function is not None:
        return function(record)
    maker = POINT_MAKERS.get(type(record))
    if maker is None:
        raise TypeError(f"no line protocol encoder for {type(record).__name__}")
    return encode_point(maker(record))


def encode_batch(records: Iterable[Record]) -> bytes:
    """Records as a newline-separated UTF-8 body for ``/write``."""
    text = "\n".join(map(encode, records))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (e.g. from a JSON "\ud800" escape) become "?"
        return text.encode("utf-8", "replace")


@encoder(TemperatureReading)
def encode_temperature(r: TemperatureReading) -> str:
    """A temperature reading: float ``celsius``, optional int ``seq`` and float ``battery_pct``."""
    fields = f"celsius={float(r.celsius)!r}"
    if r.seq is not None:
        fields += f",seq={int(r.seq)}i"
    if r.battery_pct is not None:
        fields += f",battery_pct={float(r.battery_pct)!r}"
    key = series_key("temperature", (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)))
    return f"{key} {fields} {to_millis(r.ts)}"


@encoder(ShakeReading)
def encode_shake(r: ShakeReading) -> str:
    """A shake reading: float ``peak_g``, optional int ``seq``."""
    fields = f"peak_g={float(r.peak_g)!r}"
    if r.seq is not None:
        fields += f",seq={int(r.seq)}i"
    key = series_key("shake", (("sensor", r.sensor), ("site", r.site), ("unit", r.unit)))
    return f"{key} {fields} {to_millis(r.ts)}"


def encode_point(point: Point) -> str:
    """A point as one line: floats as ``repr``, integers with ``i``, strings quoted and escaped."""
    fields = []
    for name, value in point.fields:
        if isinstance(value, str):
            text = escape_string(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = f"{value}i"
        else:
            text = repr(float(value))
        fields.append(f"{escape_tag(name)}={text}")
    return f"{series_key(point.measurement, point.tags)} {','.join(fields)} {point.time_ms}"
