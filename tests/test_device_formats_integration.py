"""Device formats end to end: real payloads through a real mosquitto into ``coldchain run`` and a real
InfluxDB: stored with the right value, unit and time; rules on them; malformed ones rejected."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coldchain.core.times import format_time
from tests.publishing import wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import iso

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "devices"


def sample(path: str) -> Any:
    text = (DATA / path).read_text()
    return json.loads(text) if path.endswith(".json") else text


class DeviceWorld(AlertWorld):
    """An AlertWorld whose inventory adds one device sensor per format, on topics unique to the test."""

    def __init__(self, tmp_path: Path, mqtt: Any, influx: Any) -> None:
        super().__init__(tmp_path, mqtt, influx, unit_options={"fridge-a": ['overrides = { agitation_clear = "2s" }']})
        uid = uuid.uuid4().hex[:8]
        self.topics = {
            "z-t": f"zigbee2mqtt/{uid} Fridge A probe",
            "z-s": f"zigbee2mqtt/{uid} Fridge A shake",
            "tas": f"tele/{uid}-fridge/SENSOR",
            "sh-1": f"shellies/shellyht-{uid}/sensor/temperature",
            "sh-2": f"shellyplusht-{uid}/events/rpc",
            "esp": f"{uid}-node/sensor/probe/state",
            "lht": f"v3/pharmacy-{uid}@ttn/devices/lht65/up",
            "js": f"site-{uid}/probe-7",
        }
        options = {
            "tas": ['timezone = "Europe/Berlin"'],
            "lht": ['field = "TempC_DS"'],
            "js": ['field = "uplink.readings.0.c"', 'ts = "uplink.time"'],
        }
        formats = {"z": "zigbee2mqtt", "ta": "tasmota", "sh": "shelly", "es": "esphome", "lh": "ttn", "js": "json"}
        lines = []
        for sensor, topic in self.topics.items():
            fmt = next(name for start, name in formats.items() if sensor.startswith(start))
            lines += ["[[sensors]]", f'id = "{sensor}"', 'unit = "fridge-a"', f'format = "{fmt}"', f'topic = "{topic}"']
            lines.append(f'kind = "{"shake" if sensor == "z-s" else "temperature"}"')
            lines += options.get(sensor, [])
        self.config.write_text(self.config.read_text() + "\n".join(lines) + "\n")

    def send(self, sensor: str, payload: Any, suffix: str = "") -> None:
        self.publisher_for().send(
            self.topics[sensor] + suffix, payload.encode() if isinstance(payload, str) else payload
        )

    def readings(self, sensor: str) -> list[dict[str, Any]]:
        return self.rows(f'SELECT * FROM "temperature" WHERE "sensor" = \'{sensor}\' ORDER BY time')

    def rejected(self) -> list[dict[str, Any]]:
        return self.rows('SELECT * FROM "rejected" ORDER BY time')


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[DeviceWorld]:
    w = DeviceWorld(tmp_path, mosquitto, influxd)
    yield w
    w.close()


def ms(text: str | int) -> int:
    if isinstance(text, int):
        return text
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_every_format_is_stored_with_its_value_unit_and_time(world: DeviceWorld) -> None:
    """A real payload of each format is stored as a temperature of its sensor and unit, in °C, at its time."""
    world.service.start()
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    before = datetime.now(UTC) - timedelta(seconds=1)

    z2m = sample("zigbee2mqtt/last_seen_iso.json") | {"last_seen": iso(now)}
    world.send("z-t", z2m)
    tasmota = sample("tasmota/am2301_fahrenheit.json")
    local = now.astimezone(ZoneInfo("Europe/Berlin")).replace(tzinfo=None)
    world.send("tas", tasmota | {"Time": local.isoformat()})  # 39.2 °F in Berlin's local time
    world.send("sh-1", sample("shelly/gen1_sensor_temperature.txt"))  # no time: arrival
    full = sample("shelly/gen2_notify_full_status.json")
    full["params"]["ts"] = now.timestamp() + 0.62
    world.send("sh-2", full)
    world.send("esp", sample("esphome/state.txt"))  # no time: arrival
    lht = sample("ttn/lht65_strings.json")
    lht["uplink_message"]["received_at"] = iso(now)
    world.send("lht", lht)  # TempC_DS is the string "4.50"
    nested = sample("json/nested.json")
    nested["uplink"]["time"] = iso(now)
    world.send("js", nested)

    wait_for(lambda: world.count() == 7, 20, "7 readings stored")
    after = datetime.now(UTC) + timedelta(seconds=1)
    expected = {
        "z-t": (4.6, ms(iso(now))),
        "tas": (4.0, ms(iso(now))),
        "sh-1": (22.75, None),
        "sh-2": (19.8, ms(iso(now)) + 620),
        "esp": (4.5, None),
        "lht": (4.5, ms(iso(now))),
        "js": (4.2, ms(iso(now))),
    }
    for sensor, (celsius, at) in expected.items():
        [row] = world.readings(sensor)
        assert (row["unit"], row["site"]) == ("fridge-a", "main-pharmacy"), sensor
        assert row["celsius"] == pytest.approx(celsius), sensor
        if at is None:
            assert ms(iso(before)) <= row["time"] <= ms(iso(after)), sensor  # arrival time
        else:
            assert row["time"] == at, sensor
    assert world.readings("z-t")[0]["battery_pct"] == 85.0


def test_malformed_device_payloads_are_rejected_with_their_reasons(world: DeviceWorld) -> None:
    """Malformed variants of each format are stored in ``rejected`` with the contract's reason and payload."""
    world.service.start()
    now = datetime.now(UTC)
    cases = [
        ("z-t", json.dumps({"battery": 80, "last_seen": iso(now)}), "invalid_schema"),
        ("tas", "{Time: 1}", "invalid_json"),
        ("sh-1", "warm", "invalid_schema"),
        ("sh-2", json.dumps(sample("shelly/gen2_notify_event.json")), "invalid_schema"),
        ("esp", "nan", "not_finite"),
        ("lht", json.dumps({"uplink_message": {"decoded_payload": {"TempC_DS": "327.67"}, "received_at": iso(now)}}),
         "out_of_range"),
        ("js", json.dumps({"uplink": {"time": iso(now + timedelta(hours=1)), "readings": [{"c": 4.0}]}}),
         "ts_in_future"),
    ]  # fmt: skip
    for sensor, payload, _ in cases:
        world.send(sensor, payload)
    wait_for(lambda: world.count("rejected", "detail") == len(cases), 20, f"{len(cases)} rejections stored")
    stored = {row["topic"]: row for row in world.rejected()}
    for sensor, payload, reason in cases:
        row = stored[world.topics[sensor]]
        assert (row["reason"], row["payload"]) == (reason, payload), sensor
    assert world.count() == 0


def test_zigbee2mqtt_probe_above_8_for_the_delay_raises_temperature_high(world: DeviceWorld) -> None:
    """Back-dated Zigbee2MQTT readings above 8 °C for 15 min open temperature_high at their last_seen times."""
    world.service.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for minute in range(17):
        world.send(
            "z-t",
            {
                "temperature": 9.2,
                "battery": 90,
                "linkquality": 120,
                "last_seen": iso(start + timedelta(minutes=minute)),
            },
        )
    opened = world.wait_alert("temperature_high", "z-t", "open")
    assert opened["started_at"] == format_time(start)
    assert opened["updated_at"] == format_time(start + timedelta(minutes=15))
    assert (opened["unit"], opened["sensor"], opened["severity"]) == ("fridge-a", "z-t", "critical")


def test_zigbee2mqtt_vibration_raises_agitation_and_offline_raises_sensor_offline(world: DeviceWorld) -> None:
    """An Aqara vibration event opens agitation at once; availability offline opens sensor_offline at once."""
    world.service.start()
    world.send("z-s", sample("zigbee2mqtt/djt11lm_action.json"))
    agitation = world.wait_alert("agitation", "z-s", "open")
    assert agitation["value"] == pytest.approx(0.5)  # the unit's agitation_g: the device reports only "it moved"

    before = datetime.now(UTC)
    world.send("z-t", sample("zigbee2mqtt/availability_offline.json"), "/availability")
    offline = world.wait_alert("sensor_offline", "z-t", "open", timeout=10)
    assert ms(offline["started_at"]) >= ms(iso(before)) - 1000  # at the report's arrival, not 15 min of silence
    assert "offline" in offline["message"]
    wait_for(lambda: world.count("availability", "state") == 1, 15, "the availability report stored")

    world.send("z-t", {"temperature": 4.4, "last_seen": iso(datetime.now(UTC))})
    world.wait_alert("sensor_offline", "z-t", "resolved")
