"""Home Assistant MQTT discovery: each unit's temperatures, open alerts and bags, without YAML.

With ``[homeassistant] discovery = true`` the rules role publishes, retained (QoS 1) at every
connect, one discovery config per entity under ``<ha prefix>/<component>/coldchain/<object>/config``.
Home Assistant then reads topics coldchain already has:

* a ``sensor`` per temperature probe (device class temperature, °C), reading the probe's own topic:
  ``<prefix>/sensors/<id>/temperature`` for the contract's format (the last element of an array
  upload), the device's topic with a template for the other formats;
* a ``binary_sensor`` (device class problem) per sensor and alert kind it can raise, on the retained
  ``<prefix>/alerts/<kind>/<sensor>``: on while the alert is open or acknowledged, off once resolved,
  the alert's payload as attributes;
* a ``sensor`` (device class timestamp) per unit, its next diluted bag's deadline, on the retained
  ``<prefix>/units/<unit>/bags`` that this module publishes when the running bags of a unit change
  (``{"next_deadline", "bags": [{"bag", "diluted_at", "deadline"}]}``), the list as attributes.

Each unit is one Home Assistant device. Pure payload builders; ``HomeAssistant`` publishes them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from coldchain.adapters.mqtt import MqttConnection
from coldchain.config import Sensor, Settings
from coldchain.contract.topics import Topics
from coldchain.core.times import format_time

log = logging.getLogger("coldchain.homeassistant")

TEMPERATURE_KINDS = ("temperature_high", "temperature_low", "freezing", "sensor_offline")
SHAKE_KINDS = ("agitation", "sensor_offline")

_NOT_IN_OBJECT_ID = re.compile(r"[^A-Za-z0-9_-]")

RunningBag = tuple[str, str, datetime, datetime]
"""(bag, unit, diluted at, deadline), as ``RulesEngine.running_bags`` lists them."""


def _celsius(expression: str, fahrenheit: bool) -> str:
    value = f"(({expression}) | float - 32) * 5 / 9" if fahrenheit else f"({expression}) | float"
    return "{{ (" + value + ") | round(2) }}"


def temperature_source(sensor: Sensor, topics: Topics) -> tuple[str, str]:
    """The topic Home Assistant reads a probe's temperature from, and the value template."""
    fahrenheit = sensor.temperature_unit == "fahrenheit"
    field = sensor.field
    if sensor.format == "coldchain":
        template = "{{ (value_json if value_json is mapping else value_json | last).celsius }}"
        return topics.sensor(sensor.id, "temperature"), template
    if sensor.format == "zigbee2mqtt":
        return sensor.topic, _celsius(f"value_json[{json.dumps(field or 'temperature')}]", fahrenheit)
    if sensor.format == "tasmota":
        chosen = (
            f"value_json[{json.dumps(field)}]"
            if field
            else "value_json.values() | select('mapping') | selectattr('Temperature', 'defined') | first"
        )
        template = (
            "{% set t = (" + chosen + ").Temperature | float %}"
            "{{ (((t - 32) * 5 / 9) if value_json.TempUnit == 'F' else t) | round(2) }}"
        )
        return sensor.topic, template
    if sensor.format == "shelly":
        if sensor.topic.endswith("/events/rpc"):
            return sensor.topic, _celsius(f"value_json.params[{json.dumps(field or 'temperature:0')}].tC", False)
        if "/status/" in sensor.topic:
            return sensor.topic, _celsius("value_json.tC", False)
        return sensor.topic, _celsius("value", fahrenheit)
    if sensor.format == "esphome":
        return sensor.topic, _celsius("value", fahrenheit)
    if sensor.format == "ttn":
        path = json.dumps(field or "temperature")
        return sensor.topic, _celsius(f"value_json.uplink_message.decoded_payload[{path}]", fahrenheit)
    steps = "".join(
        f"[{step}]" if step.isdigit() else f"[{json.dumps(step)}]" for step in (field or "celsius").split(".")
    )
    return sensor.topic, _celsius(f"value_json{steps}", fahrenheit)


def object_id(*parts: str) -> str:
    """A discovery object id (Home Assistant allows only letters, digits, ``_`` and ``-`` there)."""
    return _NOT_IN_OBJECT_ID.sub("_", "_".join(parts))


def discovery_configs(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """Every discovery (topic, config) for the inventory."""
    topics = Topics(settings.mqtt.topic_prefix)
    prefix = settings.homeassistant.prefix
    units = {unit.id: unit for unit in settings.units}
    configs: list[tuple[str, dict[str, Any]]] = []

    def device(unit_id: str) -> dict[str, Any]:
        unit = units[unit_id]
        return {
            "identifiers": [f"coldchain_{unit.id}"],
            "name": unit.display_name,
            "manufacturer": "coldchain",
            "model": f"{unit.profile} fridge",
            "suggested_area": unit.site,
        }

    for sensor in settings.sensors:
        if sensor.kind == "temperature":
            state_topic, template = temperature_source(sensor, topics)
            temperature_id = object_id(sensor.id, "temperature")
            configs.append(
                (
                    f"{prefix}/sensor/coldchain/{temperature_id}/config",
                    {
                        "name": f"{sensor.id} temperature",
                        "unique_id": f"coldchain_{temperature_id}",
                        "object_id": f"coldchain_{temperature_id}",
                        "state_topic": state_topic,
                        "value_template": template,
                        "device_class": "temperature",
                        "state_class": "measurement",
                        "unit_of_measurement": "°C",
                        "device": device(sensor.unit),
                    },
                )
            )
        for kind in TEMPERATURE_KINDS if sensor.kind == "temperature" else SHAKE_KINDS:
            alert_id = object_id(sensor.id, kind)
            alert_topic = topics.alert(kind, sensor.id)
            configs.append(
                (
                    f"{prefix}/binary_sensor/coldchain/{alert_id}/config",
                    {
                        "name": f"{sensor.id} {kind.replace('_', ' ')}",
                        "unique_id": f"coldchain_{alert_id}",
                        "object_id": f"coldchain_{alert_id}",
                        "state_topic": alert_topic,
                        "value_template": "{{ 'OFF' if value_json.state == 'resolved' else 'ON' }}",
                        "json_attributes_topic": alert_topic,
                        "device_class": "problem",
                        "device": device(sensor.unit),
                    },
                )
            )
    for unit in settings.units:
        bags_id = object_id(unit.id, "next_bag_deadline")
        configs.append(
            (
                f"{prefix}/sensor/coldchain/{bags_id}/config",
                {
                    "name": f"{unit.display_name} next bag deadline",
                    "unique_id": f"coldchain_{bags_id}",
                    "object_id": f"coldchain_{bags_id}",
                    "state_topic": bags_topic(topics, unit.id),
                    "value_template": "{{ value_json.next_deadline or None }}",
                    "json_attributes_topic": bags_topic(topics, unit.id),
                    "json_attributes_template": "{{ {'bags': value_json.bags} | tojson }}",
                    "device_class": "timestamp",
                    "device": device(unit.id),
                },
            )
        )
    return configs


def bags_topic(topics: Topics, unit: str) -> str:
    """``<prefix>/units/<unit>/bags``: the unit's running bag timers (retained)."""
    return f"{topics.prefix}/units/{unit}/bags"


def bags_state(bags: Iterable[RunningBag]) -> dict[str, Any]:
    """A unit's running bags, most urgent first, as Home Assistant reads them."""
    listed = sorted(bags, key=lambda bag: bag[3])
    return {
        "next_deadline": format_time(listed[0][3]) if listed else None,
        "bags": [{"bag": b, "diluted_at": format_time(d), "deadline": format_time(t)} for b, _, d, t in listed],
    }


class HomeAssistant:
    """Publishes the discovery configs at each connect, and each unit's bags when they change."""

    def __init__(self, settings: Settings, connection: MqttConnection) -> None:
        self.settings = settings
        self.connection = connection
        self.topics = Topics(settings.mqtt.topic_prefix)
        self._units = [unit.id for unit in settings.units]
        self._bags: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def announce(self) -> None:
        """Publish every discovery config and every unit's bags, retained (after a (re)connect)."""
        for topic, config in discovery_configs(self.settings):
            self.connection.publish(topic, json.dumps(config).encode(), retain=True)
        with self._lock:
            states = dict(self._bags)
        for unit in self._units:
            payload = states.get(unit) or json.dumps(bags_state(())).encode()
            self.connection.publish(bags_topic(self.topics, unit), payload, retain=True)
        log.info("Home Assistant discovery published", extra={"prefix": self.settings.homeassistant.prefix})

    def bags(self, running: Iterable[RunningBag]) -> None:
        """Publish the bags of each unit whose running bags changed since the last call."""
        by_unit: dict[str, list[RunningBag]] = {unit: [] for unit in self._units}
        for bag in running:
            by_unit.setdefault(bag[1], []).append(bag)
        for unit, bags in by_unit.items():
            payload = json.dumps(bags_state(bags)).encode()
            with self._lock:
                changed = self._bags.get(unit) != payload
                self._bags[unit] = payload
            if changed and self.connection.connected.is_set():
                self.connection.publish(bags_topic(self.topics, unit), payload, retain=True)
