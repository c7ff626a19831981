"""Device formats (CONTRACT §2a): each decoder on its real sample payloads, malformed variants,
the configuration's checks, and the parser never raising on any bytes on any configured topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.cli.main import main
from coldchain.config import Settings
from coldchain.config.inventory import SENSOR_FORMATS
from coldchain.contract.formats import DECODERS
from coldchain.contract.parser import MessageParser
from coldchain.contract.payloads import MAX_PAYLOAD_BYTES
from coldchain.contract.topics import Topics
from coldchain.core.records import Rejection, SensorAvailability, ShakeReading, TemperatureReading

DATA = Path(__file__).parent / "data" / "devices"

SENSORS: list[dict[str, Any]] = [
    {"id": "z-t", "kind": "temperature", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/Fridge A probe"},
    {"id": "z-s", "kind": "shake", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/Fridge A shake"},
    {"id": "tas", "kind": "temperature", "format": "tasmota", "topic": "tele/fridge-a/SENSOR"},
    {
        "id": "tas-2",
        "kind": "temperature",
        "format": "tasmota",
        "topic": "tele/fridge-b/SENSOR",
        "field": "DS18B20-2",
        "timezone": "Europe/Berlin",
    },
    {"id": "sh-1", "kind": "temperature", "format": "shelly", "topic": "shellies/shellyht-6F2B1C/sensor/temperature"},
    {"id": "sh-2", "kind": "temperature", "format": "shelly", "topic": "shellyplusht-b8d61a8b17cc/events/rpc"},
    {
        "id": "sh-3",
        "kind": "temperature",
        "format": "shelly",
        "topic": "shellyplusht-b8d61a8b17cc/status/temperature:0",
    },
    {"id": "esp", "kind": "temperature", "format": "esphome", "topic": "fridge-node/sensor/probe/state"},
    {
        "id": "esp-f",
        "kind": "temperature",
        "format": "esphome",
        "topic": "fridge-node/sensor/probe_f/state",
        "temperature_unit": "fahrenheit",
    },
    {
        "id": "ttn",
        "kind": "temperature",
        "format": "ttn",
        "topic": "v3/weather-stations@ttn/devices/dev-eu868-01/up",
        "field": "temperature_c",
    },
    {
        "id": "lht",
        "kind": "temperature",
        "format": "ttn",
        "topic": "v3/pharmacy@ttn/devices/lht65-fridge-a/up",
        "field": "TempC_DS",
    },
    {
        "id": "js",
        "kind": "temperature",
        "format": "json",
        "topic": "site/probe-7",
        "field": "uplink.readings.0.c",
        "ts": "uplink.time",
    },
    {"id": "t-001", "kind": "temperature"},
]


def make_settings(sensors: list[dict[str, Any]] | None = None, **extra: Any) -> Settings:
    units = [{"id": "fridge-a", "site": "main-pharmacy"}, {"id": "fridge-b", "site": "main-pharmacy"}]
    return Settings(
        units=units,
        sensors=[{"unit": "fridge-a", **sensor} for sensor in (SENSORS if sensors is None else sensors)],
        **extra,
    )


PARSER = MessageParser(make_settings())
TOPIC = {sensor["id"]: sensor["topic"] for sensor in SENSORS if "topic" in sensor}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def sample(path: str) -> bytes:
    return (DATA / path).read_bytes()


ARRIVAL = utc("2026-05-25T13:42:12.000+00:00")

# (sample file, sensor, arrival, expected celsius, expected ts (None: the arrival), battery_pct)
ACCEPTED = [
    # Zigbee2MQTT without last_seen: the arrival time; battery -> battery_pct
    ("zigbee2mqtt/wsdcgq11lm.json", "z-t", ARRIVAL, 22.75, None, 86.0),
    # last_seen with an offset (ISO_8601_local) is the reading's time, in UTC
    (
        "zigbee2mqtt/qbkg12lm_last_seen.json",
        "z-t",
        utc("2020-02-26T19:44:30+00:00"),
        16.0,
        "2020-02-26T19:44:09Z",
        None,
    ),
    # legacy Zigbee2MQTT: battery as a numeric string does not cost the reading
    ("zigbee2mqtt/legacy_battery_string.json", "z-t", ARRIVAL, 4.2, None, 100.0),
    ("zigbee2mqtt/last_seen_iso.json", "z-t", utc("2019-01-12T13:41:40+00:00"), 4.6, "2019-01-12T13:41:32.255Z", 85.0),
    # Tasmota: the first object holding Temperature; Time read in the sensor's timezone (UTC by default)
    ("tasmota/ds18b20.json", "tas", utc("2021-04-26T10:01:40+00:00"), 16.1, "2021-04-26T10:01:34Z", None),
    ("tasmota/si7021.json", "tas", utc("2020-02-09T19:30:05+00:00"), 2.5, "2020-02-09T19:30:03Z", None),
    # field picks DS18B20-2; Europe/Berlin in winter is UTC+1
    ("tasmota/ds18b20_two.json", "tas-2", utc("2022-01-19T22:59:30+00:00"), 4.88, "2022-01-19T22:59:26Z", None),
    # TempUnit F converted: 39.2 °F is 4.0 °C; 03:00 in UTC
    ("tasmota/am2301_fahrenheit.json", "tas", utc("2026-01-15T03:00:01+00:00"), 4.0, "2026-01-15T03:00:00Z", None),
    # Shelly Gen1: a bare number at arrival
    ("shelly/gen1_sensor_temperature.txt", "sh-1", ARRIVAL, 22.75, None, None),
    # Shelly Gen2 notifications: params.ts (epoch seconds), temperature:0.tC
    (
        "shelly/gen2_notify_full_status.json",
        "sh-2",
        utc("2023-04-08T14:08:00+00:00"),
        19.8,
        "2023-04-08T14:07:59.620Z",
        None,
    ),
    ("shelly/gen2_notify_status.json", "sh-2", utc("2023-04-08T14:18:00+00:00"), 5.1, "2023-04-08T14:17:59.110Z", None),
    # Shelly Gen2 component status: tC at arrival
    ("shelly/gen2_status_temperature0.json", "sh-3", ARRIVAL, 19.8, None, None),
    ("esphome/state.txt", "esp", ARRIVAL, 4.5, None, None),
    # ESPHome in °F where the configuration says so: 4.5 °F is -15.28 °C
    ("esphome/state.txt", "esp-f", ARRIVAL, (4.5 - 32) * 5 / 9, None, None),
    # TTN: the first gateway's time
    ("ttn/uplink.json", "ttn", ARRIVAL, 29.9, "2026-05-25T13:42:11.392Z", None),
    # TTN: a numeric string is read as its number (this format only); no rx_metadata: uplink received_at
    ("ttn/lht65_strings.json", "lht", ARRIVAL, 4.5, "2026-05-25T13:42:11.401Z", None),
    ("json/nested.json", "js", ARRIVAL, 4.2, "2026-05-25T13:42:11Z", None),
]


@pytest.mark.parametrize(("path", "sensor", "arrival", "celsius", "ts", "battery"), ACCEPTED)
def test_real_payload_maps_to_a_reading(
    path: str, sensor: str, arrival: datetime, celsius: float, ts: str | None, battery: float | None
) -> None:
    """Each format's real payload becomes one reading of its sensor with the right value, time and unit."""
    parsed = PARSER.parse(TOPIC[sensor], sample(path), arrival)
    assert isinstance(parsed, list), parsed
    [reading] = parsed
    assert isinstance(reading, TemperatureReading)
    assert (reading.sensor, reading.unit, reading.site) == (sensor, "fridge-a", "main-pharmacy")
    assert reading.celsius == pytest.approx(celsius)
    assert reading.ts == (arrival if ts is None else utc(ts.replace("Z", "+00:00")))
    assert reading.battery_pct == battery


@pytest.mark.parametrize(
    ("path", "peak_g"),
    [
        ("zigbee2mqtt/djt11lm_action.json", 0.5),  # "action": "vibration" is a hit at the unit's agitation_g
        ("zigbee2mqtt/djt11lm_vibration.json", 0.5),  # "vibration": true likewise
        ("zigbee2mqtt/djt11lm_still.json", 0.0),  # any other message: 0 g (heard, and calm)
        ("zigbee2mqtt/wsdcgq11lm.json", 0.0),
    ],
)
def test_zigbee2mqtt_vibration_is_a_shake_reading(path: str, peak_g: float) -> None:
    """A Zigbee2MQTT vibration sensor's messages become shake readings: a hit at the agitation threshold."""
    parsed = PARSER.parse(TOPIC["z-s"], sample(path), ARRIVAL)
    assert isinstance(parsed, list), parsed
    [reading] = parsed
    assert isinstance(reading, ShakeReading)
    assert (reading.sensor, reading.peak_g, reading.ts) == ("z-s", peak_g, ARRIVAL)


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (sample("zigbee2mqtt/availability_offline.json"), False),
        (sample("zigbee2mqtt/availability_online.json"), True),
        (b"offline", False),  # legacy availability payload
    ],
)
def test_zigbee2mqtt_availability(payload: bytes, online: bool) -> None:
    """``<topic>/availability`` becomes the device's availability, timed at arrival."""
    parsed = PARSER.parse(TOPIC["z-t"] + "/availability", payload, ARRIVAL)
    assert parsed == [SensorAvailability("z-t", "fridge-a", "main-pharmacy", ARRIVAL, online)]


def edited(path: str, change: Any) -> bytes:
    document = json.loads(sample(path))
    change(document)
    return json.dumps(document).encode()


def _set(path: list[str | int], value: Any) -> Any:
    def change(document: Any) -> None:
        for step in path[:-1]:
            document = document[step]
        document[path[-1]] = value

    return change


def _drop(path: list[str | int]) -> Any:
    def change(document: Any) -> None:
        for step in path[:-1]:
            document = document[step]
        del document[path[-1]]

    return change


Z2M, Z2M_SEEN, TTN, LHT = (
    "zigbee2mqtt/wsdcgq11lm.json",
    "zigbee2mqtt/last_seen_iso.json",
    "ttn/uplink.json",
    "ttn/lht65_strings.json",
)
SH2, DECODED = "shelly/gen2_notify_status.json", ["uplink_message", "decoded_payload"]

# (sensor, payload, reason)
REJECTED = [
    ("z-t", b"{temperature: 4}", "invalid_json"),
    ("z-t", edited(Z2M, _drop(["temperature"])), "invalid_schema"),  # battery only
    ("z-t", edited(Z2M, _set(["temperature"], "4.5")), "invalid_schema"),  # str: ttn only
    ("z-t", b'{"temperature": NaN}', "not_finite"),
    ("z-t", edited(Z2M, _set(["temperature"], 150)), "out_of_range"),
    ("z-t", edited(Z2M, _set(["battery"], 120)), "out_of_range"),
    # last_seen an hour after arrival
    ("z-t", edited(Z2M_SEEN, _set(["last_seen"], "2026-05-25T14:42:12Z")), "ts_in_future"),
    ("z-t", sample("zigbee2mqtt/last_seen_iso.json"), "ts_too_old"),  # 2019, arriving in 2026
    ("z-t", b"[1, 2]", "invalid_schema"),
    ("tas", edited("tasmota/ds18b20.json", _drop(["DS18B20"])), "invalid_schema"),
    ("tas", edited("tasmota/ds18b20.json", _drop(["Time"])), "invalid_schema"),
    ("tas", edited("tasmota/ds18b20.json", _set(["Time"], "yesterday")), "invalid_schema"),
    ("tas", edited("tasmota/ds18b20.json", _set(["TempUnit"], "K")), "invalid_schema"),
    ("tas-2", sample("tasmota/ds18b20.json"), "invalid_schema"),  # field DS18B20-2 not in this payload
    ("sh-1", b"warm", "invalid_schema"),
    ("sh-2", sample("shelly/gen2_notify_event.json"), "invalid_schema"),  # no reading in a NotifyEvent
    ("sh-2", edited(SH2, _drop(["params", "ts"])), "invalid_schema"),
    ("sh-2", edited(SH2, _drop(["params", "temperature:0", "tC"])), "invalid_schema"),
    ("sh-3", b'{"id": 0, "tC": null}', "invalid_schema"),
    ("esp", sample("esphome/state_nan.txt"), "not_finite"),  # ESPHome's "no state"
    ("esp", b"", "invalid_schema"),
    ("ttn", edited(TTN, _drop([*DECODED, "temperature_c"])), "invalid_schema"),
    ("ttn", edited(TTN, _drop(["uplink_message"])), "invalid_schema"),
    ("lht", edited(LHT, _set([*DECODED, "TempC_DS"], "n/a")), "invalid_schema"),
    ("lht", edited(LHT, _set([*DECODED, "TempC_DS"], "327.67")), "out_of_range"),
    ("js", edited("json/nested.json", _drop(["uplink", "readings", 0])), "invalid_schema"),
    ("js", edited("json/nested.json", _set(["uplink", "time"], "2026-05-25T13:42:11")), "invalid_schema"),  # no offset
    ("js", b"\xff\xfe", "invalid_json"),
    ("z-t", b"{" * 70_000, "payload_too_large"),
]  # fmt: skip


@pytest.mark.parametrize(("sensor", "payload", "reason"), REJECTED)
def test_malformed_variant_is_rejected_with_its_reason(sensor: str, payload: bytes, reason: str) -> None:
    """A malformed device payload is rejected whole with the contract's reason, the raw payload kept."""
    parsed = PARSER.parse(TOPIC[sensor], payload, ARRIVAL)
    assert isinstance(parsed, Rejection), parsed
    assert parsed.reason == reason, parsed.detail
    assert parsed.payload == payload[:MAX_PAYLOAD_BYTES]  # the whole payload, up to the limit (rejected replay)
    assert "internal error" not in parsed.detail


def test_a_device_sensor_on_the_contract_topic_is_refused() -> None:
    """A device-format sensor's id on the contract topic is not accepted: its identity is its own topic."""
    parsed = PARSER.parse("coldchain/sensors/z-t/temperature", b'{"ts": 1779716530, "celsius": 4.0}', ARRIVAL)
    assert isinstance(parsed, Rejection) and parsed.reason == "unknown_sensor"
    assert "zigbee2mqtt/Fridge A probe" in parsed.detail


def test_subscriptions_cover_the_contract_and_every_device_topic() -> None:
    """Ingest and the rules worker subscribe to each configured device topic (and Zigbee2MQTT availability)."""
    subscriptions = PARSER.subscriptions
    contract = Topics("coldchain").inputs
    assert subscriptions[: len(contract)] == contract
    assert set(subscriptions[len(contract) :]) == set(TOPIC.values()) | {
        "zigbee2mqtt/Fridge A probe/availability",
        "zigbee2mqtt/Fridge A shake/availability",
    }


def test_the_registry_knows_every_configured_format() -> None:
    """Every format the configuration accepts has a decoder, and no decoder is unreachable."""
    assert set(DECODERS) == set(SENSOR_FORMATS) - {"coldchain"}


Z = {"kind": "temperature", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/probe"}

# (sensors, words the error must contain)
CONFIG_ERRORS = [
    ([{"id": "a", **Z}, {"id": "b", **Z}], ["'b'", "already the topic of sensor 'a'"]),  # one topic, two sensors
    # Zigbee2MQTT's availability topic is claimed too
    ([{"id": "a", **Z}, {"id": "b", **Z, "format": "json", "topic": "zigbee2mqtt/probe/availability"}], ["'b'", "'a'"]),
    ([{"id": "a", "kind": "temperature", "topic": "x/y"}], ["'a'", "coldchain-format"]),  # topic on a coldchain sensor
    ([{"id": "a", **Z, "format": "lorawan"}], ["'a'", "unknown format 'lorawan'"]),
    ([{"id": "a", **Z, "topic": ""}], ["'a'", "topic: required"]),
    ([{"id": "a", **Z, "topic": "zigbee2mqtt/+"}], ["'a'", "exact topic"]),
    ([{"id": "a", **Z, "topic": "coldchain/sensors/a/temperature"}], ["'a'", "topic_prefix"]),
    ([{"id": "a", **Z, "ts": "last_seen"}], ["'a'", "only a json-format sensor"]),
    ([{"id": "a", **Z, "timezone": "Mars/Olympus"}], ["'a'", "unknown time zone"]),
    ([{"id": "a", **Z, "kind": "shake", "format": "tasmota"}], ["'a'", "no shake readings"]),
]


@pytest.mark.parametrize(("sensors", "words"), CONFIG_ERRORS)
def test_configuration_errors_name_the_sensor(sensors: list[dict[str, Any]], words: list[str]) -> None:
    """A bad device mapping is a configuration error naming the sensor at fault."""
    with pytest.raises(ValueError) as raised:
        make_settings(sensors)
    for word in words:
        assert word in str(raised.value)


def test_unknown_mapping_key_is_refused() -> None:
    """A mistyped mapping key names itself (extra keys are forbidden)."""
    with pytest.raises(ValueError, match="feild"):
        make_settings([{"id": "a", **Z, "feild": "temperature"}])


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(sorted(PARSER.subscriptions[2:])), payload=st.binary(max_size=300))
def test_arbitrary_bytes_on_any_device_topic_never_raise(topic: str, payload: bytes) -> None:
    """Whatever bytes arrive on a configured device topic, the parser answers records or a rejection
    with one of the contract's reasons, never an exception or an internal error."""
    parsed = PARSER.parse(topic, payload, ARRIVAL)
    if isinstance(parsed, Rejection):
        assert "internal error" not in parsed.detail, parsed.detail
    else:
        assert all(isinstance(r, TemperatureReading | ShakeReading | SensorAvailability) for r in parsed)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
KEYS = ["temperature", "battery", "last_seen", "vibration", "action", "Time", "TempUnit", "DS18B20", "DS18B20-2",
        "method", "params", "ts", "temperature:0", "tC", "uplink_message", "decoded_payload", "rx_metadata",
        "received_at", "uplink", "readings", "time", "state"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    topic=st.sampled_from(sorted(PARSER.subscriptions[2:])),
    document=st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=6),
)
def test_arbitrary_json_with_the_formats_keys_never_raises(topic: str, document: dict[str, Any]) -> None:
    """JSON objects built from the formats' own keys with any values never cause an internal error."""
    payload = json.dumps(document).encode()
    parsed = PARSER.parse(topic, payload, ARRIVAL)
    if isinstance(parsed, Rejection):
        assert "internal error" not in parsed.detail, parsed.detail


def test_tasmota_time_in_summer_uses_the_offset_of_the_day() -> None:
    """Tasmota's local Time is read in the sensor's timezone with that day's offset (CEST, UTC+2)."""
    payload = b'{"Time":"2026-07-01T12:00:00","DS18B20-2":{"Temperature":5.0},"TempUnit":"C"}'
    parsed = PARSER.parse(TOPIC["tas-2"], payload, utc("2026-07-01T10:00:05+00:00"))
    assert isinstance(parsed, list), parsed
    assert parsed[0].ts == utc("2026-07-01T10:00:00+00:00")


def test_zigbee2mqtt_epoch_last_seen_is_milliseconds() -> None:
    """Zigbee2MQTT's ``last_seen: epoch`` is in milliseconds."""
    arrival = ARRIVAL
    millis = int((arrival - timedelta(seconds=3)).timestamp() * 1000)
    parsed = PARSER.parse(TOPIC["z-t"], json.dumps({"temperature": 4.0, "last_seen": millis}).encode(), arrival)
    assert isinstance(parsed, list), parsed
    assert parsed[0].ts == arrival - timedelta(seconds=3)


DEVICE_TOML = """
[[units]]
id = "fridge-a"
site = "main-pharmacy"

[[sensors]]
id = "z-fridge-a"
unit = "fridge-a"
kind = "temperature"
format = "zigbee2mqtt"
topic = "zigbee2mqtt/Fridge A probe"

[[sensors]]
id = "z-fridge-b"
unit = "fridge-a"
kind = "temperature"
format = "zigbee2mqtt"
topic = "zigbee2mqtt/Fridge A probe"
"""


@pytest.mark.usefixtures("env")
def test_check_config_names_the_file_and_the_sensor_and_lists_devices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From a TOML file, a topic claimed twice is one line naming the file and the sensor; a valid
    device sensor is listed by check-config with its format and topic."""
    bad = tmp_path / "bad.toml"
    bad.write_text(DEVICE_TOML)
    with pytest.raises(SystemExit):
        main(["check-config", "--config", str(bad)])
    assert (
        f"{bad}: sensors[1] (id 'z-fridge-b').topic: 'zigbee2mqtt/Fridge A probe' is already the topic of sensor "
        "'z-fridge-a'" in capsys.readouterr().err
    )
    good = tmp_path / "good.toml"
    good.write_text(DEVICE_TOML.rsplit("[[sensors]]", 1)[0])
    assert main(["check-config", "--config", str(good)]) == 0
    assert "device z-fridge-a (temperature, fridge-a): zigbee2mqtt on 'zigbee2mqtt/Fridge A probe'" in (
        capsys.readouterr().out
    )
