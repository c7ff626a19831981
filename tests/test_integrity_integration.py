"""Issue 12's attacks, each against a real ``coldchain`` process, mosquitto and InfluxDB, using only what the
attacker has: a sensor's topic, the bare bag topic, the InfluxDB credentials, a copy of an export."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from coldchain.core.audit_chain import event_from_row, next_event
from tests.publishing import wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import Scenario, iso

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    return subprocess.run(
        [sys.executable, "-m", "coldchain.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def rejected(world: Scenario, reason: str) -> list[dict[str, Any]]:
    return world.rows(f"SELECT * FROM \"rejected\" WHERE \"reason\" = '{reason}'")


def test_a_stored_reading_cannot_be_rewritten(scenario: Scenario) -> None:
    """Re-publishing a reading's ts with another celsius is rejected (conflicting_reading), also after a
    restart and for a late reading; the same reading again is a harmless redelivery."""
    scenario.service.start()
    pub = scenario.publisher_for()
    now = datetime.now(UTC).replace(microsecond=0)
    excursion, late = now - timedelta(minutes=30), now - timedelta(hours=5)
    pub.send(scenario.topic("t-001"), [{"ts": iso(excursion), "celsius": 9.6}, {"ts": iso(now), "celsius": 5.0}])
    wait_for(lambda: scenario.count() == 2, 15, "the two readings")
    pub.send(scenario.topic("t-001"), {"ts": iso(excursion), "celsius": 4.0})  # the rewrite
    pub.send(scenario.topic("t-001"), {"ts": iso(excursion), "celsius": 9.6})  # a redelivery
    pub.send(scenario.topic("t-001"), {"ts": iso(late), "celsius": 9.9})  # late, beyond the in-memory window
    wait_for(lambda: scenario.count() == 3, 15, "the late reading")
    (row,) = wait_for(lambda: rejected(scenario, "conflicting_reading"), 15, "the rejection")
    assert "celsius=9.6" in row["detail"] and "celsius=4.0" in row["detail"]
    assert row["topic"] == scenario.topic("t-001") and json.loads(row["payload"])["celsius"] == 4.0

    assert scenario.service.stop() == 0
    scenario.service.start()  # an empty window: the store decides
    pub.send(scenario.topic("t-001"), {"ts": iso(excursion), "celsius": 3.0})
    pub.send(scenario.topic("t-001"), {"ts": iso(late), "celsius": 5.0})
    wait_for(lambda: len(rejected(scenario, "conflicting_reading")) == 3, 15, "two more rejections")
    stored = scenario.rows('SELECT celsius FROM "temperature" ORDER BY time')
    assert [r["celsius"] for r in stored] == [9.9, 9.6, 5.0]
    metrics = scenario.service.get("/metrics").text
    assert 'coldchain_rejections_total{reason="conflicting_reading"} 2.0' in metrics


def test_a_bag_timer_cannot_be_silenced(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """[diluted T, discarded T-1h] is refused whole (invalid_sequence); the genuine dilution that follows still
    expires; an earlier second dilution rules and raises bag_conflict, recorded in the audit trail."""
    shelf = ['overrides = { diluted_use_within = "1h", bag_warning_before = "30m" }']
    world = AlertWorld(tmp_path, mosquitto, influxd, unit_options={"fridge-a": shelf})
    try:
        world.service.start()
        pub = world.publisher_for()
        topic = f"{world.prefix}/bags/B-7/events"
        diluted = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=59, seconds=50)
        body = {"event": "diluted", "unit": "fridge-a", "by": "j.doe"}
        pub.send(topic, [{**body, "ts": iso(diluted)}, {"event": "discarded", "ts": iso(diluted - timedelta(hours=1))}])
        (refused,) = wait_for(lambda: rejected(world, "invalid_sequence"), 15, "the impossible sequence refused")
        assert "bag B-7: discarded at" in refused["detail"]  # judged in time order: before any dilution
        pub.send(topic, {**body, "ts": iso(diluted)})
        expired = world.wait_alert("bag_expired", "B-7", "open", timeout=30)
        assert expired["started_at"] == iso(diluted + timedelta(hours=1))
        assert [r["event"] for r in world.rows('SELECT * FROM "bag_event"')] == ["diluted"]
        assert world.rows('SELECT * FROM "bag_event"')[0]["source"] == "mqtt"  # the bare topic: unattributed

        pub.send(topic, {**body, "ts": iso(diluted - timedelta(minutes=10))})  # a second, earlier label
        conflict = world.wait_alert("bag_conflict", "B-7", "open")
        assert conflict["severity"] == "warning"

        def audited() -> list[dict[str, Any]]:
            return world.rows("SELECT * FROM \"audit\" WHERE \"action\" = 'bag_conflict'")

        (event,) = wait_for(audited, 15, "the conflict in the audit trail")
        assert event["subject"] == "B-7"
    finally:
        world.close()


SCANNER = """
[[scanners]]
id = "scan-01"
site = "main-pharmacy"
"""


def test_scanner_events_carry_their_source(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """A scanner's event is stored and audited with source scanner:<id>; an unknown scanner is rejected."""
    world = AlertWorld(tmp_path, mosquitto, influxd, extra=SCANNER)
    try:
        world.service.start()
        pub = world.publisher_for()
        body = {"ts": iso(datetime.now(UTC)), "event": "diluted", "unit": "fridge-a", "by": "n.nurse"}
        pub.send(f"{world.prefix}/scanners/scan-01/bags/B-9/events", body)
        pub.send(f"{world.prefix}/scanners/scan-99/bags/B-8/events", body)
        (row,) = wait_for(lambda: world.rows('SELECT * FROM "bag_event"'), 15, "the scanner's event")
        assert (row["bag"], row["by"], row["source"]) == ("B-9", "n.nurse", "scanner:scan-01")
        wait_for(lambda: rejected(world, "unknown_scanner"), 15, "the unknown scanner refused")

        def audited() -> list[dict[str, Any]]:
            return world.rows("SELECT * FROM \"audit\" WHERE \"action\" = 'bag_event'")

        (event,) = wait_for(audited, 15, "the audit event")
        assert json.loads(event["details"])["source"] == "scanner:scan-01"
    finally:
        world.close()


def test_the_audit_trail_cannot_be_truncated_or_recomputed_quietly(
    tmp_path: Path, mosquitto: Any, influxd: Any
) -> None:
    """With the InfluxDB credentials only: deleting the newest events, or rewriting one and recomputing the
    chain, makes audit verify exit 1 naming the first missing or altered event."""
    world = AlertWorld(tmp_path, mosquitto, influxd)
    try:
        world.service.start()
        pub = world.publisher_for()
        now = datetime.now(UTC).replace(microsecond=0)
        for index in range(3):
            body = {"ts": iso(now - timedelta(minutes=index)), "event": "diluted", "unit": "fridge-a", "by": "x"}
            pub.send(f"{world.prefix}/bags/B-{index}/events", body)
        rows = wait_for(lambda: [r for r in [world.rows('SELECT * FROM "audit"')] if len(r) >= 4], 20, "4 events")[0]
        wait_for(lambda: cli("audit", "verify", "--config", str(world.config)).returncode == 0, 20, "retained head")
        ok = cli("audit", "verify", "--config", str(world.config))
        assert "every MAC under the audit key holds" in ok.stdout and "retained" in ok.stdout, ok.stdout
        world.service.stop()

        events = sorted((event_from_row({**r, "time": datetime.fromtimestamp(r["time"] / 1000, UTC)}) for r in rows),
                        key=lambda e: e.seq)  # fmt: skip
        # rewrite seq 3 and recompute every hash after it, as someone with store access (but not the key) can
        forged = [next_event(events[1], events[2].at, "someone", events[2].action, events[2].subject, {"x": 1})]
        forged.append(next_event(forged[0], events[3].at, events[3].actor, events[3].action, events[3].subject, {}))
        from coldchain.adapters.store.influx import InfluxStore
        from coldchain.config import InfluxConfig

        store = InfluxStore(InfluxConfig(url=influxd.url, database=world.database))
        try:
            store.write([forged[0], forged[1]])
        finally:
            store.close()
        recomputed = cli("audit", "verify", "--config", str(world.config))
        assert recomputed.returncode == 1, recomputed.stdout + recomputed.stderr
        assert "seq 3" in recomputed.stderr, recomputed.stderr

        cut = events[1].at  # DELETE the newest events, keeping seq 1
        delete = f'DELETE FROM "audit" WHERE time >= {int(cut.timestamp() * 1000)}ms'
        httpx.post(f"{influxd.url}/query", params={"db": world.database, "q": delete}).raise_for_status()
        truncated = cli("audit", "verify", "--config", str(world.config))
        assert truncated.returncode == 1
        assert "the chain ends at seq 1: seq 2..4 missing (the trail was truncated)" in truncated.stderr
    finally:
        world.close()


def test_a_wiped_state_directory_continues_the_chain(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """After the state directory is wiped, the worker continues from the store's head with state_reset, not seq 1."""
    world = AlertWorld(tmp_path, mosquitto, influxd)
    try:
        world.service.start()
        wait_for(lambda: world.rows('SELECT * FROM "audit"'), 20, "config_loaded")
        assert world.service.stop() == 0
        for path in tmp_path.iterdir():
            if path.name.startswith(("rules", "coldchain-audit", "notify", "spool")):
                path.unlink()
        world.service.start()
        rows = wait_for(lambda: [r for r in [world.rows('SELECT * FROM "audit"')] if len(r) >= 3], 20, "3 events")[0]
        assert [(r["seq"], r["action"]) for r in sorted(rows, key=lambda r: r["seq"])] == [
            (1, "config_loaded"),
            (2, "state_reset"),
            (3, "config_loaded"),
        ]
        details = json.loads(next(r for r in rows if r["action"] == "state_reset")["details"])
        assert details["store_head_seq"] == 1
        verified = cli("audit", "verify", "--config", str(world.config))
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        world.close()


def test_replayed_rejections_are_recovered_once(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """A sensor missing from the inventory is rejected with its whole payload; after the fix, replay stores the
    readings once (a second replay stores nothing twice) and the replay is audited."""
    world = AlertWorld(tmp_path, mosquitto, influxd)
    try:
        world.service.start()
        now = datetime.now(UTC).replace(microsecond=0)
        upload = [{"ts": iso(now - timedelta(seconds=30 * i)), "celsius": 5.0, "note": "x" * 40} for i in range(60)]
        world.publisher_for().send(world.topic("t-009"), upload)
        (row,) = wait_for(lambda: rejected(world, "unknown_sensor"), 15, "the rejection")
        assert len(row["payload"]) > 1024 and json.loads(row["payload"]) == upload  # the whole payload
        listed = cli("rejected", "list", "--config", str(world.config), "--reason", "unknown_sensor")
        assert listed.returncode == 0 and "t-009" in listed.stdout and "1 rejected message" in listed.stdout

        config = world.config.read_text() + '[[sensors]]\nid = "t-009"\nunit = "fridge-b"\nkind = "temperature"\n'
        world.config.write_text(config)  # the inventory fix
        args = ("rejected", "replay", "--config", str(world.config), "--reason", "unknown_sensor", "--by", "qa")
        first = cli(*args, "--topic", f"{world.prefix}/sensors/+/temperature")
        assert first.returncode == 0, first.stderr
        assert "1 accepted" in first.stdout
        assert world.count() == 60
        second = cli(*args)
        assert second.returncode == 0 and world.count() == 60
        audit = world.rows("SELECT * FROM \"audit\" WHERE \"action\" = 'rejected_replayed'")
        assert len(audit) == 2 and audit[0]["actor"] == "qa"
    finally:
        world.close()


def test_export_csv_is_spreadsheet_safe_and_its_chain_verifies(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """A lot number that is a formula is written with a leading apostrophe; the audit chain in audit.csv still
    verifies against the real values; the export's manifest anchors the chain head."""
    world = AlertWorld(tmp_path, mosquitto, influxd)
    try:
        world.service.start()
        lot = '=HYPERLINK("http://evil.example/","label")'
        now = datetime.now(UTC).replace(microsecond=0)
        world.publisher_for().send(world.topic("t-001"), {"ts": iso(now - timedelta(minutes=5)), "celsius": 5.0})
        body = {"ts": iso(now - timedelta(minutes=5)), "event": "diluted", "unit": "fridge-a", "lot": lot, "by": lot}
        world.publisher_for().send(f"{world.prefix}/bags/B-1/events", body)
        wait_for(lambda: len(world.rows('SELECT * FROM "audit"')) >= 2, 20, "the audited bag event")
        out = tmp_path / "export"
        day = now.date().isoformat()
        done = cli("export", "--config", str(world.config), "--from", day, "--to", day, "--out", str(out))
        assert done.returncode == 0, done.stderr
        with (out / "bags.csv").open(newline="") as handle:
            (bag,) = list(csv.DictReader(handle))
        assert bag["lot"] == "'" + lot
        assert "'=HYPERLINK" in (out / "audit.csv").read_text()
        verified = cli("export", "verify", str(out), "--public-key", str(tmp_path / "none.pem"))
        assert verified.returncode == 2  # an unreadable trusted key: trust not established
        key = httpx.get(world.service.api + "/api/keys/export", timeout=5)
        assert key.status_code == 401  # (no users configured: the key is served to users only)
        pem = tmp_path / "trusted.json"
        pem.write_text(json.dumps(json.loads((out / "manifest.json").read_text())["signer"]))
        verified = cli("export", "verify", str(out), "--public-key", str(pem))
        assert verified.returncode == 0 and "audit.csv: hash chain intact" in verified.stdout, verified.stdout
        anchored = cli("audit", "verify", "--config", str(world.config), "--anchor", str(out))
        assert anchored.returncode == 0 and "export export: seq" in anchored.stdout, anchored.stdout
    finally:
        world.close()
