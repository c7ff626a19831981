"""Every InfluxQL query of the committed dashboards runs against a real influxd seeded with one scenario.

The queries are read from ``dashboards/*.json`` (panels' targets, template variables, annotations) and
interpolated as Grafana's InfluxDB datasource does: ``$timeFilter`` becomes
``time >= <from>ms and time <= <to>ms`` for the dashboard's range (or the panel's own ``timeFrom``),
``$__interval`` a Grafana-like interval for that range, and template variables their selected values, a
multi-value or include-all variable as regex-escaped values joined with ``|`` ("All" = every value its
own query returns). A repeated panel runs once per value of its variable, as Grafana's clones do.

``CHECKS`` holds one function per query, asserting the shape and values the panel relies on; a query
in the JSON without a check (a new panel) fails ``test_every_query_has_a_check`` and its own test.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from coldchain.adapters.store.lineprotocol import encode, escape_string, series_key
from coldchain.adapters.store.points import POINT_MAKERS, to_point
from coldchain.core.alert import SEVERITY, Alert, alert_id
from coldchain.core.local_days import calendar
from coldchain.core.records import (
    NotificationOutcome,
    Rejection,
    RejectReason,
    ShakeReading,
    TemperatureReading,
    measurement_of,
)
from coldchain.core.rollups import Band, SensorPlace, daily_of, rollup_of, rollups_of
from coldchain.core.times import format_time, from_millis
from coldchain.dashboards.build import build_dashboards, render, with_datasource
from coldchain.dashboards.parts import DATASOURCE_UID, SCHEMA_VERSION, UNIT_UID
from tests.samples import EVERY_RECORD_TYPE
from tests.servers import Influxd

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "dashboards"
DATASOURCES_DIR = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
SCHEMA_DIR = ROOT / "tests" / "grafana_schema"
"""@grafana/schema and typescript, pinned in package.json / package-lock.json (npm ci: scripts/bootstrap.sh)."""

S = 1000
M = 60 * S
H = 60 * M
D = 24 * H

Row = dict[str, Any]


# -- the dashboards as files ----------------------------------------------------------------


def load_boards() -> dict[str, dict[str, Any]]:
    """The committed dashboards by uid."""
    boards = {}
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        boards[board["uid"]] = board
    return boards


BOARDS = load_boards()


@dataclass(frozen=True)
class QueryRef:
    """One InfluxQL query of a dashboard and the JSON object holding it (panel, variable, annotation)."""

    board: str
    where: str
    name: str
    ref_id: str
    query: str
    holder: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.board}/{self.where}/{self.name}/{self.ref_id}"


def panels_of(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for item in board.get("panels", []):
        yield item
        yield from item.get("panels", [])


def queries_of(boards: dict[str, dict[str, Any]]) -> list[QueryRef]:
    """Every InfluxQL query of the dashboards."""
    found = []
    for uid, board in boards.items():
        for item in panels_of(board):
            for target in item.get("targets", []):
                found.append(QueryRef(uid, "panel", item["title"], target["refId"], target["query"], item))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                found.append(QueryRef(uid, "variable", variable["name"], "query", variable["query"], variable))
        for annotation in board["annotations"]["list"]:
            if not annotation.get("builtIn"):
                target = annotation["target"]
                found.append(QueryRef(uid, "annotation", annotation["name"], target["refId"], target["query"], {}))
    return found


QUERIES = {ref.key: ref for ref in queries_of(BOARDS)}


# -- Grafana's interpolation ----------------------------------------------------------------

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_MS = {"s": S, "m": M, "h": H, "d": D, "w": 7 * D}
# Grafana's rangeutil.roundInterval: (below this many ms, use this interval)
_ROUND_INTERVAL = (
    (12_500, "10s"), (17_500, "15s"), (25_000, "20s"), (45_000, "30s"), (90_000, "1m"), (210_000, "2m"),
    (450_000, "5m"), (750_000, "10m"), (1_050_000, "15m"), (1_500_000, "20m"), (2_700_000, "30m"),
    (5_400_000, "1h"), (9_000_000, "2h"), (16_200_000, "3h"), (32_400_000, "6h"), (86_400_000, "12h"),
)  # fmt: skip
_ESCAPE = re.compile(r"[\\^$*+?.()|\[\]{}/']")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    assert match, f"not a duration: {text!r}"
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def time_range(board: dict[str, Any], holder: dict[str, Any], now: int) -> tuple[int, int]:
    """The range a panel queries: its own ``timeFrom`` (the last N), else the dashboard's ``now-N``."""
    assert board["time"]["to"] == "now"
    if holder.get("timeFrom"):
        return now - duration_ms(holder["timeFrom"]), now
    return now - duration_ms(board["time"]["from"].removeprefix("now-")), now


def grafana_interval(span_ms: int, max_data_points: int = 1000, min_interval: str = "10s") -> str:
    """``$__interval``: the range over the panel's points, rounded as Grafana rounds it, at least the minimum."""
    wanted = span_ms / max_data_points
    rounded = next((nice for limit, nice in _ROUND_INTERVAL if wanted < limit), "1d")
    return rounded if duration_ms(rounded) >= duration_ms(min_interval) else min_interval


def regex_escape(value: str) -> str:
    """What Grafana's InfluxQL interpolation escapes in a value (regex metacharacters, quote, slash)."""
    return _ESCAPE.sub(lambda m: "\\" + m.group(0), value)


def format_variable(definition: dict[str, Any], values: list[str]) -> str:
    """A variable's value as Grafana writes it into an InfluxQL query."""
    if definition.get("multi") or definition.get("includeAll"):
        return "|".join(regex_escape(value) for value in values)
    assert len(values) == 1, f"{definition['name']} takes one value"
    value = values[0]
    try:
        float(value)
    except ValueError:
        return regex_escape(value)
    return value


def interpolate(
    query: str,
    board: dict[str, Any],
    holder: dict[str, Any],
    selection: dict[str, list[str]],
    now: int,
) -> str:
    """``query`` as Grafana sends it to InfluxDB for this selection of variables at ``now``."""
    start, end = time_range(board, holder, now)
    text = query.replace("$timeFilter", f"time >= {start}ms and time <= {end}ms")
    text = text.replace("$__interval_ms", str(duration_ms(grafana_interval(end - start))))
    text = text.replace("$__interval", grafana_interval(end - start))
    definitions = {variable["name"]: variable for variable in board["templating"]["list"]}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in definitions, f"unknown variable ${name} in {query!r}"
        assert name in selection, f"${name} used before it is selected in {query!r}"
        return format_variable(definitions[name], selection[name])

    text = _VARIABLE.sub(substitute, text)
    assert "$" not in text.replace("$/", ""), f"left uninterpolated: {text!r}"
    return text


# -- the scenario ---------------------------------------------------------------------------


@dataclass
class World:
    """The seeded database and the moment the scenario is built around (epoch ms)."""

    influxd: Influxd
    db: str
    now: int

    def rows(self, query: str) -> list[Row]:
        """Every row of every series of the answer, tags merged in, ``_series`` the measurement."""
        answer = self.influxd.query(query, db=self.db)
        (result,) = answer["results"]
        assert "error" not in result, f"{result['error']} in {query}"
        found = []
        for series in result.get("series", []):
            for values in series["values"]:
                fields = dict(zip(series["columns"], values, strict=True))
                found.append({"_series": series["name"], **series.get("tags", {}), **fields})
        return found


def temperature(sensor: str, unit: str, site: str, at: int, celsius: float) -> str:
    return encode(TemperatureReading(sensor, unit, site, from_millis(at), celsius))


def shake(sensor: str, unit: str, site: str, at: int, peak_g: float) -> str:
    return encode(ShakeReading(sensor, unit, site, from_millis(at), peak_g))


def alert(
    kind: str,
    subject: str,
    site: str,
    unit: str,
    state: str,
    started: int,
    updated: int,
    *,
    resolved: int | None = None,
    by: str | None = None,
    note: str | None = None,
    disposition: str | None = None,
) -> str:
    """An alert transition as the rules worker stores it (``disposition``: the ack's, coming in alerting)."""
    is_bag = kind.startswith("bag_")
    line = encode(
        Alert(
            id=alert_id(kind, subject, from_millis(started)),
            kind=kind,
            subject=subject,
            state=state,
            severity=SEVERITY[kind],
            site=site,
            unit=unit,
            sensor=None if is_bag else subject,
            bag=subject if is_bag else None,
            started_at=from_millis(started),
            updated_at=from_millis(updated),
            resolved_at=from_millis(resolved) if resolved is not None else None,
            value=None,
            message=f"{kind} of {subject} in {unit}",
            acknowledged_by=by,
            note=note,
        )
    )
    if disposition is not None and "disposition=" not in line:
        head, stamp = line.rsplit(" ", 1)
        line = f"{head},disposition={escape_string(disposition)} {stamp}"
    return line


def bag_timer(bag: str, unit: str, site: str, deadline: int, state: str, diluted: int) -> str:
    """The proposed ``bag_timer`` point: at the bag's deadline, overwritten when the timer stops."""
    key = series_key("bag_timer", (("bag", bag), ("site", site), ("unit", unit)))
    return (
        f"{key} state={escape_string(state)},diluted_at={escape_string(format_time(from_millis(diluted)))} {deadline}"
    )


def notification(channel: str, outcome: str, kind: str, unit: str, at: int, *, error: str | None = None) -> str:
    """A notification attempt as the notifier stores it (tags channel, kind, outcome, severity, site, unit)."""
    tags = (
        ("channel", channel),
        ("kind", kind),
        ("outcome", outcome),
        ("severity", SEVERITY[kind]),
        ("site", "main-pharmacy"),
        ("unit", unit),
    )
    fields = f'alert_id="{kind}-1",target="{channel}://on-call",purpose="opened",tier=1i,attempt=1i'
    if error is not None:
        fields += f",error={escape_string(error)}"
    return f"{series_key('notification', tags)} {fields} {at}"


def rejected(reason: RejectReason, at: int) -> str:
    return encode(Rejection(reason, "coldchain/sensors/t-001/temperature", f"{reason} here", b"{oops", from_millis(at)))


def scenario(now: int) -> list[str]:
    """Two sites, four fridges; excursions, alerts in every state, bags, notifications, rejections."""
    n = now
    lines: list[str] = []
    # fridge-a: in range for hours, above 8 °C for the last 16 minutes; a cold reading two days ago
    for i in range(180, 0, -1):
        lines.append(temperature("t-001", "fridge-a", "main-pharmacy", n - i * M, 9.6 if i <= 16 else 4.5))
    lines.append(temperature("t-001", "fridge-a", "main-pharmacy", n - 2 * D, 1.5))
    lines.append(temperature("t-001", "fridge-a", "main-pharmacy", n - 2 * D + H, 7.0))
    # fridge-b: steady 5 °C, last heard 30 s ago
    for i in range(180, -1, -1):
        lines.append(temperature("t-002", "fridge-b", "main-pharmacy", n - i * M - 30 * S, 5.2 if i == 0 else 5.0))
    # fridge-c (ward-3): fell to -0.5 °C, then silent for 20 minutes
    for i in range(180, 19, -1):
        lines.append(temperature("t-003", "fridge-c", "ward-3", n - i * M, -0.5 if i == 20 else 3.0))
    # fridge-d: one reading ten days ago, nothing since
    lines.append(temperature("t-004", "fridge-d", "main-pharmacy", n - 10 * D, 6.0))
    # shakes: fridge-a was shaken 30 minutes ago
    for i in range(60, 0, -1):
        lines.append(shake("s-001", "fridge-a", "main-pharmacy", n - i * M, 0.7 if i == 30 else 0.04))
    for i in range(60, 0, -5):
        lines.append(shake("s-002", "fridge-b", "main-pharmacy", n - i * M + 3 * M, 0.02))
    # alerts: open, resolved, acknowledged (with a disposition), old ones outside the ranges
    lines += [
        alert("temperature_high", "t-001", "main-pharmacy", "fridge-a", "open", n - 16 * M, n - 1 * M),
        alert("agitation", "s-001", "main-pharmacy", "fridge-a", "open", n - 30 * M, n - 30 * M),
        alert(
            "agitation", "s-001", "main-pharmacy", "fridge-a", "resolved", n - 30 * M, n - 25 * M, resolved=n - 25 * M
        ),
        alert("sensor_offline", "t-003", "ward-3", "fridge-c", "open", n - 5 * M, n - 5 * M),
        alert(
            "sensor_offline",
            "t-003",
            "ward-3",
            "fridge-c",
            "acknowledged",
            n - 5 * M,
            n - 2 * M,
            by="j.doe",
            note="probe cable checked",
        ),
        alert("freezing", "t-003", "ward-3", "fridge-c", "open", n - 20 * M, n - 20 * M),
        alert("bag_expiring", "B-4", "main-pharmacy", "fridge-a", "open", n - 70 * M, n - 70 * M),
        alert("bag_expired", "B-4", "main-pharmacy", "fridge-a", "open", n - 10 * M, n - 10 * M),
        alert("temperature_low", "t-002", "main-pharmacy", "fridge-b", "open", n - 6 * H, n - 6 * H),
        alert(
            "temperature_low",
            "t-002",
            "main-pharmacy",
            "fridge-b",
            "acknowledged",
            n - 6 * H,
            n - 6 * H + 10 * M,
            by="a.smith",
            note="moved to fridge A",
            disposition="quarantined",
        ),
        alert(
            "temperature_low",
            "t-002",
            "main-pharmacy",
            "fridge-b",
            "resolved",
            n - 6 * H,
            n - 6 * H + 30 * M,
            resolved=n - 6 * H + 30 * M,
            by="a.smith",
            note="moved to fridge A",
            disposition="quarantined",
        ),
        alert("temperature_high", "t-002", "main-pharmacy", "fridge-b", "open", n - 10 * D, n - 10 * D),
        alert(
            "temperature_high",
            "t-002",
            "main-pharmacy",
            "fridge-b",
            "resolved",
            n - 10 * D,
            n - 10 * D + 20 * M,
            resolved=n - 10 * D + 20 * M,
        ),
        alert("sensor_offline", "t-004", "main-pharmacy", "fridge-d", "open", n - 9 * D, n - 9 * D),
    ]
    # bag timers: one expired but still in the fridge, two running, two done
    lines += [
        bag_timer("B-4", "fridge-a", "main-pharmacy", n - 10 * M, "running", n - 8 * H - 10 * M),
        bag_timer("B-1", "fridge-a", "main-pharmacy", n + 40 * M, "running", n - 7 * H - 20 * M),
        bag_timer("B-2", "fridge-b", "main-pharmacy", n + 5 * H, "running", n - 3 * H),
        bag_timer("B-3", "fridge-b", "main-pharmacy", n + 2 * H, "running", n - 6 * H),
        bag_timer("B-3", "fridge-b", "main-pharmacy", n + 2 * H, "done", n - 6 * H),
        bag_timer("B-5", "fridge-c", "ward-3", n - 3 * D, "done", n - 3 * D - 8 * H),
        bag_timer("B-6", "fridge-c", "ward-3", n + 3 * H, "running", n - 5 * H),
    ]
    lines += [
        notification("email", "sent", "temperature_high", "fridge-a", n - 1 * M),
        notification("slack", "sent", "temperature_high", "fridge-a", n - 1 * M + 1),
        notification("webhook", "failed", "freezing", "fridge-c", n - 20 * M, error="HTTP 500"),
        notification("webhook", "gave_up", "freezing", "fridge-c", n - 19 * M, error="HTTP 500, 3 attempts"),
        notification("email", "sent", "temperature_low", "fridge-b", n - 6 * H),
        notification("email", "sent", "temperature_high", "fridge-b", n - 8 * D),
    ]
    lines += [
        rejected(RejectReason.INVALID_JSON, n - 3 * M),
        rejected(RejectReason.INVALID_JSON, n - 3 * M + 1),
        rejected(RejectReason.INVALID_JSON, n - 2 * M),
        rejected(RejectReason.UNKNOWN_SENSOR, n - 1 * H),
        rejected(RejectReason.UNKNOWN_SENSOR, n - 1 * H + 1),
        rejected(RejectReason.TS_TOO_OLD, n - 2 * D),
        rejected(RejectReason.INVALID_JSON, n - 8 * D),
    ]
    return lines


def rollup_lines(lines: list[str]) -> list[str]:
    """The rollups coldchain keeps for the scenario's readings (``core/rollups.py``), as line protocol."""
    readings: dict[SensorPlace, list[tuple[Any, float]]] = {}
    for line in lines:
        if not line.startswith(("temperature,", "shake,")):
            continue
        key, field, at = line.split(" ")
        measurement, *pairs = key.split(",")
        tags = dict(pair.split("=", 1) for pair in pairs)
        band = Band("temperature", 2.0, 8.0) if measurement == "temperature" else Band("shake", None, 0.5)
        place = SensorPlace(tags["sensor"], tags["unit"], tags["site"], band)
        readings.setdefault(place, []).append((from_millis(int(at)), float(field.split("=")[1])))
    found: list[str] = []
    for place, series in readings.items():
        five = rollups_of(series, place, timedelta(minutes=10))
        found += [encode(rollup) for rollup in [*five, *daily_of(five)]]
    return found


@pytest.fixture(scope="module")
def world(influxd: Influxd) -> Iterator[World]:
    """The scenario in a database of its own on the session's influxd, built around the current second."""
    db = f"dash_{uuid.uuid4().hex[:12]}"
    influxd.query(f'CREATE DATABASE "{db}"')
    now = int(time.time()) * 1000
    lines = scenario(now)
    response = influxd.write("\n".join(lines + rollup_lines(lines)), db=db)
    assert response.status_code == 204, response.text
    yield World(influxd, db, now)
    influxd.query(f'DROP DATABASE "{db}"')


class Runner:
    """Runs a dashboard query in the world with variables selected as a user (or a repeat) would."""

    def __init__(self, world: World, ref: QueryRef) -> None:
        self.world = world
        self.ref = ref
        self.board = BOARDS[ref.board]

    def options(self, name: str, selection: dict[str, list[str]]) -> list[str]:
        """The values a variable offers, by running its query with the variables before it selected."""
        definition = next(v for v in self.board["templating"]["list"] if v["name"] == name)
        query = interpolate(definition["query"], self.board, {}, selection, self.world.now)
        values = sorted({row["value"] for row in self.world.rows(query)})
        assert values, f"variable {name} offers nothing"
        return values

    def selection(self, chosen: dict[str, str | list[str]]) -> dict[str, list[str]]:
        """Each variable: the chosen value(s), else All (include-all variables) or the first value."""
        selected: dict[str, list[str]] = {}
        for definition in self.board["templating"]["list"]:
            name = definition["name"]
            if name in chosen:
                value = chosen[name]
                selected[name] = [value] if isinstance(value, str) else list(value)
            elif definition.get("includeAll"):
                selected[name] = self.options(name, selected)
            else:
                selected[name] = self.options(name, selected)[:1]
        return selected

    def __call__(self, **chosen: str | list[str]) -> list[Row]:
        selection = self.selection(chosen)
        query = interpolate(self.ref.query, self.board, self.ref.holder, selection, self.world.now)
        return self.world.rows(query)


Check = Callable[[Runner, World], None]
CHECKS: dict[str, Check] = {}


def check(board: str, where: str, name: str, ref_id: str = "A") -> Callable[[Check], Check]:
    """Register the check of one query (``ref_id`` "query" for a variable)."""

    def register(function: Check) -> Check:
        key = f"{board}/{where}/{name}/{ref_id}"
        assert key not in CHECKS, f"two checks for {key}"
        CHECKS[key] = function
        return function

    return register


def by(rows: list[Row], key: str) -> dict[Any, Row]:
    found = {row[key]: row for row in rows}
    assert len(found) == len(rows), f"{key} repeats in {rows}"
    return found


# -- Cold chain — overview ------------------------------------------------------------------

OVERVIEW = "coldchain-overview"


@check(OVERVIEW, "variable", "site", "query")
def _overview_sites(run: Runner, w: World) -> None:
    rows = run()
    assert sorted(row["value"] for row in rows) == ["main-pharmacy", "ward-3"]


@check(OVERVIEW, "variable", "unit", "query")
def _overview_units(run: Runner, w: World) -> None:
    assert sorted({row["value"] for row in run()}) == ["fridge-a", "fridge-b", "fridge-c", "fridge-d"]
    assert [row["value"] for row in run(site="ward-3")] == ["fridge-c"]


@check(OVERVIEW, "panel", "${unit}")
def _overview_temperature_tile(run: Runner, w: World) -> None:
    expected = {"fridge-a": (9.6, w.now - 1 * M), "fridge-b": (5.2, w.now - 30 * S), "fridge-c": (-0.5, w.now - 20 * M)}
    sites = {"fridge-a": "main-pharmacy", "fridge-b": "main-pharmacy", "fridge-c": "ward-3"}
    for unit, (celsius, at) in expected.items():
        (row,) = run(unit=unit)  # the repeated tile of this unit
        assert row["celsius"] == celsius and row["time"] == at, (unit, row)
        assert (row["site"], row["unit"]) == (sites[unit], unit)  # labels for $tag_unit and the tile's link
    assert run(unit="fridge-d") == []  # last heard ten days ago: beyond the tile's 7 days ("no reading")


@check(OVERVIEW, "panel", "${unit} alerts")
def _overview_state_tile(run: Runner, w: World) -> None:
    assert [row["open alerts"] for row in run(unit="fridge-a")] == [3]  # excursion, bag expiring and expired
    assert [(row["site"], row["unit"]) for row in run(unit="fridge-c")] == [("ward-3", "fridge-c")]
    assert [row["open alerts"] for row in run(unit="fridge-c")] == [2]  # an acknowledged one still counts
    assert [row["open alerts"] for row in run(unit="fridge-d")] == [1]  # opened 9 days ago, still open
    assert run(unit="fridge-b") == []  # everything resolved: the tile shows its noValue, OK
    assert run(site="ward-3", unit="fridge-a") == []


@check(OVERVIEW, "panel", "Open alerts")
def _overview_open_alerts(run: Runner, w: World) -> None:
    rows = run()
    assert [(row["kind"], row["subject"]) for row in rows] == [
        ("temperature_high", "t-001"),
        ("sensor_offline", "t-003"),
        ("bag_expired", "B-4"),
        ("freezing", "t-003"),
        ("bag_expiring", "B-4"),
        ("sensor_offline", "t-004"),
    ]  # most recently changed first; resolved alerts (agitation, temperature_low) are gone
    first, acked = rows[0], rows[1]
    assert first["unit"] == "fridge-a" and first["state"] == "open"
    assert first["started_at"] == format_time(from_millis(w.now - 16 * M))
    assert first["acknowledged_by"] is None
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "j.doe"
    assert {row["site"] for row in run(site="ward-3")} == {"ward-3"}
    assert len(run(site="ward-3")) == 2


@check(OVERVIEW, "panel", "Diluted bags — time left")
def _overview_bags(run: Runner, w: World) -> None:
    rows = run()
    assert [row["bag"] for row in rows] == ["B-4", "B-1", "B-6", "B-2"]  # expired first, then by deadline
    assert [row["time"] for row in rows] == [w.now - 10 * M, w.now + 40 * M, w.now + 3 * H, w.now + 5 * H]
    assert rows[0]["unit"] == "fridge-a"
    assert rows[0]["diluted_at"] == format_time(from_millis(w.now - 8 * H - 10 * M))
    assert [row["bag"] for row in run(site="main-pharmacy")] == ["B-4", "B-1", "B-2"]


@check(OVERVIEW, "panel", "Sensors — last heard", "A")
def _overview_last_heard_temperature(run: Runner, w: World) -> None:
    rows = by(run(), "sensor")
    assert {sensor: row["time"] for sensor, row in rows.items()} == {
        "t-001": w.now - 1 * M,
        "t-002": w.now - 30 * S,
        "t-003": w.now - 20 * M,
        "t-004": w.now - 10 * D,  # silent for ten days, still listed (30 days)
    }
    assert rows["t-003"]["unit"] == "fridge-c" and rows["t-003"]["site"] == "ward-3"
    assert rows["t-003"]["reading"] == -0.5


@check(OVERVIEW, "panel", "Sensors — last heard", "B")
def _overview_last_heard_shake(run: Runner, w: World) -> None:
    rows = by(run(), "sensor")
    assert {sensor: row["time"] for sensor, row in rows.items()} == {"s-001": w.now - 1 * M, "s-002": w.now - 2 * M}
    assert run(site="ward-3") == []


# -- Cold chain — unit ----------------------------------------------------------------------

UNIT = "coldchain-unit"


@check(UNIT, "variable", "site", "query")
def _unit_sites(run: Runner, w: World) -> None:
    assert sorted(row["value"] for row in run()) == ["main-pharmacy", "ward-3"]


@check(UNIT, "variable", "unit", "query")
def _unit_units(run: Runner, w: World) -> None:
    assert sorted(row["value"] for row in run(site="main-pharmacy")) == ["fridge-a", "fridge-b", "fridge-d"]
    assert [row["value"] for row in run(site="ward-3")] == ["fridge-c"]


@check(UNIT, "variable", "sensor", "query")
def _unit_sensors(run: Runner, w: World) -> None:
    values = sorted({row["value"] for row in run(site="main-pharmacy", unit="fridge-a")})
    assert values == ["s-001", "t-001"]  # temperature and shake sensors of the unit


@check(UNIT, "panel", "Temperature")
@check(UNIT, "panel", "Shake peak_g")
def _unit_raw_tier_off(run: Runner, w: World) -> None:
    assert run(site="main-pharmacy", unit="fridge-a") == []  # 7 days: $__interval 10m, the rollups answer


@check(UNIT, "panel", "Temperature", "B")
def _unit_temperature(run: Runner, w: World) -> None:
    rows = run(site="main-pharmacy", unit="fridge-a")
    assert {row["sensor"] for row in rows} == {"t-001"}  # the shake sensor has no temperature
    means = [row["mean"] for row in rows if row["mean"] is not None]
    last_hour = [row["mean"] for row in rows if row["mean"] is not None and row["time"] >= w.now - H]
    assert max(means) == pytest.approx(9.6) and min(means) == pytest.approx(1.5)
    assert last_hour[-1] == pytest.approx(9.6)
    steps = {b["time"] - a["time"] for a, b in itertools.pairwise(rows)}
    assert steps == {10 * M}  # GROUP BY time($__interval): 7 days in 10-minute buckets, gaps as nulls
    assert any(row["mean"] is None for row in rows)
    only = run(site="main-pharmacy", unit="fridge-a", sensor=["s-001"])
    assert only == []


@check(UNIT, "panel", "Shake peak_g", "B")
def _unit_shake(run: Runner, w: World) -> None:
    rows = [row for row in run(site="main-pharmacy", unit="fridge-a") if row["max"] is not None]
    assert {row["sensor"] for row in rows} == {"s-001"}
    agitated = [row for row in rows if row["max"] >= 0.5]
    assert len(agitated) == 1 and agitated[0]["max"] == pytest.approx(0.7)
    assert agitated[0]["time"] <= w.now - 30 * M < agitated[0]["time"] + 10 * M


@check(UNIT, "panel", "Alert episodes")
def _unit_episodes(run: Runner, w: World) -> None:
    rows = run(site="main-pharmacy", unit="fridge-a")
    states: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        states.setdefault((row["kind"], row["subject"]), []).append(row["state"])
    assert states == {
        ("temperature_high", "t-001"): ["open"],
        ("agitation", "s-001"): ["open", "resolved"],
        ("bag_expiring", "B-4"): ["open"],
        ("bag_expired", "B-4"): ["open"],
    }
    fridge_b = run(site="main-pharmacy", unit="fridge-b")
    assert [row["state"] for row in fridge_b] == ["open", "acknowledged", "resolved"]  # 10-day-old one outside


@check(UNIT, "panel", "Daily min/max")
def _unit_daily(run: Runner, w: World) -> None:
    rows = run(site="main-pharmacy", unit="fridge-a")
    assert {row["sensor"] for row in rows} == {"t-001"}
    assert all(row["time"] % D == 0 for row in rows)  # UTC days
    assert min(row["min"] for row in rows) == 1.5
    assert max(row["max"] for row in rows) == 9.6
    two_days_ago = next(row for row in rows if row["time"] <= w.now - 2 * D < row["time"] + D)
    assert two_days_ago["min"] == 1.5


@check(UNIT, "annotation", "Alert transitions", "Anno")
def _unit_annotations(run: Runner, w: World) -> None:
    rows = run(site="main-pharmacy", unit="fridge-a")
    assert sorted((row["kind"], row["state"]) for row in rows) == [
        ("agitation", "open"),
        ("agitation", "resolved"),
        ("bag_expired", "open"),
        ("bag_expiring", "open"),
        ("temperature_high", "open"),
    ]
    assert all(row["message"] for row in rows)  # the text column


# -- Cold chain — alerts and audit ----------------------------------------------------------

ALERTS = "coldchain-alerts"


@check(ALERTS, "panel", "Alert history")
def _alerts_history(run: Runner, w: World) -> None:
    rows = run()
    assert len(rows) == 11  # every transition of the last 7 days; the 9- and 10-day-old ones are outside
    assert [row["time"] for row in rows] == sorted((row["time"] for row in rows), reverse=True)
    assert (rows[0]["kind"], rows[0]["state"]) == ("temperature_high", "open")
    dispositions = [row for row in rows if row["disposition"]]
    assert [(row["state"], row["acknowledged_by"], row["disposition"]) for row in dispositions] == [
        ("resolved", "a.smith", "quarantined"),
        ("acknowledged", "a.smith", "quarantined"),
    ]
    assert all(row["id"] for row in rows)


@check(ALERTS, "panel", "Acknowledgements and dispositions")
def _alerts_acks(run: Runner, w: World) -> None:
    rows = run()
    assert [(row["subject"], row["state"], row["acknowledged_by"]) for row in rows] == [
        ("t-003", "acknowledged", "j.doe"),
        ("t-002", "resolved", "a.smith"),
        ("t-002", "acknowledged", "a.smith"),
    ]
    assert rows[0]["note"] == "probe cable checked" and rows[0]["disposition"] is None
    assert rows[1]["disposition"] == "quarantined"


@check(ALERTS, "panel", "Notifications by channel and outcome")
def _alerts_notification_counts(run: Runner, w: World) -> None:
    counts = {(row["channel"], row["outcome"]): row["notifications"] for row in run()}
    assert counts == {
        ("email", "sent"): 2,  # the 8-day-old one is outside the range
        ("slack", "sent"): 1,
        ("webhook", "failed"): 1,
        ("webhook", "gave_up"): 1,
    }


@check(ALERTS, "panel", "Notifications")
def _alerts_notifications(run: Runner, w: World) -> None:
    rows = run()
    assert [(row["channel"], row["outcome"]) for row in rows] == [
        ("slack", "sent"),
        ("email", "sent"),
        ("webhook", "gave_up"),
        ("webhook", "failed"),
        ("email", "sent"),
    ]
    assert rows[3]["error"] == "HTTP 500" and rows[3]["kind"] == "freezing"
    assert rows[0]["tier"] == 1 and rows[0]["alert_id"] and rows[0]["target"] == "slack://on-call"
    assert (rows[0]["purpose"], rows[0]["attempt"]) == ("opened", 1)


@check(ALERTS, "panel", "Rejected messages by reason")
def _alerts_rejected_counts(run: Runner, w: World) -> None:
    counts = {row["reason"]: row["rejected"] for row in run()}
    assert counts == {"invalid_json": 3, "unknown_sensor": 2, "ts_too_old": 1}


@check(ALERTS, "panel", "Rejected messages")
def _alerts_rejected(run: Runner, w: World) -> None:
    rows = run()
    assert len(rows) == 6
    assert rows[0]["reason"] == "invalid_json" and rows[0]["time"] == w.now - 2 * M
    assert rows[0]["topic"] == "coldchain/sensors/t-001/temperature"
    assert rows[0]["detail"] == "invalid_json here" and rows[0]["payload"] == "{oops"
    assert rows[-1]["reason"] == "ts_too_old"


# -- the store's schema ---------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """The tag and field keys coldchain writes to one measurement."""

    tags: frozenset[str]
    fields: frozenset[str]


def store_schema() -> dict[str, Measurement]:
    """Every measurement the store writes, with its tag and field keys, as coldchain.store.points makes them."""
    records = EVERY_RECORD_TYPE
    assert {type(record) for record in records} == set(POINT_MAKERS), "a record type without a sample"
    assert {measurement_of(record) for record in records} >= {"rollup_5m", "rollup_1d"}
    schema: dict[str, Measurement] = {}
    for point in map(to_point, records):
        schema[point.measurement] = Measurement(frozenset(point.tag_dict()), frozenset(key for key, _ in point.fields))
    return schema


_FROM_LIST = re.compile(r'\bFROM\s+("[^"]+"(?:\s*,\s*"[^"]+")*)', re.IGNORECASE)
_AS_ALIAS = re.compile(r'\bAS\s+"[^"]*"', re.IGNORECASE)
_WITH_KEY = re.compile(r'\bWITH\s+KEY\s*=\s*"([^"]+)"', re.IGNORECASE)
_GROUP_BY = re.compile(r"\bGROUP\s+BY\s+(.*?)(?=\bORDER\b|\bLIMIT\b|\bSLIMIT\b|\bfill\b|$)", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]+)"')


def outermost(query: str) -> str:
    """``query`` without its parenthesised parts (subqueries, function arguments)."""
    while (stripped := re.sub(r"\([^()]*\)", "", query)) != query:
        query = stripped
    return query


def group_by_tags(query: str) -> set[str]:
    """The tags the outermost query groups by (``*``: every tag)."""
    found: set[str] = set()
    for clause in _GROUP_BY.findall(outermost(query)):
        found |= set(_QUOTED.findall(clause)) | ({"*"} if "*" in clause else set())
    return found


@dataclass(frozen=True)
class QueryNames:
    """What an InfluxQL query names: measurements, keys (fields or tags) and keys that must be tags."""

    measurements: frozenset[str]
    keys: frozenset[str]
    tags: frozenset[str]


def names_in(query: str) -> QueryNames:
    """The measurements (FROM), keys (aliases left out) and tag-only keys (GROUP BY, WITH KEY) of ``query``."""
    measurements = {name for match in _FROM_LIST.finditer(query) for name in _QUOTED.findall(match.group(1))}
    rest = _AS_ALIAS.sub("", _FROM_LIST.sub("", query))
    tags = set(_WITH_KEY.findall(query))
    for clause in _GROUP_BY.findall(query):
        tags |= set(_QUOTED.findall(clause))
    return QueryNames(frozenset(measurements), frozenset(_QUOTED.findall(rest)), frozenset(tags))


# -- the tests ------------------------------------------------------------------------------


def test_store_schema_covers_every_record_type() -> None:
    """The schema the checks use has every measurement points.py writes, optional fields included."""
    schema = store_schema()
    assert schema["notification"].fields >= {"purpose", "attempt", "error"}
    assert "reason" not in schema["notification"].fields | schema["notification"].tags
    assert schema["alert"].tags == {"kind", "severity", "site", "subject", "unit"}


@pytest.mark.parametrize("key", sorted(QUERIES))
def test_queries_name_only_stored_fields_and_tags(key: str) -> None:
    """Every measurement, field and tag a query names is one coldchain writes; GROUP BY and WITH KEY name tags."""
    schema = store_schema()
    names = names_in(QUERIES[key].query)
    assert names.measurements, f"{key}: no measurement found in the query"
    for measurement in sorted(names.measurements):
        assert measurement in schema, f"{key}: measurement {measurement} is never written"
        stored = schema[measurement]
        assert sorted(names.keys - stored.tags - stored.fields) == [], f"{key}: not in {measurement}"
        assert sorted(names.tags - stored.tags) == [], f"{key}: not tags of {measurement}"


_TAG_ALIAS = re.compile(r"\$tag_(\w+)|\[\[tag_(\w+)\]\]")


def test_tag_aliases_are_grouped_by() -> None:
    """An alias $tag_X (or [[tag_X]]) needs GROUP BY X in the same, outermost query, or Grafana renders it empty."""
    for uid, board in BOARDS.items():
        for item in panels_of(board):
            for target in item.get("targets", []):
                aliased = {a or b for a, b in _TAG_ALIAS.findall(target.get("alias", ""))}
                grouped = group_by_tags(target["query"])
                missing = set() if "*" in grouped else aliased - grouped
                assert not missing, f"{uid}/{item['title']}/{target['refId']}: no GROUP BY {sorted(missing)}"


def panel_named(uid: str, title: str) -> dict[str, Any]:
    return next(item for item in panels_of(BOARDS[uid]) if item["title"] == title)


def test_unit_tiles_link_to_their_unit() -> None:
    """Each repeated unit tile links to the unit dashboard with var-site and var-unit of its own series."""
    unit_variables = {variable["name"] for variable in BOARDS[UNIT_UID]["templating"]["list"]}
    tiles = [item for item in panels_of(BOARDS["coldchain-overview"]) if item.get("repeat") == "unit"]
    assert len(tiles) == 2
    for tile in tiles:
        (link,) = tile["fieldConfig"]["defaults"]["links"]
        url = urlsplit(link["url"])
        assert url.path == f"/d/{UNIT_UID}", tile["title"]
        params = {name: values for name, values in parse_qs(url.query).items() if name.startswith("var-")}
        assert params == {"var-site": ["${__field.labels.site}"], "var-unit": ["${__field.labels.unit}"]}
        assert {name.removeprefix("var-") for name in params} <= unit_variables
        for target in tile["targets"]:  # the labels exist: the series are grouped by both tags
            assert {"site", "unit"} <= group_by_tags(target["query"]), tile["title"]


def column_config(item: dict[str, Any], name: str) -> dict[str, Any]:
    """The field config Grafana gives the table column ``name``: defaults, then its byName overrides."""
    config = json.loads(json.dumps(item["fieldConfig"]["defaults"]))
    for override in item["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byName", "options": name}:
            for prop in override["properties"]:
                key = prop["id"]
                if key.startswith("custom."):
                    config.setdefault("custom", {})[key.removeprefix("custom.")] = prop["value"]
                else:
                    config[key] = prop["value"]
    return config


def test_daily_table_colours_only_the_temperatures() -> None:
    """Daily min/max: Min and Max are coloured by the band; the Day and Sensor columns are not coloured."""
    table = panel_named(UNIT_UID, "Daily min/max")
    for name in ("Day", "Sensor"):
        config = column_config(table, name)
        assert config["custom"]["cellOptions"] == {"type": "auto"}, name
        assert "thresholds" not in config and "color" not in config and "mappings" not in config, name
    assert column_config(table, "Day")["unit"] == "time:YYYY-MM-DD"
    for name in ("Min", "Max"):
        config = column_config(table, name)
        assert config["custom"]["cellOptions"] == {"type": "color-text"}, name
        assert (colour(config, -1.0), colour(config, 1.0), colour(config, 5.0), colour(config, 9.0)) == (
            "purple",
            "blue",
            "green",
            "red",
        )


def test_dashboards_show_utc() -> None:
    """The committed dashboards show UTC, the zone of InfluxDB's GROUP BY time(1d) days in Daily min/max."""
    assert {uid: board["timezone"] for uid, board in BOARDS.items()} == dict.fromkeys(BOARDS, "utc")
    (target,) = panel_named(UNIT_UID, "Daily min/max")["targets"]
    assert "GROUP BY time(1d)" in target["query"] and "tz(" not in target["query"]


@pytest.mark.integration
def test_a_site_zone_makes_daily_min_max_local_days(world: World) -> None:
    """Built for Europe/Berlin, the unit dashboard shows Berlin and its daily buckets start at Berlin midnights
    on a real influxd (tz() clause), holding that local day's extremes; the other dashboards stay UTC."""
    boards = json.loads(json.dumps(build_dashboards("Europe/Berlin")))
    assert {uid: board["timezone"] for uid, board in boards.items()} == {
        "coldchain-overview": "utc",
        "coldchain-unit": "Europe/Berlin",
        "coldchain-alerts": "utc",
    }
    board = boards[UNIT_UID]
    (panel,) = [p for p in panels_of(board) if p["title"] == "Daily min/max"]
    (target,) = panel["targets"]
    assert target["query"].endswith("tz('Europe/Berlin')") and "local day in Europe/Berlin" in panel["description"]
    ref = QueryRef(UNIT_UID, "panel", "Daily min/max", "A", target["query"], panel)
    runner = Runner(world, ref)
    runner.board = board
    rows = runner(site="main-pharmacy", unit="fridge-a")
    berlin = calendar("Europe/Berlin")
    assert rows and all(berlin.day(berlin.day_index(row["time"])).start_ms == row["time"] for row in rows)
    assert not all(row["time"] % D == 0 for row in rows)  # not UTC midnights
    utc_rows = Runner(world, QUERIES[f"{UNIT_UID}/panel/Daily min/max/A"])(site="main-pharmacy", unit="fridge-a")
    assert min(row["min"] for row in rows) == min(row["min"] for row in utc_rows)  # the same readings, regrouped


def test_variables_refresh_on_time_range_change() -> None:
    """Query variables refresh on time range change (2), so a wall screen's auto-refresh shows a new fridge."""
    for uid, board in BOARDS.items():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["refresh"] == 2, f"{uid}/{variable['name']}"


def test_outcome_colours_are_the_outcomes_written() -> None:
    """Notification outcomes are coloured exactly as NotificationOutcome lists them, in table and bars; gave_up red."""
    outcomes = set(get_args(NotificationOutcome))
    table = panel_named("coldchain-alerts", "Notifications")
    (column,) = [o for o in table["fieldConfig"]["overrides"] if o["matcher"] == {"id": "byName", "options": "outcome"}]
    mappings = next(p["value"] for p in column["properties"] if p["id"] == "mappings")
    colours = {value: result["color"] for mapping in mappings for value, result in mapping["options"].items()}
    assert set(colours) == outcomes
    assert colours["sent"] == "green" and colours["gave_up"] == "red"
    bars = panel_named("coldchain-alerts", "Notifications by channel and outcome")
    for outcome in sorted(outcomes):
        series = f"webhook {outcome}"  # alias $tag_channel $tag_outcome
        matched = [
            prop["value"]["fixedColor"]
            for override in bars["fieldConfig"]["overrides"]
            if override["matcher"]["id"] == "byRegexp" and re.fullmatch(override["matcher"]["options"], series)
            for prop in override["properties"]
            if prop["id"] == "color"
        ]
        assert matched == [colours[outcome]], series


def test_every_query_has_a_check() -> None:
    """Each InfluxQL query in dashboards/ has a check here, and each check a query (no stale ones)."""
    assert sorted(set(QUERIES) - set(CHECKS)) == [], "queries without a check"
    assert sorted(set(CHECKS) - set(QUERIES)) == [], "checks of queries no dashboard has"


@pytest.mark.integration
@pytest.mark.parametrize("key", sorted(QUERIES))
def test_query(key: str, world: World) -> None:
    """The query runs on a real influxd, interpolated as Grafana does, and returns what the panel needs."""
    assert key in CHECKS, f"{key} has no check in tests/test_dashboards.py"
    CHECKS[key](Runner(world, QUERIES[key]), world)


def test_committed_json_is_what_the_code_builds() -> None:
    """dashboards/*.json are exactly coldchain.dashboards' output (regenerate: python -m coldchain.dashboards)."""
    built = build_dashboards()
    assert sorted(BOARDS) == sorted(built)
    for uid, board in built.items():
        path = DASHBOARD_DIR / f"{uid}.json"
        assert path.read_text(encoding="utf-8") == render(board), f"{path} is stale"


def test_uids_and_titles_are_stable() -> None:
    """Three dashboards with fixed uids and titles; each file is named after its uid; panel titles unique."""
    assert {uid: board["title"] for uid, board in BOARDS.items()} == {
        "coldchain-overview": "Cold chain — overview",
        "coldchain-unit": "Cold chain — unit",
        "coldchain-alerts": "Cold chain — alerts and audit",
    }
    for board in BOARDS.values():
        assert board["id"] is None
        titles = [item["title"] for item in panels_of(board)]
        assert len(titles) == len(set(titles)), board["uid"]
        assert len({item["id"] for item in panels_of(board)}) == len(titles)


def datasource_refs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "datasource" in node:
            yield node["datasource"]
        for value in node.values():
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


def test_every_query_uses_the_provisioned_datasource() -> None:
    """Panels, targets, variables and annotations all name the InfluxDB datasource provisioning defines."""
    provisioned = {}
    for path in DATASOURCES_DIR.glob("*.y*ml"):
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]:
            provisioned[source["uid"]] = source
    assert provisioned[DATASOURCE_UID]["type"] == "influxdb"
    for board in BOARDS.values():
        refs = list(datasource_refs(board))
        assert refs, board["uid"]
        assert all(ref == {"type": "influxdb", "uid": DATASOURCE_UID} for ref in refs), board["uid"]
        for item in panels_of(board):
            for target in item.get("targets", []):
                assert target["rawQuery"] is True and target["resultFormat"] in ("time_series", "table")


def test_datasource_uid_can_be_swapped() -> None:
    """with_datasource rewrites every datasource reference (for a Grafana whose InfluxDB has another uid)."""
    board = with_datasource(BOARDS["coldchain-unit"], "other-influx")
    refs = list(datasource_refs(board))
    assert refs and all(ref == {"type": "influxdb", "uid": "other-influx"} for ref in refs)
    assert next(datasource_refs(BOARDS["coldchain-unit"]))["uid"] == DATASOURCE_UID  # the original untouched


def colour(field_config: dict[str, Any], value: float) -> str:
    """The colour Grafana gives ``value``: a matching range mapping (both ends included), else thresholds."""
    for mapping in field_config.get("mappings", []):
        options = mapping["options"]
        if mapping["type"] == "range" and options["from"] <= value <= options["to"]:
            return str(options["result"]["color"])
    steps = field_config["thresholds"]["steps"]
    chosen = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            chosen = step["color"]
    return str(chosen)


@pytest.mark.parametrize(
    ("celsius", "expected"),
    [
        (-5.0, "purple"),  # frozen
        (0.0, "purple"),  # at the freezing point is freezing
        (0.1, "blue"),  # cold, not frozen
        (1.9, "blue"),
        (2.0, "green"),  # 2.0 is in range
        (4.7, "green"),
        (8.0, "green"),  # 8.0 is in range
        (8.1, "red"),  # above the band
    ],
)
def test_tile_colours_follow_the_bands(celsius: float, expected: str) -> None:
    """The overview tile: purple at or below 0 °C, blue below 2, green 2 to 8 inclusive, red above 8."""
    tile = next(item for item in panels_of(BOARDS["coldchain-overview"]) if item["title"] == "${unit}")
    assert colour(tile["fieldConfig"]["defaults"], celsius) == expected


def test_overview_is_a_wall_display() -> None:
    """Refresh 30 s; the tiles repeat per unit; everything fits 1920x1080 (27 grid rows) without overlaps."""
    board = BOARDS["coldchain-overview"]
    assert board["refresh"] == "30s"
    repeated = [item for item in panels_of(board) if item.get("repeat")]
    assert {item["repeat"] for item in repeated} == {"unit"}
    cells: set[tuple[int, int]] = set()
    for item in panels_of(board):
        pos = item["gridPos"]
        assert pos["x"] + pos["w"] <= 24 and pos["y"] + pos["h"] <= 27, item["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{item['title']} overlaps another panel"
        cells |= area


def test_panels_say_what_they_show() -> None:
    """Every panel has a description; panels drawing the label's thresholds say they are constants."""
    for board in BOARDS.values():
        for item in panels_of(board):
            assert item["description"], item["title"]
            steps = item["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
            values = {step["value"] for step in steps}
            if values & {2.0, 8.0, 0.5}:
                assert "constants" in item["description"] or "constants" in board["description"], item["title"]


def test_interpolation_is_grafanas() -> None:
    """$timeFilter, $__interval and multi-value variables come out as Grafana's InfluxDB datasource writes them."""
    board = BOARDS["coldchain-unit"]
    holder: dict[str, Any] = {}
    query = 'SELECT x FROM m WHERE "sensor" =~ /^(${sensor})$/ AND "unit" =~ /^(${unit})$/ AND $timeFilter'
    text = interpolate(
        query + " GROUP BY time($__interval)",
        board,
        holder,
        {"site": ["s"], "unit": ["fridge.a"], "sensor": ["t-001", "t/2"]},
        now=7 * D,
    )
    assert text == (
        'SELECT x FROM m WHERE "sensor" =~ /^(t-001|t\\/2)$/ AND "unit" =~ /^(fridge\\.a)$/ '
        "AND time >= 0ms and time <= 604800000ms GROUP BY time(10m)"
    )
    assert grafana_interval(int(timedelta(hours=1).total_seconds() * 1000)) == "10s"
    assert grafana_interval(24 * H) == "1m"


# -- Grafana's own schema -------------------------------------------------------------------


def installed_schema_package() -> Path:
    """tests/grafana_schema/node_modules/@grafana/schema, which scripts/bootstrap.sh installs."""
    package = SCHEMA_DIR / "node_modules" / "@grafana" / "schema"
    assert package.is_dir(), "missing @grafana/schema: run scripts/bootstrap.sh (npm ci --prefix tests/grafana_schema)"
    return package


def typescript_module(board: dict[str, Any]) -> str:
    """A .ts file that compiles only if ``board`` is a @grafana/schema Dashboard (string enums as their values)."""
    return (
        "import type { Dashboard } from '@grafana/schema';\n"
        "import type { Json } from '../json';\n\n"
        f"export const dashboard: Json<Dashboard> = {json.dumps(board, indent=2, ensure_ascii=False)};\n"
    )


def tsc_errors(modules: dict[str, str]) -> dict[str, list[str]]:
    """Type-check the modules (name: source) with ``tsc --noEmit --strict``; the error lines of each."""
    assert shutil.which("npx"), "npx missing: run scripts/bootstrap.sh"
    installed_schema_package()
    check = Path(tempfile.mkdtemp(prefix=".check-", dir=SCHEMA_DIR))  # inside, so node_modules resolves
    try:
        for name, source in modules.items():
            (check / f"{name}.ts").write_text(source, encoding="utf-8")
        files = [str(check / f"{name}.ts") for name in modules]
        result = subprocess.run(
            ["npx", "--no-install", "tsc", "--noEmit", "--strict", *files],
            cwd=SCHEMA_DIR,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        shutil.rmtree(check)
    errors: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(?:.*/)?([^/(]+)\.ts\(\d+,\d+\): error ", line)
        assert match, f"unexpected tsc output: {line!r}"
        errors.setdefault(match.group(1), []).append(line)
    assert (result.returncode == 0) == (not errors), result.stdout + result.stderr
    return errors


@pytest.mark.grafana_schema
def test_dashboards_type_check_against_grafana_schema() -> None:
    """Every dashboard is a @grafana/schema 11.6.0 Dashboard for tsc --strict; one with a wrong field type is not."""
    broken = json.loads(json.dumps(BOARDS[UNIT_UID]))
    broken["panels"][0]["gridPos"]["h"] = "10"  # a string where the schema wants a number
    modules = {uid: typescript_module(board) for uid, board in BOARDS.items()}
    errors = tsc_errors({**modules, "broken": typescript_module(broken)})
    assert sorted(errors) == ["broken"], "\n".join(line for lines in errors.values() for line in lines)
    assert any("not assignable to type 'number'" in line for line in errors["broken"]), errors["broken"]


@pytest.mark.grafana_schema
def test_schema_version_and_package_match_the_grafana_deployed() -> None:
    """@grafana/schema is pinned to the compose file's Grafana; schemaVersion is what that version writes."""
    (deployed,) = re.findall(r"image:\s*grafana/grafana:(\S+)", COMPOSE_FILE.read_text(encoding="utf-8"))
    pinned = json.loads((SCHEMA_DIR / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    assert pinned["@grafana/schema"] == deployed
    package = installed_schema_package()
    assert json.loads((package / "package.json").read_text(encoding="utf-8"))["version"] == deployed
    source = (package / "dist" / "cjs" / "index.cjs").read_text(encoding="utf-8")
    (written,) = re.findall(r"const defaultDashboard\$1 = \{[^}]*?schemaVersion: (\d+)", source)
    assert int(written) == SCHEMA_VERSION
    assert {board["schemaVersion"] for board in BOARDS.values()} == {int(written)}


@pytest.mark.integration
@pytest.mark.parametrize("title", ["Temperature", "Shake peak_g"])
def test_rollup_tier_shows_what_the_raw_tier_shows(title: str, world: World) -> None:
    """At the same interval, a panel's rollup query (B) gives the raw query's (A) values, bucket by bucket."""
    answers = []
    for ref_id in ("A", "B"):
        ref = QUERIES[f"{UNIT_UID}/panel/{title}/{ref_id}"]
        untiered = re.sub(r" AND \$__interval_ms [<>]=? \d+", "", ref.query)
        assert untiered != ref.query, "the query has no tier condition"
        runner = Runner(world, QueryRef(ref.board, ref.where, ref.name, ref_id, untiered, ref.holder))
        rows = runner(site="main-pharmacy")
        answers.append({(row["sensor"], row["time"]): row.get("mean", row.get("max")) for row in rows})
    raw, rollup = answers
    assert raw.keys() == rollup.keys() and any(value is not None for value in raw.values())
    for key, value in raw.items():
        assert rollup[key] == (None if value is None else pytest.approx(value)), key


@pytest.mark.integration
def test_daily_table_from_rollups_equals_raw_extremes(world: World) -> None:
    """The daily min/max table read from rollup_5m has exactly the per-day extremes of the raw readings."""
    ref = QUERIES[f"{UNIT_UID}/panel/Daily min/max/A"]
    raw_query = (
        'SELECT min("celsius") AS "min", max("celsius") AS "max" FROM "temperature" WHERE "site" =~ /^(${site})$/ '
        'AND "unit" =~ /^(${unit})$/ AND "sensor" =~ /^(${sensor})$/ AND $timeFilter GROUP BY time(1d), "sensor" '
        "fill(none)"
    )
    answers = []
    for query in (ref.query, raw_query):
        runner = Runner(world, QueryRef(ref.board, ref.where, ref.name, "A", query, ref.holder))
        for unit in ("fridge-a", "fridge-b"):
            answers.append(
                {(r["sensor"], r["time"]): (r["min"], r["max"]) for r in runner(site="main-pharmacy", unit=unit)}
            )
    assert answers[:2] == answers[2:] and answers[0]


def test_scenario_rollups_are_the_keepers() -> None:
    """The rollups seeded for the dashboards' checks are computed by the same core functions the keeper uses."""
    lines = rollup_lines([temperature("t-9", "u", "s", 300_000, 9.0), temperature("t-9", "u", "s", 360_000, 5.0)])
    place = SensorPlace("t-9", "u", "s", Band("temperature", 2.0, 8.0))
    expected = rollup_of(
        [(from_millis(300_000), 9.0), (from_millis(360_000), 5.0)], from_millis(300_000), place, timedelta(minutes=10)
    )
    assert expected is not None and encode(expected) in lines
