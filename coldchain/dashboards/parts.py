"""The dashboards' building blocks: InfluxQL with Grafana's macros, panels, variables, columns and colours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from coldchain.core.records import NotificationOutcome

Json = dict[str, Any]
ResultFormat = Literal["time_series", "table"]

DATASOURCE_UID = "coldchain-influxdb"
"""Uid of the InfluxDB (InfluxQL) datasource the dashboards query."""


DATASOURCE: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}


OVERVIEW_UID = "coldchain-overview"


UNIT_UID = "coldchain-unit"


ALERTS_UID = "coldchain-alerts"


TAG = "coldchain"


SCHEMA_VERSION = 41
"""What Grafana 11.6 writes (@grafana/schema 11.6.0's defaultDashboard); tests/test_dashboards.py checks both."""


MIN_CELSIUS = 2.0


MAX_CELSIUS = 8.0


FREEZE_CELSIUS = 0.0


AGITATION_G = 0.5


OFFLINE_AFTER_MS = 15 * 60 * 1000


BAG_WARNING_MS = 60 * 60 * 1000


CONSTANTS_NOTE = (
    "Thresholds are the natalizumab label's constants (2-8 °C, freezing at 0 °C, agitation at 0.5 g): "
    "unit profiles live in coldchain's configuration, not in InfluxDB."
)


@dataclass(frozen=True)
class InfluxQL:
    """A raw InfluxQL target as Grafana's InfluxDB datasource stores it."""

    query: str
    ref_id: str = "A"
    result_format: ResultFormat = "time_series"
    alias: str = ""

    def to_json(self) -> Json:
        target: Json = {
            "refId": self.ref_id,
            "datasource": dict(DATASOURCE),
            "rawQuery": True,
            "query": self.query,
            "resultFormat": self.result_format,
        }
        if self.alias:
            target["alias"] = self.alias
        return target


ROLLUP_FROM_MS = 300_000
"""From this ``$__interval`` on (5 minutes), panels read ``rollup_5m`` instead of the raw readings."""
RAW_ONLY = f"$__interval_ms < {ROLLUP_FROM_MS}"
ROLLUPS_ONLY = f"$__interval_ms >= {ROLLUP_FROM_MS}"


def by_resolution(
    raw: str, rollup: str, alias: str = "", result_format: ResultFormat = "time_series"
) -> list[InfluxQL]:
    """Two targets of which exactly one answers: ``raw`` (A) while ``$__interval`` is under 5 minutes, ``rollup``
    (B, over ``rollup_5m``) from 5 minutes on. Each query ends its WHERE clause with ``{tier}``, replaced by a
    condition on ``$__interval_ms`` alone, which InfluxDB reduces to true or false before reading any shard,
    so the other query costs nothing."""
    return [
        InfluxQL(raw.replace("{tier}", RAW_ONLY), "A", result_format, alias),
        InfluxQL(rollup.replace("{tier}", ROLLUPS_ONLY), "B", result_format, alias),
    ]


def site_filter(var: str = "site") -> str:
    """A regex match on the ``site`` tag against a (multi-value) variable, as Grafana interpolates it."""
    return f'"site" =~ /^(${{{var}}})$/'


def tag_filter(tag: str, var: str | None = None) -> str:
    """``"tag" =~ /^(${var})$/``: one value, or several joined with ``|`` by Grafana."""
    return f'"{tag}" =~ /^(${{{var or tag}}})$/'


def grid(x: int, y: int, w: int, h: int) -> Json:
    return {"h": h, "w": w, "x": x, "y": y}


def thresholds(*steps: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def panel(
    panel_id: int,
    kind: str,
    title: str,
    description: str,
    position: Json,
    targets: list[InfluxQL],
    *,
    defaults: Json | None = None,
    overrides: list[Json] | None = None,
    options: Json | None = None,
    transformations: list[Json] | None = None,
    time_from: str | None = None,
    repeat: str | None = None,
    max_per_row: int = 8,
) -> Json:
    """One panel; ``time_from`` gives it its own relative range (``$timeFilter`` = the last ``time_from``)."""
    result: Json = {
        "id": panel_id,
        "type": kind,
        "title": title,
        "description": description,
        "gridPos": position,
        "datasource": dict(DATASOURCE),
        "targets": [target.to_json() for target in targets],
        "fieldConfig": {"defaults": defaults or {}, "overrides": overrides or []},
        "options": options or {},
    }
    if transformations:
        result["transformations"] = transformations
    if time_from:
        result["timeFrom"] = time_from
        result["hideTimeOverride"] = True
    if repeat:
        result["repeat"] = repeat
        result["repeatDirection"] = "h"
        result["maxPerRow"] = max_per_row
    return result


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool = False,
    include_all: bool = False,
    hide: int = 0,
) -> Json:
    """A template variable filled by an InfluxQL ``SHOW TAG VALUES`` (no ``definition``: not in Grafana's schema).

    Refreshed on each time range change (``refresh`` 2), which a wall screen's auto-refresh triggers, so a fridge
    added after the dashboard was opened gets its tile without a reload.
    """
    variable: Json = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": dict(DATASOURCE),
        "query": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": include_all,
        "options": [],
        "hide": hide,
        "regex": "",
        "skipUrlSync": False,
    }
    if include_all:  # the schema's VariableOption needs text and value: no "current" at all rather than {}
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Json],
    *,
    variables: list[Json] | None = None,
    annotations: list[Json] | None = None,
    time_from: str = "now-24h",
    refresh: str = "1m",
    timezone: str = "UTC",
) -> Json:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": False,
        "graphTooltip": 1,
        # UTC, not the browser's zone: the RFC 3339 times in alert and bag fields are UTC. Only the unit dashboard
        # takes a site's zone (``--timezone``), for its Daily min/max days: Grafana has one zone per dashboard.
        "timezone": "utc" if timezone == "UTC" else timezone,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m"]},
        "schemaVersion": SCHEMA_VERSION,
        "links": [
            {
                "title": "Cold chain",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "targetBlank": False,
                "icon": "external link",
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": variables or []},
        "annotations": {"list": annotations or []},
        "panels": panels,
    }


TEMPERATURE_BANDS = thresholds(("blue", None), ("green", MIN_CELSIUS), ("red", MAX_CELSIUS))
"""Above 8 °C red, 2-8 green, below 2 blue; freezing (≤ 0 °C) is a value mapping (thresholds are ≥)."""


TEMPERATURE_MAPPINGS: list[Json] = [
    # Grafana's range mappings include both ends, its thresholds only the lower one: 0.0 is purple and
    # 8.0 green, as the label says (2.0 and 8.0 °C are in range; at or below 0 °C is freezing).
    {"type": "range", "options": {"from": -100, "to": FREEZE_CELSIUS, "result": {"color": "purple", "index": 0}}},
    {"type": "range", "options": {"from": MIN_CELSIUS, "to": MAX_CELSIUS, "result": {"color": "green", "index": 1}}},
]


ALERT_STATE_MAPPINGS: list[Json] = [
    {
        "type": "value",
        "options": {
            "open": {"color": "red", "index": 0, "text": "open"},
            "acknowledged": {"color": "orange", "index": 1, "text": "acknowledged"},
            "resolved": {"color": "green", "index": 2, "text": "resolved"},
        },
    }
]


OUTCOME_COLOURS: dict[NotificationOutcome, str] = {"sent": "green", "failed": "orange", "gave_up": "red"}
"""The colour of each notification outcome the notifier writes: a failed attempt is retried, gave_up is final."""


def outcome_mappings() -> list[Json]:
    """Value mappings colouring a cell holding a notification outcome."""
    options = {
        outcome: {"color": colour, "index": index} for index, (outcome, colour) in enumerate(OUTCOME_COLOURS.items())
    }
    return [{"type": "value", "options": options}]


def outcome_series_overrides() -> list[Json]:
    """Fixed colours for series named ``<channel> <outcome>`` (alias ``$tag_channel $tag_outcome``)."""
    return [
        {
            "matcher": {"id": "byRegexp", "options": f"^.* {outcome}$"},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
        }
        for outcome, colour in OUTCOME_COLOURS.items()
    ]


def latest_alert_states(where: str = "") -> str:
    """Subquery: the newest point of each alert series in the range, i.e. the current state of each alert.

    A series is (kind, severity, site, subject, unit); the engine keeps at most one episode of a kind per
    subject open, so the newest transition of a series is the state of its latest episode.
    """
    condition = f"{where} AND " if where else ""
    return f'SELECT * FROM "alert" WHERE {condition}$timeFilter GROUP BY * ORDER BY time DESC LIMIT 1'


def column(name: str, *properties: tuple[str, Any]) -> Json:
    """A field override of the table column ``name``: its (property id, value) pairs."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties],
    }


def from_now_column(name: str) -> Json:
    """A table column of times shown as "x minutes ago" / "in x minutes"."""
    return column(name, ("unit", "dateTimeFromNow"))


def span_column(name: str, steps: Json) -> Json:
    """A table column of durations in ms, its cell coloured by ``steps``."""
    return column(
        name,
        ("unit", "ms"),
        ("decimals", 0),
        ("color", {"mode": "thresholds"}),
        ("thresholds", steps),
        ("custom.cellOptions", {"type": "color-background"}),
    )


def temperature_column(name: str) -> Json:
    """A table column of temperatures, its text coloured by the band (and purple at or below freezing)."""
    return column(
        name,
        ("unit", "celsius"),
        ("decimals", 1),
        ("color", {"mode": "thresholds"}),
        ("thresholds", TEMPERATURE_BANDS),
        ("mappings", TEMPERATURE_MAPPINGS),
        ("custom.cellOptions", {"type": "color-text"}),
    )


def age_since_to(field: str, alias: str, *, reverse: bool = False) -> Json:
    """Grafana transformation: ``$__to - field`` (or ``field - $__to``) in milliseconds, as a new column."""
    left: Json = {"fixed": "${__to}"}
    right: Json = {"matcher": {"id": "byName", "options": field}}
    if reverse:
        left, right = right, left
    return {
        "id": "calculateField",
        "options": {"mode": "binary", "alias": alias, "binary": {"left": left, "operator": "-", "right": right}},
    }


def organize(rename: dict[str, str], hide: tuple[str, ...] = (), order: tuple[str, ...] = ()) -> Json:
    return {
        "id": "organize",
        "options": {
            "renameByName": rename,
            "excludeByName": dict.fromkeys(hide, True),
            "indexByName": {name: index for index, name in enumerate(order)},
        },
    }


def table_options(sort_by: str | None = None, desc: bool = False) -> Json:
    options: Json = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return options
