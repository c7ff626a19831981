"""The three dashboards: overview (a wall screen of units), a unit's detail, and alerts with their notifications."""

from __future__ import annotations

from coldchain.dashboards.parts import (
    AGITATION_G,
    ALERT_STATE_MAPPINGS,
    ALERTS_UID,
    BAG_WARNING_MS,
    CONSTANTS_NOTE,
    DATASOURCE,
    FREEZE_CELSIUS,
    MAX_CELSIUS,
    MIN_CELSIUS,
    OFFLINE_AFTER_MS,
    OVERVIEW_UID,
    TEMPERATURE_BANDS,
    TEMPERATURE_MAPPINGS,
    UNIT_UID,
    InfluxQL,
    Json,
    age_since_to,
    by_resolution,
    column,
    dashboard,
    from_now_column,
    grid,
    latest_alert_states,
    organize,
    outcome_mappings,
    outcome_series_overrides,
    panel,
    query_variable,
    site_filter,
    span_column,
    table_options,
    tag_filter,
    temperature_column,
    thresholds,
)

UNIT_TAGS = '"site", "unit"'
"""GROUP BY of a unit's tile: the series carry both tags, for the ``$tag_unit`` alias and the tile's link."""


LAST_VALUE = {"calcs": ["lastNotNull"], "fields": "", "values": False}
TILE_OPTIONS = {
    "reduceOptions": LAST_VALUE,
    "colorMode": "background",
    "graphMode": "none",
    "textMode": "value",
    "justifyMode": "center",
    "orientation": "auto",
}
"""A stat tile: the last value, its background coloured by the thresholds."""
BAR_OPTIONS = {"reduceOptions": LAST_VALUE, "orientation": "horizontal", "displayMode": "basic", "showUnfilled": True}
"""A bar gauge of counts per series."""

def unit_dashboard_link() -> Json:
    """Data link from a unit's tile to the unit dashboard on the tile's own site and unit.

    The values are the labels of the tile's series (``GROUP BY UNIT_TAGS``), not the overview's variables: those
    hold every selected site. Grafana percent-encodes variables in data links. The unit dashboard opens on its own
    default range (7 days), whatever the wall screen shows.
    """
    query = "var-site=${__field.labels.site}&var-unit=${__field.labels.unit}"
    return {"title": "Open ${__field.labels.unit}", "url": f"/d/{UNIT_UID}?{query}", "targetBlank": False}


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
        options={**TILE_OPTIONS, "wideLayout": True},
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
        options=TILE_OPTIONS,
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


def day_groups(timezone: str) -> str:
    """``GROUP BY time(1d)`` of the site's local days: InfluxQL's ``tz()`` clause (1.6 has it) unless UTC."""
    return "" if timezone == "UTC" else f" tz('{timezone}')"


def unit_dashboard(timezone: str = "UTC") -> Json:
    """One unit: temperatures against the band, shakes against the threshold, alert episodes, daily extremes.

    ``timezone`` (a site's IANA zone) is the dashboard's zone and the zone of Daily min/max's days.
    """
    zone_words = "UTC day (the dashboard shows UTC)" if timezone == "UTC" else f"local day in {timezone}"
    where = f"{tag_filter('site')} AND {tag_filter('unit')}"
    sensors = f"{where} AND {tag_filter('sensor')}"
    temperature = panel(
        1,
        "timeseries",
        "Temperature",
        "Mean temperature per interval of each selected sensor, against the 2-8 °C band and the freezing line "
        f"(0 °C); gaps are silences. Intervals of 5 minutes and more read the 5-minute rollups. {CONSTANTS_NOTE}",
        grid(0, 0, 24, 10),
        by_resolution(
            f'SELECT mean("celsius") FROM "temperature" WHERE {sensors} AND $timeFilter AND {{tier}} '
            'GROUP BY time($__interval), "sensor" fill(null)',
            f'SELECT sum("sum") / sum("count") AS "mean" FROM "rollup_5m" WHERE {sensors} AND "kind" = \'temperature\' '
            'AND $timeFilter AND {tier} GROUP BY time($__interval), "sensor" fill(null)',
            alias="$tag_sensor",
        ),
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
        f"the agitation threshold 0.5 g. Intervals of 5 minutes and more read the 5-minute rollups. {CONSTANTS_NOTE}",
        grid(0, 10, 24, 7),
        by_resolution(
            f'SELECT max("peak_g") FROM "shake" WHERE {sensors} AND $timeFilter AND {{tier}} '
            'GROUP BY time($__interval), "sensor" fill(null)',
            f'SELECT max("max") AS "max" FROM "rollup_5m" WHERE {sensors} AND "kind" = \'shake\' '
            'AND $timeFilter AND {tier} GROUP BY time($__interval), "sensor" fill(null)',
            alias="$tag_sensor",
        ),
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
        f"Lowest and highest reading of each selected temperature sensor per {zone_words}, "
        "from the 5-minute rollups (the same extremes as the readings); Min and Max coloured by band. "
        f"{CONSTANTS_NOTE}",
        grid(0, 23, 24, 8),
        [
            InfluxQL(
                f'SELECT min("min") AS "min", max("max") AS "max" FROM "rollup_5m" WHERE {sensors} '
                f'AND "kind" = \'temperature\' AND $timeFilter GROUP BY time(1d), "sensor" fill(none)'
                f"{day_groups(timezone)}",
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
        timezone=timezone,
    )


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
        options=BAR_OPTIONS,
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
        options=BAR_OPTIONS,
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
