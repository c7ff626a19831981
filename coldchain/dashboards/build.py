"""The Grafana dashboards, built from code and committed as JSON under ``dashboards/``.

Three dashboards over coldchain's InfluxDB schema, every query raw InfluxQL:

- ``coldchain-overview`` "Cold chain — overview": the pharmacy's wall screen (1920x1080, refresh 30 s);
- ``coldchain-unit`` "Cold chain — unit": one fridge's temperatures, shakes, alerts and daily extremes;
- ``coldchain-alerts`` "Cold chain — alerts and audit": alert history, acknowledgements, notifications,
  rejected messages.

Every panel reads the datasource ``DATASOURCE_UID``, which ``deploy/grafana/provisioning`` defines (and
``coldchain dashboards push --datasource-uid`` rewrites for a Grafana whose InfluxDB has another uid).
Uids are fixed, so provisioning, pushes and links always address the same dashboards.

The thresholds drawn (2 and 8 °C, the freezing line at 0 °C, agitation at 0.5 g) are the natalizumab
label's: unit profiles live in coldchain's TOML configuration, not in InfluxDB, so the panels use these
constants and their descriptions say so.

Write the JSON files with ``python -m coldchain.dashboards [DIR]`` (default ``dashboards``);
``tests/test_dashboards.py`` fails when the committed files differ from what this module builds.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from coldchain.core.records import NotificationOutcome

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

Json = dict[str, Any]
ResultFormat = Literal["time_series", "table"]


# -- the InfluxQL query type ----------------------------------------------------------------


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


def site_filter(var: str = "site") -> str:
    """A regex match on the ``site`` tag against a (multi-value) variable, as Grafana interpolates it."""
    return f'"site" =~ /^(${{{var}}})$/'


def tag_filter(tag: str, var: str | None = None) -> str:
    """``"tag" =~ /^(${var})$/``: one value, or several joined with ``|`` by Grafana."""
    return f'"{tag}" =~ /^(${{{var or tag}}})$/'


# -- panels and variables -------------------------------------------------------------------


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
) -> Json:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": False,
        "graphTooltip": 1,
        # UTC, not the browser's zone: InfluxDB's GROUP BY time(1d) days (Daily min/max) are UTC days, and so are
        # the RFC 3339 times in alert and bag fields; every time shown is then in the zone the data is in.
        "timezone": "utc",
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


# -- shared pieces --------------------------------------------------------------------------

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


UNIT_TAGS = '"site", "unit"'
"""GROUP BY of a unit's tile: the series carry both tags, for the ``$tag_unit`` alias and the tile's link."""


def unit_dashboard_link() -> Json:
    """Data link from a unit's tile to the unit dashboard on the tile's own site and unit.

    The values are the labels of the tile's series (``GROUP BY UNIT_TAGS``), not the overview's variables: those
    hold every selected site. Grafana percent-encodes variables in data links. The unit dashboard opens on its own
    default range (7 days), whatever the wall screen shows.
    """
    query = "var-site=${__field.labels.site}&var-unit=${__field.labels.unit}"
    return {"title": "Open ${__field.labels.unit}", "url": f"/d/{UNIT_UID}?{query}", "targetBlank": False}


# -- Cold chain — overview ------------------------------------------------------------------


def overview() -> Json:
    """The wall screen: a tile per unit, open alerts, diluted bags, sensors' silence."""
    site = site_filter()
    unit = tag_filter("unit")
    temperature_tile = panel(
        1,
        "stat",
        "${unit}",
        "Last temperature reading of the unit (any of its sensors) in the last 7 days: purple at or below "
        "0 °C (freezing), blue below 2 °C, green 2-8 °C, red above 8 °C. One tile per unit (repeated over "
        f"the hidden variable unit); click it to open the unit's dashboard. {CONSTANTS_NOTE}",
        grid(0, 0, 24, 6),
        [
            InfluxQL(
                f'SELECT last("celsius") AS "celsius" FROM "temperature" WHERE {site} AND {unit} AND $timeFilter '
                f"GROUP BY {UNIT_TAGS}",
                alias="$tag_unit",
            )
        ],
        defaults={
            "unit": "celsius",
            "decimals": 1,
            "color": {"mode": "thresholds"},
            "thresholds": TEMPERATURE_BANDS,
            "mappings": TEMPERATURE_MAPPINGS,
            "noValue": "no reading in 7 days",
            "links": [unit_dashboard_link()],
        },
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
            "justifyMode": "center",
            "orientation": "auto",
            "wideLayout": True,
        },
        time_from="7d",
        repeat="unit",
    )
    state_tile = panel(
        2,
        "stat",
        "${unit} alerts",
        "Alerts of the unit that are not resolved (open or acknowledged), by their newest transition in the "
        "last 90 days; OK when there are none. Details in the table Open alerts; click the count to open the "
        "unit's dashboard.",
        grid(0, 6, 24, 3),
        [
            InfluxQL(
                'SELECT count("state") AS "open alerts" FROM ('
                + latest_alert_states(f"{site} AND {unit}")
                + f") WHERE \"state\" != 'resolved' GROUP BY {UNIT_TAGS} ORDER BY time DESC",
                alias="$tag_unit",
            )
        ],
        defaults={
            "unit": "suffix: open",
            "decimals": 0,
            "color": {"mode": "thresholds"},
            "thresholds": thresholds(("green", None), ("red", 1)),
            "noValue": "OK",
            "links": [unit_dashboard_link()],
        },
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
            "justifyMode": "center",
            "orientation": "auto",
        },
        time_from="90d",
        repeat="unit",
    )
    open_alerts = panel(
        3,
        "table",
        "Open alerts",
        "Every alert whose newest transition in the last 90 days is open or acknowledged, the most recently "
        "changed first: kind, unit, since (the start of the excursion or event), who acknowledged it.",
        grid(0, 9, 14, 9),
        [
            InfluxQL(
                'SELECT "kind", "severity", "site", "unit", "subject", "state", "started_at", "acknowledged_by", '
                '"message" FROM (' + latest_alert_states(site) + ") WHERE \"state\" != 'resolved' ORDER BY time DESC",
                result_format="table",
            )
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "State"},
                "properties": [
                    {"id": "mappings", "value": ALERT_STATE_MAPPINGS},
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                ],
            },
            {
                "matcher": {"id": "byName", "options": "Severity"},
                "properties": [
                    {
                        "id": "mappings",
                        "value": [
                            {
                                "type": "value",
                                "options": {
                                    "critical": {"color": "red", "index": 0},
                                    "warning": {"color": "orange", "index": 1},
                                },
                            }
                        ],
                    },
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            },
        ],
        options=table_options(),
        transformations=[
            {
                "id": "convertFieldType",
                "options": {"conversions": [{"targetField": "started_at", "destinationType": "time"}]},
            },
            organize(
                {
                    "Time": "Last change",
                    "kind": "Kind",
                    "severity": "Severity",
                    "site": "Site",
                    "unit": "Unit",
                    "subject": "Sensor or bag",
                    "state": "State",
                    "started_at": "Since",
                    "acknowledged_by": "Acknowledged by",
                    "message": "Message",
                },
                order=(
                    "kind",
                    "unit",
                    "started_at",
                    "acknowledged_by",
                    "state",
                    "subject",
                    "severity",
                    "site",
                    "message",
                    "Time",
                ),
            ),
        ],
        time_from="90d",
    )
    bags = panel(
        4,
        "table",
        "Diluted bags — time left",
        "Diluted bags whose timer runs (not infusion-completed nor discarded), the most urgent first: each "
        "row's time is the bag's deadline (dilution + use within, from the unit's profile), written by the "
        "rules worker in measurement bag_timer. Red: expired; orange: less than 1 h left.",
        grid(14, 9, 10, 9),
        [
            InfluxQL(
                'SELECT "bag", "unit", "site", "diluted_at" FROM "bag_timer" '
                f"WHERE \"state\" = 'running' AND {site} AND time > now() - 30d AND time < now() + 30d "
                "ORDER BY time ASC",
                result_format="table",
            )
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
        overrides=[
            from_now_column("Deadline"),
            span_column("Time left", thresholds(("red", None), ("orange", 0), ("green", BAG_WARNING_MS))),
        ],
        options=table_options(),
        transformations=[
            age_since_to("Time", "Time left", reverse=True),
            {
                "id": "convertFieldType",
                "options": {"conversions": [{"targetField": "diluted_at", "destinationType": "time"}]},
            },
            organize(
                {"Time": "Deadline", "bag": "Bag", "unit": "Unit", "site": "Site", "diluted_at": "Diluted"},
                order=("bag", "unit", "Time left", "Time", "diluted_at", "site"),
            ),
        ],
    )
    last_heard = panel(
        5,
        "table",
        "Sensors — last heard",
        "Each sensor's last reading in the last 30 days, the longest silent first; 'Silent for' is the "
        "time since (orange from 5 min, red from 15 min, the default offline_after). A sensor silent for "
        "more than 30 days is not listed.",
        grid(0, 18, 24, 9),
        [
            InfluxQL(
                f'SELECT last("celsius") AS "reading" FROM "temperature" WHERE {site} AND $timeFilter '
                'GROUP BY "site", "unit", "sensor"',
                ref_id="A",
                result_format="table",
            ),
            InfluxQL(
                f'SELECT last("peak_g") AS "reading" FROM "shake" WHERE {site} AND $timeFilter '
                'GROUP BY "site", "unit", "sensor"',
                ref_id="B",
                result_format="table",
            ),
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
        overrides=[
            from_now_column("Last reading"),
            span_column(
                "Silent for", thresholds(("green", None), ("orange", 5 * 60 * 1000), ("red", OFFLINE_AFTER_MS))
            ),
        ],
        options=table_options("Silent for", desc=True),
        transformations=[
            {"id": "merge", "options": {}},
            age_since_to("Time", "Silent for"),
            organize(
                {"Time": "Last reading", "sensor": "Sensor", "unit": "Unit", "site": "Site", "reading": "Value"},
                order=("sensor", "unit", "Silent for", "Time", "reading", "site"),
            ),
        ],
        time_from="30d",
    )
    return dashboard(
        OVERVIEW_UID,
        "Cold chain — overview",
        "Wall display (1920x1080, refresh 30 s): each unit's temperature and alert state, open alerts, "
        f"diluted bags with time left, sensors' silence. {CONSTANTS_NOTE}",
        [temperature_tile, state_tile, open_alerts, bags, last_heard],
        variables=[
            query_variable(
                "site", "Site", 'SHOW TAG VALUES FROM "temperature" WITH KEY = "site"', multi=True, include_all=True
            ),
            query_variable(
                "unit",
                "Unit",
                f'SHOW TAG VALUES FROM "temperature" WITH KEY = "unit" WHERE {site}',
                multi=True,
                include_all=True,
                hide=2,
            ),
        ],
        time_from="now-24h",
        refresh="30s",
    )


# -- Cold chain — unit ----------------------------------------------------------------------


def unit_dashboard() -> Json:
    """One unit: temperatures against the band, shakes against the threshold, alert episodes, daily extremes."""
    where = f"{tag_filter('site')} AND {tag_filter('unit')}"
    sensors = f"{where} AND {tag_filter('sensor')}"
    temperature = panel(
        1,
        "timeseries",
        "Temperature",
        "Mean temperature per interval of each selected sensor, against the 2-8 °C band and the freezing line "
        f"(0 °C); gaps are silences. {CONSTANTS_NOTE}",
        grid(0, 0, 24, 10),
        [
            InfluxQL(
                f'SELECT mean("celsius") FROM "temperature" WHERE {sensors} AND $timeFilter '
                'GROUP BY time($__interval), "sensor" fill(null)',
                alias="$tag_sensor",
            )
        ],
        defaults={
            "unit": "celsius",
            "decimals": 1,
            "color": {"mode": "palette-classic"},
            "thresholds": thresholds(
                ("purple", None), ("blue", FREEZE_CELSIUS), ("green", MIN_CELSIUS), ("red", MAX_CELSIUS)
            ),
            "custom": {
                "drawStyle": "line",
                "lineWidth": 2,
                "fillOpacity": 0,
                "showPoints": "never",
                "spanNulls": False,
                "thresholdsStyle": {"mode": "line+area"},
            },
        },
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
    )
    shake = panel(
        2,
        "timeseries",
        "Shake peak_g",
        "Highest peak acceleration (g, gravity removed) per interval of each selected shake sensor, against "
        f"the agitation threshold 0.5 g. {CONSTANTS_NOTE}",
        grid(0, 10, 24, 7),
        [
            InfluxQL(
                f'SELECT max("peak_g") FROM "shake" WHERE {sensors} AND $timeFilter '
                'GROUP BY time($__interval), "sensor" fill(null)',
                alias="$tag_sensor",
            )
        ],
        defaults={
            "unit": "none",
            "decimals": 2,
            "min": 0,
            "color": {"mode": "palette-classic"},
            "thresholds": thresholds(("green", None), ("red", AGITATION_G)),
            "custom": {
                "drawStyle": "bars",
                "fillOpacity": 60,
                "lineWidth": 1,
                "showPoints": "never",
                "thresholdsStyle": {"mode": "line+area"},
            },
        },
        options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
    )
    episodes = panel(
        3,
        "state-timeline",
        "Alert episodes",
        "Each alert of the unit (kind and sensor or bag) over time: red open, orange acknowledged, green "
        "resolved. An episode opened before the range shows from its next transition.",
        grid(0, 17, 24, 6),
        [
            InfluxQL(
                f'SELECT "state" FROM "alert" WHERE {where} AND $timeFilter GROUP BY "kind", "subject"',
                alias="$tag_kind $tag_subject",
            )
        ],
        defaults={"color": {"mode": "thresholds"}, "mappings": ALERT_STATE_MAPPINGS},
        options={"mergeValues": True, "showValue": "auto", "rowHeight": 0.8, "alignValue": "left"},
    )
    daily = panel(
        4,
        "table",
        "Daily min/max",
        "Lowest and highest reading of each selected temperature sensor per UTC day (the dashboard shows UTC); "
        f"Min and Max coloured by band. {CONSTANTS_NOTE}",
        grid(0, 23, 24, 8),
        [
            InfluxQL(
                f'SELECT min("celsius") AS "min", max("celsius") AS "max" FROM "temperature" WHERE {sensors} '
                'AND $timeFilter GROUP BY time(1d), "sensor" fill(none)',
                result_format="table",
            )
        ],
        # the band colours the value columns only: in the defaults it coloured the Day column too
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
        overrides=[column("Day", ("unit", "time:YYYY-MM-DD")), temperature_column("Min"), temperature_column("Max")],
        options=table_options("Day", desc=True),
        transformations=[organize({"Time": "Day", "sensor": "Sensor", "min": "Min", "max": "Max"})],
    )
    return dashboard(
        UNIT_UID,
        "Cold chain — unit",
        f"One unit: temperature, shakes, alert episodes (also as annotations), daily min/max. {CONSTANTS_NOTE}",
        [temperature, shake, episodes, daily],
        variables=[
            query_variable("site", "Site", 'SHOW TAG VALUES FROM "temperature" WITH KEY = "site"'),
            query_variable(
                "unit", "Unit", f'SHOW TAG VALUES FROM "temperature" WITH KEY = "unit" WHERE {tag_filter("site")}'
            ),
            query_variable(
                "sensor",
                "Sensor",
                f'SHOW TAG VALUES FROM "temperature", "shake" WITH KEY = "sensor" WHERE {where}',
                multi=True,
                include_all=True,
            ),
        ],
        annotations=[
            {
                "name": "Alert transitions",
                "datasource": dict(DATASOURCE),
                "enable": True,
                "hide": False,
                "iconColor": "red",
                "target": {
                    "refId": "Anno",
                    "datasource": dict(DATASOURCE),
                    "rawQuery": True,
                    "fromAnnotations": True,
                    "query": f'SELECT "message", "kind", "state" FROM "alert" WHERE {where} AND $timeFilter',
                    "textColumn": "message",
                    "tagsColumn": "kind,state",
                    "titleColumn": "",
                    "timeEndColumn": "",
                },
            }
        ],
        time_from="now-7d",
    )


# -- Cold chain — alerts and audit ----------------------------------------------------------


def alerts_dashboard() -> Json:
    """The audit view: every alert transition, acknowledgements, notifications, rejected messages."""
    history = panel(
        1,
        "table",
        "Alert history",
        "Every stored alert transition (opened, acknowledged, resolved) in the range, newest first, with the "
        "acknowledgement, note and disposition it carries.",
        grid(0, 0, 24, 10),
        [
            InfluxQL(
                'SELECT "kind", "severity", "site", "unit", "subject", "state", "id", "started_at", "resolved_at", '
                '"acknowledged_by", "note", "disposition", "value", "message" FROM "alert" WHERE $timeFilter '
                "ORDER BY time DESC LIMIT 2000",
                result_format="table",
            )
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "state"},
                "properties": [
                    {"id": "mappings", "value": ALERT_STATE_MAPPINGS},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            }
        ],
        options=table_options(),
    )
    acks = panel(
        2,
        "table",
        "Acknowledgements and dispositions",
        "Alert transitions that carry an acknowledgement: who, their note and the stock's disposition "
        "(quarantined, released, discarded). A resolved alert keeps its acknowledgement, so an episode may "
        "appear once per later transition.",
        grid(0, 10, 24, 8),
        [
            InfluxQL(
                'SELECT "kind", "unit", "subject", "state", "acknowledged_by", "disposition", "note", "id" '
                'FROM "alert" WHERE "acknowledged_by" =~ /./ AND $timeFilter ORDER BY time DESC LIMIT 1000',
                result_format="table",
            )
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}},
        options=table_options(),
    )
    notifications_by_outcome = panel(
        3,
        "bargauge",
        "Notifications by channel and outcome",
        "Notifications in the range per channel (email, slack, webhook, …) and outcome: green sent, orange "
        "failed (to be retried), red gave_up (no more attempts).",
        grid(0, 18, 8, 8),
        [
            InfluxQL(
                'SELECT count("alert_id") AS "notifications" FROM "notification" WHERE $timeFilter '
                'GROUP BY "channel", "outcome"',
                alias="$tag_channel $tag_outcome",
            )
        ],
        defaults={"decimals": 0, "min": 0, "color": {"mode": "continuous-GrYlRd"}},
        overrides=outcome_series_overrides(),
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
        },
    )
    notifications = panel(
        4,
        "table",
        "Notifications",
        "Every notification attempt, newest first: channel, outcome, the alert, target, what the notice was "
        "for (purpose), escalation tier, attempt number (from 1 per notice) and how it failed.",
        grid(8, 18, 16, 8),
        [
            InfluxQL(
                'SELECT "channel", "outcome", "kind", "alert_id", "target", "purpose", "tier", "attempt", "error" '
                'FROM "notification" WHERE $timeFilter ORDER BY time DESC LIMIT 1000',
                result_format="table",
            )
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "outcome"},
                "properties": [
                    {"id": "mappings", "value": outcome_mappings()},
                    {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                ],
            }
        ],
        options=table_options(),
    )
    rejected_by_reason = panel(
        5,
        "bargauge",
        "Rejected messages by reason",
        "Messages ingest rejected in the range, per reason (invalid_json, unknown_sensor, store_rejected, …).",
        grid(0, 26, 8, 9),
        [
            InfluxQL(
                'SELECT count("topic") AS "rejected" FROM "rejected" WHERE $timeFilter GROUP BY "reason"',
                alias="$tag_reason",
            )
        ],
        defaults={"decimals": 0, "min": 0, "color": {"mode": "fixed", "fixedColor": "orange"}},
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "orientation": "horizontal",
            "displayMode": "basic",
            "showUnfilled": True,
        },
    )
    rejected = panel(
        6,
        "table",
        "Rejected messages",
        "The latest rejected messages: reason, topic, what was wrong, the first 1 KiB of the payload.",
        grid(8, 26, 16, 9),
        [
            InfluxQL(
                'SELECT "reason", "topic", "detail", "payload" FROM "rejected" WHERE $timeFilter '
                "ORDER BY time DESC LIMIT 500",
                result_format="table",
            )
        ],
        defaults={"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}},
        options=table_options(),
    )
    return dashboard(
        ALERTS_UID,
        "Cold chain — alerts and audit",
        "Alert history with acknowledgements and dispositions, notifications sent, messages rejected by reason.",
        [history, acks, notifications_by_outcome, notifications, rejected_by_reason, rejected],
        time_from="now-7d",
    )


# -- all of them ----------------------------------------------------------------------------


def build_dashboards() -> dict[str, Json]:
    """Every dashboard by uid."""
    boards = [overview(), unit_dashboard(), alerts_dashboard()]
    return {board["uid"]: board for board in boards}


def render(board: Json) -> str:
    """A dashboard as the committed file's text (stable: 2-space indent, key order as built, final newline)."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def file_name(uid: str) -> str:
    return f"{uid}.json"


def write_dashboards(directory: Path) -> list[Path]:
    """Write every dashboard as ``<uid>.json`` into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, board in build_dashboards().items():
        path = directory / file_name(uid)
        path.write_text(render(board), encoding="utf-8")
        written.append(path)
    return written


def with_datasource(board: Json, uid: str) -> Json:
    """A copy of ``board`` whose InfluxDB datasource references name ``uid``."""

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("type") == DATASOURCE["type"] and node.get("uid") == DATASOURCE_UID and len(node) == 2:
                return {"type": DATASOURCE["type"], "uid": uid}
            return {key: swap(value) for key, value in node.items()}
        if isinstance(node, list):
            return [swap(item) for item in node]
        return node

    result: Json = swap(board)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path("dashboards")
    for path in write_dashboards(directory):
        print(path)
    return 0


