"""deploy/: the broker's configuration and ACL on a real mosquitto, the compose file, the Dockerfile.

The docker daemon does not run here, so the compose file is validated statically: interpolated with
``.env.example`` as ``docker compose`` would, then checked against the Compose Specification's JSON
schema (``tests/data/compose-spec.json``) and against what the other files of deploy/ expect.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from coldchain.adapters.mqtt import MqttConnection
from coldchain.config import MqttConfig, load_settings
from coldchain.contract.payloads import MAX_PACKET_BYTES
from coldchain.contract.status import Status
from tests.publishing import Inbox, Received, wait_for
from tests.servers import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
BROKER_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"
ACL = DEPLOY / "mosquitto" / "acl"
START_SH = DEPLOY / "mosquitto" / "start.sh"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"

ACCOUNTS = {
    "t-001": "pw-sensor-one",
    "t-002": "pw-sensor-two",
    "coldchain-ingest": "pw-ingest",
    "coldchain-rules": "pw-rules",
    "coldchain-bags": "pw-bags",
    "coldchain-alerts": "pw-alerts",
    "scan-01": "pw-scanner-one",
}
NOT_AUTHORIZED = 0x87
TIMEOUT = 10.0


# -- a real mosquitto on deploy's configuration ---------------------------------------------


def broker_config(text: str, *, port: int, data_dir: Path, passwd: Path, user: str) -> str:
    """deploy's mosquitto.conf with the container's paths and port swapped for this test's (nothing else)."""
    replacements = {
        "listener": f"listener {port} 127.0.0.1",
        "persistence_location": f"persistence_location {data_dir}/",
        "password_file": f"password_file {passwd}",
        "acl_file": f"acl_file {ACL}",
    }
    lines, seen = [f"user {user}"], set()
    for line in text.splitlines():
        key = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
        if key in replacements:
            assert key not in seen, f"{key} twice in {BROKER_CONF}"
            seen.add(key)
            lines.append(replacements[key])
        else:
            lines.append(line)
    assert seen == set(replacements), f"{BROKER_CONF} lacks {set(replacements) - seen}"
    return "\n".join(lines) + "\n"


class DeployMosquitto(Mosquitto):
    """mosquitto started on deploy/mosquitto/mosquitto.conf and deploy/mosquitto/acl themselves."""

    name = "mosquitto-deploy"

    def __init__(self, passwd: Path) -> None:
        super().__init__()
        self.passwd = passwd

    def _write_config(self) -> list[str]:
        user = pwd.getpwuid(os.geteuid()).pw_name
        text = broker_config(
            BROKER_CONF.read_text(encoding="utf-8"), port=self.port, data_dir=self.dir, passwd=self.passwd, user=user
        )
        config = self.dir / "mosquitto.conf"
        config.write_text(text, encoding="utf-8")
        return [self.binary, "-c", str(config)]


def mosquitto_passwd() -> str:
    found = subprocess.run(["sh", "-c", "command -v mosquitto_passwd"], capture_output=True, text=True)
    assert found.returncode == 0, "mosquitto_passwd not found: apt-get install mosquitto"
    return found.stdout.strip()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployMosquitto]:
    """deploy's broker with a password file made by mosquitto_passwd -b for the test's accounts."""
    passwd = tmp_path_factory.mktemp("mosquitto-auth") / "passwd"
    tool = mosquitto_passwd()
    for index, (user, password) in enumerate(ACCOUNTS.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run([tool, *create, "-b", str(passwd), user, password], check=True, capture_output=True)
    with DeployMosquitto(passwd) as server:
        yield server


class Client:
    """A paho MQTT 5 client that keeps its CONNACK, SUBACK and PUBACK reason codes and the messages it gets."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"deploy-{uuid.uuid4().hex[:10]}", protocol=paho.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self._lock = threading.Lock()
        self.connack: ReasonCode | None = None
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.pubacks: dict[int, ReasonCode] = {}
        self.inbox = Inbox()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self.inbox.on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_for(lambda: self.connack is not None, TIMEOUT, f"CONNACK for {username}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        with self._lock:
            if self.connack is None:
                self.connack = reason

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any) -> None:
        with self._lock:
            self.subacks[mid] = list(reasons)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, properties: Any) -> None:
        with self._lock:
            self.pubacks[mid] = reason

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, *topics: str) -> list[int]:
        """Subscribe with QoS 1; the SUBACK reason code of each filter (1: granted QoS 1)."""
        _, mid = self.client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in topics])
        reasons = wait_for(lambda: self.subacks.get(mid), TIMEOUT, f"SUBACK for {topics}")
        return [reason.value for reason in reasons]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Publish with QoS 1; the PUBACK reason code (0 or 0x10 accepted, 0x87 not authorized)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        reason = wait_for(lambda: self.pubacks.get(info.mid), TIMEOUT, f"PUBACK for {topic}")
        return int(reason.value)

    def received(self) -> list[Received]:
        return self.inbox.snapshot()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(broker: DeployMosquitto) -> Iterator[Any]:
    """``connect(user)`` logs in as one of ACCOUNTS (or anonymously, or with ``password``); all closed after."""
    opened: list[Client] = []

    def connect(user: str | None, password: str | None = None) -> Client:
        client = Client(broker.port, user, password if password is not None else ACCOUNTS.get(user or ""))
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.close()


def topics(reader: Client) -> list[str]:
    return [topic for topic, _, _ in reader.received()]


def delivered_up_to(reader: Client, marker_topic: str) -> list[str]:
    """Topics the reader got up to ``marker_topic``, which the same publisher sent last (QoS 1 keeps order)."""
    found: list[str] = wait_for(
        lambda: topics(reader) if marker_topic in topics(reader) else [], TIMEOUT, f"the marker on {marker_topic}"
    )
    return found


def retained_seen(reader: Client, topic_filter: str) -> list[str]:
    """Subscribe to ``topic_filter``, then to a second filter: what retained messages came before its SUBACK.

    mosquitto 2.0 grants every subscription and applies the ACL's read rules when it delivers; it queues
    the retained messages of a subscription right after its SUBACK, on the same connection, so a second
    SUBACK marks the point by which they have arrived (or never will).
    """
    assert reader.subscribe(topic_filter) == [1]
    reader.subscribe(f"coldchain/marker/{uuid.uuid4().hex}")
    return topics(reader)


def accepted(reason: int) -> bool:
    """PUBACK success codes: 0, or 0x10 "no matching subscribers"."""
    return reason in (0, 0x10)


@pytest.mark.integration
def test_anonymous_clients_and_wrong_passwords_are_refused(clients: Any) -> None:
    """No account, a wrong password or an unknown user: CONNACK refuses (mosquitto loads deploy's files)."""
    for client in (clients(None), clients("t-001", "not-the-password"), clients("intruder", "whatever")):
        assert client.connack is not None and client.connack.is_failure, client.connack
    assert clients("t-001").accepted


# (account, what coldchain-ingest subscribes to, (account, topic) publishes refused in turn, the account's own topic)
OWN_ID_CASES = [
    pytest.param(
        "scan-01",
        ("coldchain/scanners/+/bags/+/events", "coldchain/api/bags/+/events"),
        [
            ("scan-01", "coldchain/scanners/scan-02/bags/B-1/events"),  # as another scanner
            ("scan-01", "coldchain/api/bags/B-1/events"),  # as the API
            ("scan-01", "coldchain/sensors/t-001/temperature"),  # as a sensor
            ("coldchain-bags", "coldchain/api/bags/B-1/events"),  # the bag tool is not the API either
        ],
        "coldchain/scanners/scan-01/bags/B-1/events",
        id="a scanner: bag events under its own id only",
    ),
    pytest.param(
        "t-001",
        ("coldchain/sensors/+/+", "coldchain/bags/+/events"),
        [("t-001", "coldchain/sensors/t-002/temperature"), ("t-001", "coldchain/bags/B-1/events")],
        "coldchain/sensors/t-001/temperature",
        id="a sensor: never as another sensor, never a bag event",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(("account", "subscriptions", "refused", "own"), OWN_ID_CASES)
def test_a_device_publishes_only_under_its_own_id(
    clients: Any, account: str, subscriptions: tuple[str, ...], refused: list[tuple[str, str]], own: str
) -> None:
    """A device's publishes as anyone else are refused and never reach coldchain; its own topic is delivered."""
    ingest = clients("coldchain-ingest")
    assert ingest.subscribe(*subscriptions) == [1, 1]
    logged_in = {name: clients(name) for name in {account, *(name for name, _ in refused)}}
    for name, topic in refused:
        assert logged_in[name].publish(topic, b"{}") == NOT_AUTHORIZED, (name, topic)
    assert logged_in[account].publish(own, b"{}") == 0
    assert delivered_up_to(ingest, own) == [own]


@pytest.mark.integration
def test_a_sensor_reads_nothing_and_cannot_raise_alerts(clients: Any) -> None:
    """A sensor is sent no message, not even a retained alert, and its publish on an alert topic is refused."""
    rules = clients("coldchain-rules")
    topic = f"coldchain/alerts/agitation/s-{uuid.uuid4().hex[:6]}"
    assert accepted(rules.publish(topic, b'{"state": "open"}', retain=True))
    try:
        assert retained_seen(clients("coldchain-alerts"), "coldchain/alerts/#") == [topic]  # the method works
        sensor = clients("t-001")
        assert retained_seen(sensor, "coldchain/#") == []
        assert sensor.publish("coldchain/alerts/temperature_high/t-001", b"{}") == NOT_AUTHORIZED
    finally:
        assert accepted(rules.publish(topic, b"", retain=True))  # clears the retained test alert


@pytest.mark.integration
def test_ingest_reads_readings_and_bag_events_and_writes_nothing(clients: Any) -> None:
    """coldchain-ingest subscribes to readings and bag events (also shared), receives both, publishes nothing."""
    ingest = clients("coldchain-ingest")
    assert ingest.subscribe("coldchain/sensors/+/+", "coldchain/bags/+/events") == [1, 1]
    replica = clients("coldchain-ingest")
    assert replica.subscribe("$share/ingest/coldchain/sensors/+/+", "$share/ingest/coldchain/bags/+/events") == [1, 1]
    assert ingest.publish("coldchain/alerts/temperature_high/t-001", b"{}") == NOT_AUTHORIZED
    assert ingest.publish("coldchain/sensors/t-001/temperature", b"{}") == NOT_AUTHORIZED
    bags = clients("coldchain-bags")
    assert accepted(bags.publish("coldchain/bags/B-7/events", b'{"event": "diluted", "unit": "fridge-a"}'))
    assert delivered_up_to(ingest, "coldchain/bags/B-7/events") == ["coldchain/bags/B-7/events"]
    assert delivered_up_to(replica, "coldchain/bags/B-7/events") == ["coldchain/bags/B-7/events"]
    assert accepted(clients("t-002").publish("coldchain/sensors/t-002/shake", b'{"peak_g": 0.1}'))
    assert delivered_up_to(ingest, "coldchain/sensors/t-002/shake")[-1] == "coldchain/sensors/t-002/shake"
    rules = clients("coldchain-rules")
    topic = f"coldchain/alerts/freezing/t-{uuid.uuid4().hex[:6]}"
    assert accepted(rules.publish(topic, b'{"state": "open"}', retain=True))
    try:
        assert retained_seen(clients("coldchain-ingest"), "coldchain/alerts/#") == []  # alerts are not ingest's
    finally:
        assert accepted(rules.publish(topic, b"", retain=True))


@pytest.mark.integration
def test_rules_reads_inputs_and_publishes_retained_alerts_and_bag_events(clients: Any) -> None:
    """coldchain-rules subscribes to the inputs, publishes retained alerts (kept for later readers) and the API's
    bag events on the topic only it may write."""
    rules = clients("coldchain-rules")
    assert rules.subscribe("coldchain/sensors/+/+", "coldchain/api/bags/+/events") == [1, 1]
    topic = f"coldchain/alerts/freezing/t-{uuid.uuid4().hex[:6]}"
    assert accepted(rules.publish(topic, b'{"state": "open"}', retain=True))
    try:
        assert rules.publish("coldchain/api/bags/B-8/events", b'{"event": "discarded"}') == 0  # rules reads it back
        assert delivered_up_to(rules, "coldchain/api/bags/B-8/events") == ["coldchain/api/bags/B-8/events"]
        late_reader = clients("coldchain-alerts")
        assert late_reader.subscribe(topic) == [1]
        (message,) = wait_for(late_reader.received, TIMEOUT, "the retained alert")
        assert message == (topic, b'{"state": "open"}', True)
        assert late_reader.publish(topic, b"{}") == NOT_AUTHORIZED  # alert readers only read
    finally:
        assert accepted(rules.publish(topic, b"", retain=True))


@pytest.mark.integration
@pytest.mark.parametrize("account", ["coldchain-ingest", "coldchain-rules"])
def test_each_coldchain_account_may_announce_its_status_and_alert_readers_see_it(
    clients: Any, broker: DeployMosquitto, account: str
) -> None:
    """The ACL lets a role's connection (will included) write <prefix>/status/<its client id>; readers see it."""
    config = MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}", username=account, password=ACCOUNTS[account])
    role = account.removeprefix("coldchain-")
    connection = MqttConnection(config, account, status=Status(role, account, "0.0.0", datetime.now(UTC)))
    connection.start()
    try:
        wait_for(connection.connected.is_set, TIMEOUT, f"{account} connected with its will")
        reader = clients("coldchain-alerts")
        assert reader.subscribe(f"coldchain/status/{account}") == [1]
        ((_, payload, retained),) = wait_for(reader.received, TIMEOUT, "the retained status")
        assert json.loads(payload)["state"] == "online" and retained
    finally:
        connection.stop()
    late = clients("coldchain-alerts")
    assert late.subscribe(f"coldchain/status/{account}") == [1]
    ((_, payload, _),) = wait_for(late.received, TIMEOUT, "the retained offline status")
    assert json.loads(payload)["state"] == "offline"


@pytest.mark.integration
def test_deploys_broker_announces_the_maximum_packet_size_coldchain_announces(broker: DeployMosquitto) -> None:
    """deploy's mosquitto tells MQTT 5 clients the same Maximum Packet Size coldchain announces in CONNECT."""
    seen: list[Any] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mp-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
    client.username_pw_set("t-001", ACCOUNTS["t-001"])
    client.on_connect = lambda c, u, flags, reason, properties: seen.append(properties)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        (properties,) = wait_for(lambda: seen, TIMEOUT, "CONNACK")
        assert properties.MaximumPacketSize == MAX_PACKET_BYTES
    finally:
        client.disconnect()
        client.loop_stop()


# -- the broker's configuration, statically ---------------------------------------------------


def directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            found.setdefault(key, []).append(value.strip())
    return found


def test_broker_keeps_every_queued_message_and_admits_no_anonymous_client() -> None:
    """Persistence on, a large fixed queue per client (count and bytes), no anonymous access, an ACL."""
    conf = directives(BROKER_CONF)
    assert conf["allow_anonymous"] == ["false"]
    assert conf["persistence"] == ["true"]
    assert int(conf["max_queued_messages"][0]) >= 1_000_000
    assert int(conf["max_queued_bytes"][0]) > 0
    assert conf["listener"] == ["1883"]
    assert conf["acl_file"] == ["/mosquitto/config/acl"] and conf["password_file"] == ["/mosquitto/auth/passwd"]
    assert "pattern write coldchain/sensors/%u/#" in ACL.read_text(encoding="utf-8").splitlines()


def acl_users() -> set[str]:
    return {line.split()[1] for line in ACL.read_text(encoding="utf-8").splitlines() if line.startswith("user ")}


def test_start_script_creates_the_accounts_the_acl_names() -> None:
    """start.sh is valid sh and writes a password for every ACL user (sensors' accounts are added by hand)."""
    subprocess.run(["sh", "-n", str(START_SH)], check=True)
    created = set(re.findall(r"^set_password (\S+) ", START_SH.read_text(encoding="utf-8"), re.MULTILINE))
    assert (
        created
        == acl_users()
        == {"coldchain-ingest", "coldchain-rules", "coldchain-bags", "coldchain-alerts", "healthcheck"}
    )


# -- the compose file -------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as docker compose reads a .env file (quotes around a value removed)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def interpolate(value: str, env: dict[str, str], used: set[str]) -> str:
    """Compose's interpolation: ``$$``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1) or match.group(4), match.group(2), match.group(3)
        used.add(name)
        current = env.get(name)
        if operator == ":-":
            return current or argument
        if operator == "-":
            return argument if current is None else current
        if operator in (":?", "?"):
            assert current, f"${{{name}}} is required ({argument}) and .env.example does not set it"
            return current
        assert current is not None, f"${name} has no default and .env.example does not set it"
        return current

    return _INTERPOLATION.sub(substitute, value)


def interpolated(node: Any, env: dict[str, str], used: set[str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, used)
    if isinstance(node, dict):
        return {key: interpolated(value, env, used) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolated(item, env, used) for item in node]
    return node


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml as docker compose sees it with .env copied from .env.example."""
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    used: set[str] = set()
    document: dict[str, Any] = interpolated(raw, read_env_file(ENV_EXAMPLE), used)
    document["x-used-variables"] = sorted(used)
    return document


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    """The interpolated compose file validates against the Compose Specification's JSON schema."""
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert not list(validator.iter_errors({"services": {"x": {"image": "a", "restartt": "always"}}}))[:0]
    assert list(validator.iter_errors({"services": {"x": {"image": "a", "restartt": "always"}}}))  # it does check


def test_env_example_sets_every_variable_and_nothing_else(compose: dict[str, Any]) -> None:
    """Every variable the compose file reads is in .env.example, and .env.example holds nothing unused."""
    settings = {key for key in read_env_file(ENV_EXAMPLE) if not key.startswith("COMPOSE_")}  # compose's own
    assert settings == set(compose["x-used-variables"])
    assert read_env_file(ENV_EXAMPLE)["COMPOSE_PROJECT_NAME"] == "coldchain"


def test_images_are_pinned_and_coldchain_is_built_here(compose: dict[str, Any]) -> None:
    """Third-party images carry exact versions; ingest and rules build the repository's Dockerfile."""
    services = compose["services"]
    assert re.fullmatch(r"eclipse-mosquitto:2\.0\.\d+", services["mosquitto"]["image"])
    assert re.fullmatch(r"influxdb:1\.11\.\d+", services["influxdb"]["image"])
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", services["grafana"]["image"])
    for name in ("ingest", "rules"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_services_restart_report_health_and_keep_state_in_named_volumes(compose: dict[str, Any]) -> None:
    """Each service restarts, has a health check; state is in declared named volumes; bind mounts exist."""
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):  # the inventory: long syntax, never created empty by docker
                assert volume["type"] == "bind" and volume["read_only"] is True, name
                assert volume["bind"]["create_host_path"] is False, name
                continue
            source, target = volume.split(":")[:2]
            if target == "/exports":  # written by `coldchain export`: test_exports_land_in_a_host_directory
                continue
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
                assert volume.endswith(":ro"), f"{name}: {source} should be mounted read-only"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
    for name in ("ingest", "rules"):
        assert compose["services"][name]["depends_on"] == {
            "mosquitto": {"condition": "service_healthy"},
            "influxdb": {"condition": "service_healthy"},
        }


def test_coldchain_containers_are_healthy_only_when_ready(compose: dict[str, Any]) -> None:
    """coldchain's compose health checks ask /readyz (503 while broker or store is away), not /healthz."""
    for name in ("ingest", "rules"):
        command = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert "http://127.0.0.1:8080/readyz" in command and "/healthz" not in command, name


SYSTEMD_UNIT = DEPLOY / "systemd" / "coldchain.service"


def test_the_systemd_unit_is_valid_notify_with_a_watchdog(tmp_path: Path) -> None:
    """deploy/systemd/coldchain.service: Type=notify, WatchdogSec, restarts; systemd-analyze verify accepts it."""
    text = SYSTEMD_UNIT.read_text(encoding="utf-8")
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"] == "60s" and settings["Restart"] == "always"
    assert settings["ExecStart"].split()[1:3] == ["run", "--config"]
    analyze = subprocess.run(["sh", "-c", "command -v systemd-analyze"], capture_output=True, text=True).stdout.strip()
    assert analyze, "systemd-analyze not found: apt-get install systemd"
    executable = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "coldchain"
    if not executable.exists():
        executable = Path(shutil.which("coldchain") or "/bin/true")
    unit = tmp_path / "coldchain.service"  # the same unit, pointing at this machine's coldchain
    unit.write_text(text.replace("/opt/coldchain/.venv/bin/coldchain", str(executable)), encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    problems = [line for line in (result.stderr + result.stdout).splitlines() if "coldchain.service" in line]
    assert not problems, problems


def test_grafana_is_provisioned_with_the_dashboards_and_datasource(compose: dict[str, Any]) -> None:
    """Grafana mounts the provisioning and dashboards/ where the provider looks; the home dashboard exists."""
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/coldchain.yml").read_text(encoding="utf-8"))
    (files,) = provider["providers"]
    assert mounts["../dashboards"] == files["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards" / Path(home).relative_to(files["options"]["path"])).is_file()
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"  # opt-in, in .env
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/coldchain.yml").read_text(encoding="utf-8"))
    (source,) = datasource["datasources"]
    influx = compose["services"]["influxdb"]["environment"]
    assert source["user"] == influx["INFLUXDB_READ_USER"] and source["jsonData"]["dbName"] == influx["INFLUXDB_DB"]
    assert source["secureJsonData"]["password"] == "${INFLUX_GRAFANA_PASSWORD}"
    assert grafana["environment"]["INFLUX_GRAFANA_PASSWORD"] == influx["INFLUXDB_READ_USER_PASSWORD"]


@pytest.mark.parametrize("service", ["ingest", "rules"])
def test_deploy_config_loads_as_each_service_runs_it(
    service: str, compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/coldchain.toml with the service's environment is valid and points at the compose services."""
    for key in [key for key in os.environ if key.startswith("COLDCHAIN_")]:
        monkeypatch.delenv(key)
    spec = compose["services"][service]
    for key, value in spec["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings(DEPLOY / "coldchain.example.toml")
    influx = compose["services"]["influxdb"]["environment"]
    assert settings.mqtt.host == "mosquitto" and settings.mqtt.port == 1883
    assert settings.mqtt.username in acl_users() and settings.mqtt.username == f"coldchain-{service}"
    broker_env = compose["services"]["mosquitto"]["environment"]
    assert settings.mqtt.password.get_secret_value() == broker_env[f"MQTT_{service.upper()}_PASSWORD"]
    assert settings.influx.url == "http://influxdb:8086" and settings.influx.database == influx["INFLUXDB_DB"]
    assert settings.influx.username == influx["INFLUXDB_USER"]
    assert settings.influx.password.get_secret_value() == influx["INFLUXDB_USER_PASSWORD"]
    assert settings.api.port == 8080 and settings.api.host == "0.0.0.0"
    for path in (settings.spool.path, settings.rules.state_path, settings.rules.spool_path):
        assert str(path).startswith("/var/lib/coldchain/"), path
    assert spec["command"][0] == service
    if service == "rules":
        assert [user.name for user in settings.api.users] == ["pharmacy"]
        signing_key = read_env_file(ENV_EXAMPLE)["COLDCHAIN_EXPORT_SIGNING_KEY"]
        assert settings.export.signing_key.get_secret_value() == signing_key


def _git_ignored(path: Path) -> bool:
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)], capture_output=True)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


def test_the_inventory_lives_outside_the_tracked_files(compose: dict[str, Any]) -> None:
    """ingest and rules read the git-ignored deploy/coldchain.toml (COLDCHAIN_CONFIG), made from the tracked example."""
    assert (DEPLOY / "coldchain.example.toml").is_file()
    assert not (DEPLOY / "coldchain.toml").exists() or _git_ignored(DEPLOY / "coldchain.toml")
    assert _git_ignored(DEPLOY / "coldchain.toml") and not _git_ignored(DEPLOY / "coldchain.example.toml")
    for name in ("ingest", "rules"):
        service = compose["services"][name]
        (inventory,) = [volume for volume in service["volumes"] if isinstance(volume, dict)]
        assert inventory["source"] == "./coldchain.toml" == read_env_file(ENV_EXAMPLE)["COLDCHAIN_CONFIG"]
        assert service["command"] == [name, "--config", inventory["target"]]


def test_exports_land_in_a_host_directory(compose: dict[str, Any]) -> None:
    """The rules container writes exports into /exports, a git-ignored host directory named in .env."""
    mounts = dict(v.split(":")[:2] for v in compose["services"]["rules"]["volumes"] if isinstance(v, str))
    host = {target: source for source, target in mounts.items()}["/exports"]
    assert host == read_env_file(ENV_EXAMPLE)["COLDCHAIN_EXPORTS_DIR"] == "./exports"
    assert _git_ignored(DEPLOY / "exports" / "2026-q3")


# -- the image ------------------------------------------------------------------------------


def pip_installs(text: str) -> list[list[str]]:
    """The arguments of each ``python -m pip install`` in a shell script or Dockerfile, normalised.

    ``-q``, output redirections, ``-e`` and extras (``.[test]``) are dropped: CI installs the same
    project with the same constraints, editable and with its test tools.
    """
    joined = text.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.lstrip().startswith("#") or "pip install" not in line:
            continue
        for command in re.split(r"&&|;", line):
            words = shlex.split(command)
            for index in range(len(words) - 2):
                if words[index : index + 3] == ["-m", "pip", "install"]:
                    args = [
                        re.sub(r"\[[^\]]*\]$", "", word)
                        for word in words[index + 3 :]
                        if word not in ("-q", "-e", "--editable") and not word.startswith((">", "2>"))
                    ]
                    found.append(args)
    return found


def test_dockerfile_installs_as_ci_does() -> None:
    """The Dockerfile's pip steps are scripts/bootstrap.sh's: upgrade pip, install . with constraints.txt."""
    image = pip_installs((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    ci = pip_installs((ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8"))
    assert image == ci
    assert ["-c", "constraints.txt", "."] in image


def test_image_runs_unprivileged_from_a_pinned_base() -> None:
    """python:3.11-slim-bookworm, a non-root USER, the coldchain command as entrypoint; a tight context."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()]
    assert "FROM python:3.11-slim-bookworm" in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["coldchain"]' in lines
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore  # everything out but what is let back in
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "constraints.txt", "README.md", "coldchain/"}
