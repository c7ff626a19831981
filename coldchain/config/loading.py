"""Loading the settings: the TOML file, then ``COLDCHAIN_*`` variables.

Every problem is named by its source: the file and key, or the environment variable.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)
from pydantic_settings import SettingsError

from coldchain.config.base import ENV_PREFIX
from coldchain.config.inventory import BUILTIN_PROFILES
from coldchain.config.inventory_files import TABLES, locate, read_inventory_files
from coldchain.config.inventory_table import InventoryConfig
from coldchain.config.settings import Settings


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, each naming its source and key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(problems))


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[tuple[str, ...], str]:
    """The ``COLDCHAIN_*`` variables set, by the key path they override (``("influx", "url")``) -> name."""
    environ = os.environ if environ is None else environ
    return {
        tuple(name[len(ENV_PREFIX) :].lower().split("__")): name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX)
    }


def _blame(file_source: str, loc: tuple[Any, ...], env: dict[tuple[str, ...], str]) -> str:
    """Who set the value at ``loc``: the environment variable whose key path holds it, else the file.

    An error about a whole table (a cross-field check) whose keys came partly from the environment
    names the file and those variables.
    """
    keys = tuple(str(part).lower() for part in loc)
    for path, name in sorted(env.items(), key=lambda item: len(item[0])):
        if keys[: len(path)] == path:
            return name
    inside = sorted(name for path, name in env.items() if path[: len(keys)] == keys)
    return ", ".join([file_source, *inside]) if keys and inside else file_source


def _entry_id(tables: Mapping[str, Any], table: str, index: int) -> str | None:
    """The ``id`` of ``tables[table][index]`` when there is one (to name inventory entries)."""
    entries = tables.get(table)
    if isinstance(entries, list) and 0 <= index < len(entries) and isinstance(entries[index], Mapping):
        entry_id = entries[index].get("id")
        return entry_id if isinstance(entry_id, str) else None
    return None


def _key_of(loc: tuple[Any, ...], tables: Mapping[str, Any]) -> str:
    """``sensors[0] (id 't-001').kind`` for a location inside the inventory, ``influx.url`` elsewhere."""
    key = ""
    for position, part in enumerate(loc):
        if isinstance(part, int):
            key += f"[{part}]"
            if position == 1 and loc[0] in ("units", "sensors"):
                entry_id = _entry_id(tables, str(loc[0]), part)
                key += f" (id {entry_id!r})" if entry_id is not None else ""
        else:
            key += f".{part}"
    return key.lstrip(".")


def _error_lines(
    source: str,
    exc: ValidationError,
    env: dict[tuple[str, ...], str] | None = None,
    tables: Mapping[str, Any] | None = None,
) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = _key_of(loc, tables or {})
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        where = _blame(source, loc, env or {})
        for line in message.splitlines():
            lines.append(f"{where}: {key}: {line}" if key else f"{where}: {line}")
    return lines


def _field_annotation(path: tuple[str, ...]) -> Any:
    """The type of the setting at ``path`` (``("api", "users")`` -> ``list[ApiUser]``), or None if unknown."""
    model: Any = Settings
    annotation: Any = None
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        model = args[0] if get_origin(annotation) is not None and len(args) == 1 else annotation
    return annotation


def _is_complex(annotation: Any) -> bool:
    """Values of this type come from the environment as JSON (as pydantic-settings parses them)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = get_origin(annotation)
    if origin in (list, dict, tuple, set, frozenset):
        return True
    return any(_is_complex(arg) for arg in get_args(annotation) if arg is not type(None)) if origin else False


def environment_json_errors(env: dict[tuple[str, ...], str], environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``COLDCHAIN_*`` variable that must hold JSON (a table or a list) and does not."""
    environ = os.environ if environ is None else environ
    lines: list[str] = []
    for path, name in sorted(env.items(), key=lambda item: item[1]):
        if not _is_complex(_field_annotation(path)):
            continue
        try:
            json.loads(environ[name])
        except json.JSONDecodeError as exc:
            lines.append(f"{name}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    return lines


def _environment_tables(env: dict[tuple[str, ...], str]) -> dict[str, Any]:
    """The inventory lists given whole in the environment (``COLDCHAIN_SENSORS='[...]'``), parsed."""
    tables: dict[str, Any] = {}
    for table in ("units", "sensors"):
        name = env.get((table,))
        if name is not None:
            try:
                tables[table] = json.loads(os.environ[name])
            except (json.JSONDecodeError, KeyError):
                continue
    return tables


def load_settings(path: Path | None) -> Settings:
    """Read ``path`` (TOML; None for defaults only) under ``COLDCHAIN_*`` overrides; raise ConfigError.

    Every problem is one line naming where the value came from (the file, or the environment
    variable that set it) and its key.
    """
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(source, [f"{source}: cannot read: {exc.strerror}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(source, [f"{source}: cannot read: not UTF-8 text ({exc.reason})"]) from exc
        except tomllib.TOMLDecodeError as exc:
            message = re.sub(r"\(at line (\d+), column (\d+)\)", r"(line \1, column \2)", str(exc))
            raise ConfigError(source, [f"{source}: not valid TOML: {message}"]) from exc
    env = environment_overrides()
    data, first_csv, origins = _with_inventory_files(source, path, data, env)
    try:
        return Settings(**data)
    except SettingsError as exc:
        lines = environment_json_errors(env) or [f"environment ({ENV_PREFIX}*): {exc}"]
        raise ConfigError(source, lines) from None
    except ValidationError as exc:
        tables = {**data, **_environment_tables(env)}
        lines = _error_lines(source, exc, env, tables)
        # field errors stop pydantic before the cross-checks: run those on the raw tables too, so one
        # run of check-config lists every problem (dangling references included)
        lines += [f"{source}: {line}" for line in verify_raw_references(data) if f"{source}: {line}" not in lines]
        if first_csv:  # a problem of a CSV row names its file and line
            lines = [_csv_located(line, source, first_csv, origins) for line in lines]
        raise ConfigError(source, lines) from exc


def _csv_located(line: str, source: str, first_csv: dict[str, int], origins: dict[str, list[str]]) -> str:
    prefix = f"{source}: "
    if not line.startswith(prefix):
        return line
    located = locate(line.removeprefix(prefix), first_csv, origins)
    return line if located is None else located


def _with_inventory_files(
    source: str, path: Path | None, data: dict[str, Any], env: dict[tuple[str, ...], str]
) -> tuple[dict[str, Any], dict[str, int], dict[str, list[str]]]:
    """``data`` with the rows of the ``[inventory]`` CSV files added to its tables; where the CSV rows start
    in each table and their ``file:line`` origins. Raises ConfigError naming file and line for bad rows."""
    table = data.get("inventory", {})
    named = {key: os.environ[name] for (*head, key), name in env.items() if head == ["inventory"] and key in TABLES}
    if not isinstance(table, dict) or not (set(table) | set(named)):
        return data, {}, {}
    try:
        files = InventoryConfig.model_validate({**table, **named})
    except ValidationError:
        return data, {}, {}  # Settings names what is wrong with the [inventory] table itself
    rows = read_inventory_files(files, path.parent if path is not None else Path.cwd())
    problems = list(rows.problems)
    out = dict(data)
    first: dict[str, int] = {}
    for name, entries in rows.entries.items():
        if (name,) in env:
            problems.append(f"{env[(name,)]}: replaces the whole {name} table, so inventory.{name} would be ignored")
            continue
        existing = out.get(name, [])
        if not isinstance(existing, list):
            continue  # Settings names the table that is not a list
        first[name] = len(existing)
        out[name] = [*existing, *entries]
    if problems:
        raise ConfigError(source, problems)
    return out, first, rows.origins


def verify_raw_references(data: dict[str, Any]) -> list[str]:
    """Dangling unit and profile references in unvalidated TOML tables (best effort, never raises)."""
    units: list[Any] = data["units"] if isinstance(data.get("units"), list) else []
    sensors: list[Any] = data["sensors"] if isinstance(data.get("sensors"), list) else []
    profiles = set(BUILTIN_PROFILES) | set(data.get("profiles") or {} if isinstance(data.get("profiles"), dict) else {})
    unit_ids = {unit.get("id") if isinstance(unit, dict) else getattr(unit, "id", None) for unit in units}
    problems: list[str] = []
    for index, unit in enumerate(units):
        if isinstance(unit, dict) and isinstance(unit.get("profile"), str) and unit["profile"] not in profiles:
            known = ", ".join(sorted(profiles))
            problems.append(
                f"units[{index}] (id {unit.get('id')!r}).profile: unknown profile {unit['profile']!r} (known: {known})"
            )
    for index, sensor in enumerate(sensors):
        if isinstance(sensor, dict) and isinstance(sensor.get("unit"), str) and sensor["unit"] not in unit_ids:
            problems.append(f"sensors[{index}] (id {sensor.get('id')!r}).unit: unknown unit {sensor['unit']!r}")
    return problems
