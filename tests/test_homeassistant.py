"""Home Assistant discovery: the configs, their templates rendered the way Home Assistant renders them
(Jinja2, ``value`` and ``value_json``) on the real sample payloads, and the retained publication."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from coldchain.adapters.homeassistant import bags_state, discovery_configs
from tests.publishing import Collector, wait_for
from tests.test_device_formats import SENSORS, make_settings
from tests.test_rules_integration import AlertWorld

DATA = Path(__file__).parent / "data" / "devices"
JINJA = jinja2.Environment(autoescape=False)


def render(template: str, payload: bytes) -> str:
    """As Home Assistant's MQTT integration does: ``value`` the text, ``value_json`` the parsed JSON if any."""
    text = payload.decode()
    try:
        value_json: Any = json.loads(text)
    except ValueError:
        value_json = None
    return JINJA.from_string(template).render(value=text, value_json=value_json).strip()


SETTINGS = make_settings(homeassistant={"discovery": True})
CONFIGS = dict(discovery_configs(SETTINGS))


def temperature_config(sensor: str) -> dict[str, Any]:
    return CONFIGS[f"homeassistant/sensor/coldchain/{sensor}_temperature/config"]


# (sensor, sample, the temperature Home Assistant shows)
SHOWN = [
    ("z-t", "zigbee2mqtt/wsdcgq11lm.json", 22.75),
    ("tas", "tasmota/ds18b20.json", 16.1),  # the first object holding Temperature
    ("tas", "tasmota/am2301_fahrenheit.json", 4.0),  # TempUnit F converted
    ("tas-2", "tasmota/ds18b20_two.json", 4.88),  # field DS18B20-2
    ("sh-1", "shelly/gen1_sensor_temperature.txt", 22.75),
    ("sh-2", "shelly/gen2_notify_full_status.json", 19.8),
    ("sh-3", "shelly/gen2_status_temperature0.json", 19.8),
    ("esp", "esphome/state.txt", 4.5),
    ("esp-f", "esphome/state.txt", -15.28),  # temperature_unit fahrenheit converted
    ("ttn", "ttn/uplink.json", 29.9),
    ("lht", "ttn/lht65_strings.json", 4.5),  # a numeric string
    ("js", "json/nested.json", 4.2),
]


@pytest.mark.parametrize(("sensor", "path", "celsius"), SHOWN)
def test_temperature_templates_show_celsius_from_the_device_topic(sensor: str, path: str, celsius: float) -> None:
    """Each probe's sensor reads the device's own topic and shows the same °C coldchain stores."""
    config = temperature_config(sensor)
    topic = next(s["topic"] for s in SENSORS if s["id"] == sensor)
    assert config["state_topic"] == topic
    assert (config["device_class"], config["unit_of_measurement"]) == ("temperature", "°C")
    assert float(render(config["value_template"], (DATA / path).read_bytes())) == pytest.approx(celsius, abs=0.01)


@pytest.mark.parametrize(
    "payload",
    [b'{"ts": "2026-11-30T02:10:00Z", "celsius": 4.7}', b'[{"ts": 1, "celsius": 9.0}, {"ts": 2, "celsius": 4.7}]'],
)
def test_contract_sensor_reads_the_contract_topic(payload: bytes) -> None:
    """A contract-format probe is read from its contract topic, an array upload by its last reading."""
    config = temperature_config("t-001")
    assert config["state_topic"] == "coldchain/sensors/t-001/temperature"
    assert float(render(config["value_template"], payload)) == 4.7


@pytest.mark.parametrize(("state", "shown"), [("open", "ON"), ("acknowledged", "ON"), ("resolved", "OFF")])
def test_alert_binary_sensors_follow_the_retained_alert(state: str, shown: str) -> None:
    """A binary sensor per sensor and alert kind is on while the alert is open or acknowledged."""
    config = CONFIGS["homeassistant/binary_sensor/coldchain/z-t_temperature_high/config"]
    assert config["state_topic"] == config["json_attributes_topic"] == "coldchain/alerts/temperature_high/z-t"
    assert render(config["value_template"], json.dumps({"state": state}).encode()) == shown
    assert "homeassistant/binary_sensor/coldchain/z-s_agitation/config" in CONFIGS
    assert "homeassistant/binary_sensor/coldchain/z-s_temperature_high/config" not in CONFIGS  # a shake sensor


def test_units_are_devices_with_their_next_bag_deadline() -> None:
    """Each unit is one device; its next bag deadline is a timestamp sensor on the unit's bags topic."""
    config = CONFIGS["homeassistant/sensor/coldchain/fridge-a_next_bag_deadline/config"]
    assert config["state_topic"] == "coldchain/units/fridge-a/bags"
    assert config["device_class"] == "timestamp"
    diluted = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    state = bags_state(
        [
            ("B-2", "fridge-a", diluted, diluted + timedelta(hours=9)),
            ("B-1", "fridge-a", diluted, diluted + timedelta(hours=8)),
        ]
    )
    payload = json.dumps(state).encode()
    assert render(config["value_template"], payload) == "2026-11-30T10:00:00Z"
    assert json.loads(render(config["json_attributes_template"], payload))["bags"][0]["bag"] == "B-1"
    assert render(config["value_template"], json.dumps(bags_state([])).encode()) == "None"
    devices = {json.dumps(c["device"], sort_keys=True) for c in CONFIGS.values()}
    assert len(devices) == 2  # fridge-a and fridge-b


def test_object_ids_keep_to_what_home_assistant_accepts() -> None:
    """A sensor id with characters Home Assistant refuses in a discovery topic gets them replaced."""
    settings = make_settings([{"id": "probe.1:a", "kind": "temperature"}], homeassistant={"discovery": True})
    topics = [topic for topic, _ in discovery_configs(settings)]
    assert "homeassistant/sensor/coldchain/probe_1_a_temperature/config" in topics
    assert all(all(c.isalnum() or c in "_-" for c in topic.split("/")[3]) for topic in topics)


def test_discovery_is_off_by_default() -> None:
    """Without ``[homeassistant] discovery = true`` the rules role publishes nothing for Home Assistant."""
    assert make_settings().homeassistant.discovery is False


@pytest.fixture
def ha_world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[tuple[AlertWorld, str]]:
    ha_prefix = f"ha{uuid.uuid4().hex[:8]}"
    world = AlertWorld(tmp_path, mosquitto, influxd, extra=f'[homeassistant]\ndiscovery = true\nprefix = "{ha_prefix}"')
    yield world, ha_prefix
    world.close()


@pytest.mark.integration
def test_discovery_configs_and_bags_are_published_retained(ha_world: tuple[AlertWorld, str]) -> None:
    """coldchain run publishes the discovery configs and each unit's bags retained; a bag event updates them."""
    world, ha_prefix = ha_world
    world.service.start()
    expected = {
        topic.replace("homeassistant/", f"{ha_prefix}/", 1)
        for topic, _ in discovery_configs(
            make_settings(
                [{"id": s, "kind": k} for s, k in (("t-001", "temperature"), ("s-001", "shake"))]
                + [{"id": "t-002", "kind": "temperature", "unit": "fridge-b"}],
                homeassistant={"discovery": True},
            )
        )
    }
    late = Collector("127.0.0.1", world.mqtt.port, f"{ha_prefix}/#")  # subscribes after: sees retained copies
    try:
        wait_for(lambda: {t for t, _, _ in late.snapshot()} >= expected, 15, "every discovery config")
        assert all(retained for _, _, retained in late.snapshot())
        config = json.loads(next(p for t, p, _ in late.snapshot() if t.endswith("/t-001_temperature/config")))
        assert config["state_topic"] == world.topic("t-001")
    finally:
        late.close()
    bags = Collector("127.0.0.1", world.mqtt.port, f"{world.prefix}/units/fridge-a/bags")
    try:
        wait_for(lambda: bags.snapshot(), 10, "fridge-a's bags (retained)")
        assert json.loads(bags.snapshot()[-1][1]) == {"next_deadline": None, "bags": []}
        diluted = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        body = {"ts": diluted.isoformat(), "event": "diluted", "unit": "fridge-a", "by": "j.doe"}
        world.publisher_for().send(f"{world.prefix}/bags/B-77/events", body)
        wait_for(lambda: json.loads(bags.snapshot()[-1][1])["bags"], 15, "B-77 among fridge-a's bags")
        state = json.loads(bags.snapshot()[-1][1])
        assert state["bags"][0]["bag"] == "B-77"
        assert state["next_deadline"] == (diluted + timedelta(hours=8)).isoformat().replace("+00:00", "Z")
    finally:
        bags.close()
