"""Reading the ``[inventory]`` CSV files: rows of sites, units and sensors, each problem naming file and line.

The header row names the columns by their TOML keys (``id,unit,kind``); an empty cell takes the
key's default; ``overrides.<key>`` columns of the units file set that unit's profile overrides;
``workdays`` of the sites file lists days separated by spaces (``Mon Tue Wed``). Files may start with
a UTF-8 byte order mark (spreadsheet exports do). A whole file is validated at once (one
``TypeAdapter`` over the list: a per-row model call costs several times as much at 100,000 rows).

Problems read like the TOML's, with the file and line in front: ``units.csv:17: units (id
'fridge-x').site: Field required``. At most ``MAX_PROBLEMS`` are listed per file (a wrong column
would otherwise print one line per row), then how many more there were.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from coldchain.config.inventory import ProfileOverrides, Sensor, Site, Unit
from coldchain.config.inventory_table import InventoryConfig

MAX_PROBLEMS = 50
"""Problems listed per file before the rest are only counted."""

TABLES: dict[str, type[BaseModel]] = {"sites": Site, "units": Unit, "sensors": Sensor}
"""The tables a CSV file may hold rows of, by their ``[inventory]`` key (also their TOML table's name)."""

_LISTS = {"workdays"}
"""Columns whose cell holds a list (space- or comma-separated)."""
_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass
class InventoryRows:
    """What the files held: validated entries per table, where each came from (``file:line``), and the problems."""

    entries: dict[str, list[Any]] = field(default_factory=dict)
    origins: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_inventory_files(files: InventoryConfig, directory: Path) -> InventoryRows:
    """Read the files ``files`` names (relative paths against ``directory``, the configuration file's)."""
    rows = InventoryRows()
    for table in TABLES:
        name: Path | None = getattr(files, table)
        if name is None:
            continue
        path = name if name.is_absolute() else directory / name
        entries, origins, problems = read_table(table, path, str(name))
        rows.entries[table] = entries
        rows.origins[table] = origins
        rows.problems += problems
    return rows


def _columns(table: str, header: list[str], shown: str) -> tuple[list[str], list[str]]:
    """The header's column names (stripped) and a problem for each unknown or repeated one."""
    model = TABLES[table]
    known = set(model.model_fields) - ({"overrides"} if table == "units" else set())
    overrides = {f"overrides.{key}" for key in ProfileOverrides.model_fields} if table == "units" else set()
    columns = [name.strip() for name in header]
    problems: list[str] = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.append(f"{shown}:1: column {name!r} appears twice")
        seen.add(name)
        if name not in known and name not in overrides:
            choices = ", ".join(sorted(known | overrides))
            problems.append(f"{shown}:1: unknown column {name!r} (the {table} keys are: {choices})")
    if "id" not in columns:
        problems.append(f"{shown}:1: no id column (the header row names the columns by their TOML keys)")
    return columns, problems


def _entry(columns: list[str], cells: list[str], nested: bool) -> dict[str, Any]:
    """One row as a TOML entry would be: empty cells left out (the default), lists split, overrides nested."""
    entry: dict[str, Any] = {name: value for name, cell in zip(columns, cells, strict=False) if (value := cell.strip())}
    if nested:
        for name in [name for name in entry if name.startswith("overrides.") or name in _LISTS]:
            value = entry.pop(name)
            if name in _LISTS:
                entry[name] = [part for part in _SEPARATORS.split(value) if part]
            else:
                entry.setdefault("overrides", {})[name.removeprefix("overrides.")] = value
    return entry


def read_table(table: str, path: Path, shown: str) -> tuple[list[Any], list[str], list[str]]:
    """The validated entries of one file, their ``file:line`` origins and its problems (no entries if any)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return [], [], [f"{shown}: empty (a header row naming the columns is required)"]
            columns, problems = _columns(table, header, shown)
            nested = any(name.startswith("overrides.") or name in _LISTS for name in columns)
            raw: list[dict[str, Any]] = []
            origins: list[str] = []
            for cells in reader:
                if not "".join(cells).strip():
                    continue  # a blank line (or one of empty cells only)
                where = f"{shown}:{reader.line_num}"
                if len(cells) > len(columns):
                    problems.append(f"{where}: {len(cells)} cells but the header names {len(columns)} columns")
                raw.append(_entry(columns, cells, nested))
                origins.append(where)
    except OSError as exc:
        return [], [], [f"{shown}: cannot read: {exc.strerror} ({path})"]
    except UnicodeDecodeError as exc:
        return [], [], [f"{shown}: cannot read: not UTF-8 text ({exc.reason})"]
    except csv.Error as exc:
        return [], [], [f"{shown}: not valid CSV: {exc}"]
    if problems:
        return [], [], _capped(shown, problems)
    try:
        entries: list[Any] = TypeAdapter(list[TABLES[table]]).validate_python(raw)  # type: ignore[valid-type]
    except ValidationError as exc:
        return [], [], _capped(shown, _row_problems(table, exc, raw, origins))
    return entries, origins, []


def _row_problems(table: str, exc: ValidationError, raw: list[dict[str, Any]], origins: list[str]) -> list[str]:
    problems: list[str] = []
    for error in exc.errors():
        index, *keys = error["loc"]
        assert isinstance(index, int)
        entry_id = raw[index].get("id")
        named = f"{table} (id {entry_id!r})" if entry_id is not None else table
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in keys)
        message = error["msg"].removeprefix("Value error, ")
        problems += [f"{origins[index]}: {named}{key}: {line}" for line in message.splitlines()]
    return problems


def _capped(shown: str, problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"{shown}: … and {len(problems) - MAX_PROBLEMS} more problems"]


LOCATED = re.compile(r"^(?P<table>sites|units|sensors)\[(?P<index>\d+)\](?P<id> \(id [^)]*\))?(?P<rest>.*)$", re.S)
"""A problem about an inventory entry as ``Settings`` names it: ``units[17] (id 'x').site: …``."""


def locate(problem: str, first_csv: dict[str, int], origins: dict[str, list[str]]) -> str | None:
    """``problem`` naming a CSV row by its file and line instead of its index, or None if it is not about one.

    ``first_csv[table]`` is the index of the table's first CSV row (the TOML's entries come first).
    """
    found = LOCATED.match(problem)
    if found is None:
        return None
    table = found["table"]
    row = int(found["index"]) - first_csv.get(table, 0)
    rows = origins.get(table, [])
    if table not in first_csv or not 0 <= row < len(rows):
        return None
    return f"{rows[row]}: {table}{found['id'] or ''}{found['rest']}"
