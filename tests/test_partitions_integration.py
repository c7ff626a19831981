"""Partitioned rules workers (``rules.sites``): two ``coldchain rules`` processes against one mosquitto and
one influxd, each judging its own site; every alert is raised once, by the worker that owns its site."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.publishing import Collector, Publisher, wait_for
from tests.service_process import ColdchainProcess, free_port
from tests.world import influxql, iso

pytestmark = pytest.mark.integration

TOKEN = "token-of-viewer-123"


def partition_config(directory: Path, mqtt: Any, influx: Any, prefix: str, database: str, sites: list[str]) -> Path:
    """One partition's configuration: the same inventory (two sites), its own sites, session, state and port."""
    directory.mkdir()
    name = "-".join(sites)
    lines = [
        "[mqtt]",
        f'url = "{mqtt.url}"',
        f'client_id = "cc-{uuid.uuid4().hex[:8]}"',
        f'topic_prefix = "{prefix}"',
        'reconnect_max = "2s"',
        "[influx]",
        f'url = "{influx.url}"',
        f'database = "{database}"',
        'linger = "100ms"',
        "[spool]",
        f'path = "{directory / "spool.sqlite"}"',
        "[rules]",
        f'client_id = "ccr-{name}-{uuid.uuid4().hex[:6]}"',
        f"sites = {json.dumps(sites)}",
        f'state_path = "{directory / "rules.sqlite"}"',
        f'spool_path = "{directory / "rules-spool.sqlite"}"',
        "[notify]",
        f'state_path = "{directory / "notify.sqlite"}"',
        "[api]",
        f'listen = "127.0.0.1:{free_port()}"',
        "[log]",
        'format = "json"',
        "[[api.users]]",
        'name = "viewer"',
        'role = "viewer"',
        f'token = "{TOKEN}"',
    ]
    for unit, site in (("fridge-n", "north"), ("fridge-s", "south")):
        lines += ["[[units]]", f'id = "{unit}"', f'site = "{site}"']
    for sensor, unit in (("t-n", "fridge-n"), ("t-s", "fridge-s")):
        lines += ["[[sensors]]", f'id = "{sensor}"', f'unit = "{unit}"', 'kind = "temperature"']
    path = directory / "coldchain.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def audit_verify(worker: ColdchainProcess) -> tuple[int, str]:
    """``coldchain audit verify`` with the partition's configuration (its chain, key and retained head)."""
    done = subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "audit", "verify", "--config", str(worker.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def known_alerts(worker: ColdchainProcess) -> list[dict[str, Any]]:
    """The alerts a worker holds (active and recently resolved), from its HTTP API."""
    response = httpx.get(worker.api + "/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    response.raise_for_status()
    return list(response.json())


def test_two_partitions_raise_each_alert_once_by_its_owner(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """Excursions and expired bags at two sites: each alert is published once, by the partition of its site."""
    prefix, database = f"cc{uuid.uuid4().hex[:8]}", f"db_{uuid.uuid4().hex[:8]}"
    north = ColdchainProcess(
        partition_config(tmp_path / "north", mosquitto, influxd, prefix, database, ["north"]), "rules"
    )
    south = ColdchainProcess(
        partition_config(tmp_path / "south", mosquitto, influxd, prefix, database, ["south"]), "rules"
    )
    alerts = Collector("127.0.0.1", mosquitto.port, f"{prefix}/alerts/#")
    publisher = Publisher("127.0.0.1", mosquitto.port)
    try:
        north.start()
        south.start()
        now = datetime.now(UTC)
        for sensor in ("t-n", "t-s"):  # a single reading at 0 °C is freezing at once
            publisher.send(
                f"{prefix}/sensors/{sensor}/temperature", {"ts": iso(now - timedelta(seconds=5)), "celsius": 0.0}
            )
        for bag, unit in (("B-N", "fridge-n"), ("B-S", "fridge-s")):  # diluted 9 h ago: expired
            event = {"event": "diluted", "ts": iso(now - timedelta(hours=9)), "unit": unit, "by": "j.doe"}
            publisher.send(f"{prefix}/bags/{bag}/events", event)
        # an event naming no unit: only the partition that knows the bag judges it
        publisher.send(f"{prefix}/bags/B-N/events", {"event": "discarded", "ts": iso(now - timedelta(minutes=1))})

        def opened() -> Counter[tuple[str, str]]:
            return Counter(
                (alert["kind"], alert["subject"])
                for _, payload, _ in alerts.snapshot()
                if (alert := json.loads(payload))["state"] == "open" and alert["site"] != "coldchain"
            )

        expected = {("freezing", "t-n"), ("freezing", "t-s"), ("bag_expiring", "B-S"), ("bag_expired", "B-S")}
        wait_for(lambda: expected <= set(opened()), 30, "both sites' alerts")
        wait_for(lambda: ("bag_expired", "B-N") in opened(), 30, "the north bag's expiry (revealed by its discard)")
        counts = opened()
        assert all(count == 1 for count in counts.values()), counts  # no alert published by both workers
        assert {kind for kind, subject in counts if subject == "B-N"} == {"bag_expiring", "bag_expired"}
        for site, worker, subjects in (("north", north, {"t-n", "B-N"}), ("south", south, {"t-s", "B-S"})):
            mine = [a for a in known_alerts(worker) if a["site"] != "coldchain"]
            assert {a["subject"] for a in mine} == subjects, site  # each worker holds its own site's alerts
            assert {a["site"] for a in mine} == {site}
        # the discard resolved north's bag alerts; the south bag is still open, the north one resolved, once each
        resolved = Counter(
            (alert["kind"], alert["subject"])
            for _, payload, _ in alerts.snapshot()
            if (alert := json.loads(payload))["state"] == "resolved"
        )
        assert resolved[("bag_expired", "B-N")] == 1 and resolved[("bag_expired", "B-S")] == 0
        for worker in (north, south):  # each partition's audit chain is whole and its own
            name = worker.config.parent.name
            wait_for(lambda w=worker: audit_verify(w)[0] == 0, 20, f"{name}'s audit chain verified")  # type: ignore[misc]
            output = audit_verify(worker)[1]
            assert "audit chain OK" in output and "NOT VERIFIED" not in output, output
        stored = influxql(influxd.url, database, 'SELECT * FROM "alert" WHERE "state" = \'open\' GROUP BY *')
        per_alert = Counter(row["id"] for row in stored if row.get("site") != "coldchain")
        assert per_alert and all(count == 1 for count in per_alert.values()), per_alert
    finally:
        publisher.close()
        alerts.close()
        north.kill()
        south.kill()
