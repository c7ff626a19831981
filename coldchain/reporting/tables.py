"""An export's tables (CSV and JSON lines, written as they stream) and how their cells are written.

CSV cells are spreadsheet-safe: a text cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return (a number such as ``-3.5`` excepted) is written with a leading apostrophe, so a
spreadsheet shows it as text instead of running it as a formula; a text beginning with an
apostrophe gets one more, so ``csv_value`` gives every real value back exactly (the audit chain is
verified over the real values). JSON files keep the values as they are.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from coldchain.core.daily import DAY_MS
from coldchain.core.times import format_time, from_millis

READING_COLUMNS = ("time", "site", "unit", "sensor", "kind", "value")

_FORMULA_START = frozenset("=+-@\t\r'")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """``value`` as a spreadsheet-safe CSV cell (None as empty)."""
    if value is None:
        return ""
    if isinstance(value, str) and value and value[0] in _FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_value(cell: str) -> str:
    """The real value of a CSV cell written by ``csv_cell``."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


DAILY_COLUMNS = (
    "date",
    "timezone",
    "utc_offset",
    "hours",
    "site",
    "unit",
    "sensor",
    "kind",
    "readings",
    "readings_out_of_range",
    "min",
    "max",
    "mean",
    "minutes_in_range",
    "minutes_out_of_range",
    "minutes_unknown",
    "gaps",
    "status",
    "in_calibration",
)
"""daily.csv: one row per sensor and local day of its site (``date`` in ``timezone``, ``hours`` 23/24/25)."""


CALIBRATION_COLUMNS = (
    "site",
    "unit",
    "sensor",
    "kind",
    "certificate",
    "calibration_due",
    "timezone",
    "out_of_calibration_from",
    "days_in_calibration",
    "days_out_of_calibration",
    "status",
)
"""calibration.csv: each sensor's certificate and how many of the period's local days it covered."""


GAP_COLUMNS = ("site", "unit", "sensor", "kind", "start", "end", "minutes", "status")


EXCURSION_COLUMNS = (
    "id",
    "kind",
    "severity",
    "site",
    "unit",
    "sensor",
    "subject",
    "started_at",
    "ended_at",
    "state",
    "duration_minutes",
    "peak",
    "limit",
    "minutes_beyond_limit",
    "degree_minutes",
    "minutes_unknown",
    "mkt_celsius",
    "mkt_window_start",
    "mkt_window_end",
    "mkt_readings",
    "acknowledged_by",
    "acknowledged_at",
    "note",
    "disposition",
    "notifications_sent",
    "notifications",
    "message",
)


BAG_COLUMNS = (
    "bag",
    "site",
    "unit",
    "product",
    "lot",
    "diluted_at",
    "diluted_by",
    "deadline",
    "infusion_started_at",
    "started_by",
    "infusion_completed_at",
    "completed_by",
    "discarded_at",
    "discarded_by",
    "used_within_limit",
    "outcome",
)


SIGNATURE_COLUMNS = (
    "signed_at",
    "signed_by",
    "full_name",
    "meaning",
    "disposition",
    "alert_id",
    "kind",
    "site",
    "unit",
    "subject",
    "note",
    "acknowledged_by",
    "signature_id",
    "supersedes",
    "audit_seq",
)
"""signatures.csv: every electronic signature of the period, from the audit trail (21 CFR Part 11 §11.50)."""


AUDIT_COLUMNS = ("seq", "time", "action", "actor", "subject", "details", "prev_hash", "hash", "in_period")


class Table:
    """One table written as CSV and/or a JSON array (one object per line), row by row."""

    def __init__(self, directory: Path, name: str, columns: Sequence[str], formats: Sequence[str]) -> None:
        self.name = name
        self.columns = tuple(columns)
        self.rows = 0
        self.files: list[str] = []
        self._csv: IO[str] | None = None
        self._json: IO[str] | None = None
        if "csv" in formats:
            self.files.append(f"{name}.csv")
            self._csv = (directory / f"{name}.csv").open("w", encoding="utf-8", newline="")
            self.writer = csv.writer(self._csv, lineterminator="\n")
            self.writer.writerow(self.columns)
        if "json" in formats:
            self.files.append(f"{name}.json")
            self._json = (directory / f"{name}.json").open("w", encoding="utf-8")
            self._json.write("[")

    def add(self, values: Sequence[Any]) -> None:
        if self._csv is not None:
            self.writer.writerow([csv_cell(v) for v in values])
        if self._json is not None:
            item = json.dumps(dict(zip(self.columns, values, strict=True)), ensure_ascii=False)
            self._json.write(("\n" if self.rows == 0 else ",\n") + item)
        self.rows += 1

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
        if self._json is not None:
            self._json.write("\n]\n" if self.rows else "]\n")
            self._json.close()


_CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
"""``HH:MM:SS`` of every second of a day."""


class ReadingsTable(Table):
    """``readings``: the hot path, one row per reading, with cached time prefixes and tag escapes."""

    def __init__(self, directory: Path, formats: Sequence[str]) -> None:
        super().__init__(directory, "readings", READING_COLUMNS, formats)
        self._days: dict[int, str] = {}
        self._quoted: dict[str, str] = {}

    def time_text(self, ms: int) -> str:
        """``format_time`` of an epoch-ms instant, without building a datetime (day and second tables)."""
        day, rest = divmod(ms, DAY_MS)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = from_millis(day * DAY_MS).strftime("%Y-%m-%dT")
        second, millis = divmod(rest, 1000)
        if millis:
            return f"{prefix}{_CLOCK[second]}.{millis:03d}Z"
        return f"{prefix}{_CLOCK[second]}Z"

    def reading(self, ms: int, site: str, unit: str, sensor: str, kind: str, value: float) -> None:
        text = self.time_text(ms)
        if self._csv is not None:
            self.writer.writerow((text, csv_cell(site), csv_cell(unit), csv_cell(sensor), kind, value))
        if self._json is not None:
            quoted = self._quoted
            key = f"{site}\x00{unit}\x00{sensor}\x00{kind}"
            tags = quoted.get(key)
            if tags is None:
                tags = quoted[key] = (
                    f'"site":{json.dumps(site)},"unit":{json.dumps(unit)},'
                    f'"sensor":{json.dumps(sensor)},"kind":{json.dumps(kind)}'
                )
            sep = "\n" if self.rows == 0 else ",\n"
            self._json.write(f'{sep}{{"time":"{text}",{tags},"value":{value!r}}}')
        self.rows += 1


def minutes_of(ms: int) -> float:
    return round(ms / 60_000, 2)


def rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def optional_time(ts: datetime | None) -> str | None:
    return None if ts is None else format_time(ts)
