"""The HTTP API of CONTRACT §5 against a real ``coldchain run``, broker and database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.publishing import wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import SIGNING_PASSWORD, TWO_USERS, iso

pytestmark = pytest.mark.integration

PASSWORD = SIGNING_PASSWORD
JDOE = {"Authorization": "Bearer token-of-j-doe-123"}


@pytest.fixture
def world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    w = AlertWorld(tmp_path, mosquitto, influxd, extra=TWO_USERS)
    w.service.start()
    yield w
    w.close()


def api(world: AlertWorld, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, world.service.api + path, timeout=15, **kwargs)


def freezing(world: AlertWorld) -> dict[str, Any]:
    world.publisher_for().send(world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": -1.5})
    return world.wait_alert("freezing", "t-001", "open")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no token at all
        {"Authorization": "Bearer wrong-token-000"},  # a token nobody has
        {"Authorization": "Basic dG9rZW4tb2Ytai1kb2UtMTIzOg=="},  # the right secret, wrong scheme
        {"Authorization": "Bearer token-of-j-doe-12"},  # a prefix of a real token
    ],
)
def test_wrong_or_missing_token_is_401_and_changes_nothing(world: AlertWorld, headers: dict[str, str]) -> None:
    """Without a valid bearer token every /api/ call is 401 and the alert stays as it was."""
    opened = freezing(world)
    for method, path, body in [
        ("GET", "/api/alerts", None),
        ("GET", "/api/units", None),
        ("POST", f"/api/alerts/{opened['id']}/ack", {"note": "x"}),
        ("POST", "/api/bags/B-9/events", {"event": "diluted", "unit": "fridge-a"}),
    ]:
        response = api(world, method, path, headers=headers, json=body)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    alerts = api(world, "GET", "/api/alerts", headers=JDOE).json()
    assert [a["state"] for a in alerts if a["id"] == opened["id"]] == ["open"]
    assert [a["state"] for a in world.payloads("freezing", "t-001")] == ["open"]


def test_ack_records_the_token_user_publishes_and_stores(world: AlertWorld) -> None:
    """An ack sets acknowledged with the token's user (not a name in the body), published and stored."""
    opened = freezing(world)
    response = api(
        world,
        "POST",
        f"/api/alerts/{opened['id']}/ack",
        headers=JDOE,
        json={"note": "moved stock to fridge B", "disposition": "quarantined", "signature": {"password": PASSWORD}},
    )
    assert response.status_code == 200, response.text
    acked = response.json()
    assert (acked["state"], acked["acknowledged_by"], acked["disposition"]) == ("acknowledged", "j.doe", "quarantined")
    assert acked["note"] == "moved stock to fridge B" and acked["acknowledged_at"]
    published = world.wait_alert("freezing", "t-001", "acknowledged")
    assert published["id"] == opened["id"] and published["acknowledged_by"] == "j.doe"
    stored = wait_for(
        lambda: [p for p in world.stored_alerts("t-001") if p["state"] == "acknowledged"], 15, "stored ack"
    )
    assert stored[0]["acknowledged_by"] == "j.doe" and stored[0]["note"] == "moved stock to fridge B"
    listed = api(world, "GET", "/api/alerts?state=acknowledged", headers=JDOE).json()
    assert [a["id"] for a in listed] == [opened["id"]]
    still_open = api(world, "GET", "/api/alerts?state=open", headers=JDOE).json()
    assert opened["id"] not in [a["id"] for a in still_open]


def test_a_name_in_the_body_is_ignored(world: AlertWorld) -> None:
    """A body claiming another user is refused: the recorded user can only come from the token."""
    opened = freezing(world)
    response = api(
        world, "POST", f"/api/alerts/{opened['id']}/ack", headers=JDOE, json={"note": "x", "acknowledged_by": "boss"}
    )
    assert response.status_code == 400
    assert [a["state"] for a in world.payloads("freezing", "t-001")] == ["open"]


def test_ack_of_a_resolved_alert_keeps_resolved(world: AlertWorld) -> None:
    """Acknowledging a resolved alert records the ack and keeps state resolved."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(minutes=30)
    upload = [{"ts": iso(start + timedelta(minutes=m)), "celsius": 9.5 if m < 16 else 5.0} for m in range(30)]
    world.publisher_for().send(world.topic("t-001"), upload)
    resolved = world.wait_alert("temperature_high", "t-001", "resolved")
    body = {"disposition": "discarded", "signature": {"password": PASSWORD}}
    response = api(world, "POST", f"/api/alerts/{resolved['id']}/ack", headers=JDOE, json=body)
    assert response.status_code == 200
    assert response.json()["state"] == "resolved" and response.json()["acknowledged_by"] == "j.doe"


def test_unknown_alert_and_bad_bodies(world: AlertWorld) -> None:
    """Unknown alerts are 404; malformed bodies are 400 with a reason."""
    assert api(world, "POST", "/api/alerts/nope/ack", headers=JDOE, json={}).status_code == 404
    opened = freezing(world)
    bad = api(world, "POST", f"/api/alerts/{opened['id']}/ack", headers=JDOE, json={"disposition": "eaten"})
    assert bad.status_code == 400 and "disposition" in bad.json()["error"]
    assert api(world, "POST", f"/api/alerts/{opened['id']}/ack", headers=JDOE, content=b"{").status_code == 400


def test_bag_event_over_http_uses_the_token_user(world: AlertWorld) -> None:
    """POST /api/bags/<id>/events publishes the contract's event with by = the token's user."""
    response = api(
        world,
        "POST",
        "/api/bags/B-0042/events",
        headers={"Authorization": "Bearer token-of-a-smith-456"},
        json={"event": "diluted", "unit": "fridge-a", "lot": "L9", "by": "someone-else"},
    )
    assert response.status_code == 202, response.text
    wait_for(lambda: world.count("bag_event", "event") == 1, 15, "the stored bag event")
    row = world.rows('SELECT * FROM "bag_event"')[0]
    assert (row["bag"], row["by"], row["unit"], row["lot"]) == ("B-0042", "a.smith", "fridge-a", "L9")
    assert row["source"] == "api:a.smith"  # the token's user, on a topic only the service may publish
    unknown = api(world, "POST", "/api/bags/B-1/events", headers=JDOE, json={"event": "diluted", "unit": "nope"})
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]

    def bag_listed() -> list[dict[str, Any]]:
        units = api(world, "GET", "/api/units", headers=JDOE).json()
        return next(u for u in units if u["id"] == "fridge-a")["bags"]

    bags = wait_for(bag_listed, 15, "the bag in /api/units")
    assert bags[0]["bag"] == "B-0042" and 7 * 3600 < bags[0]["seconds_left"] <= 8 * 3600


def test_units_show_last_readings_and_open_alerts(world: AlertWorld) -> None:
    """GET /api/units lists each unit with its sensors' last readings and its open alerts."""
    opened = freezing(world)
    wait_for(lambda: world.count() == 1, 15, "the reading stored")
    units = {u["id"]: u for u in api(world, "GET", "/api/units", headers=JDOE).json()}
    assert set(units) == {"fridge-a", "fridge-b"}
    a = units["fridge-a"]
    assert a["name"] == "Infusion fridge A" and a["site"] == "main-pharmacy"
    t001 = next(s for s in a["sensors"] if s["id"] == "t-001")
    assert t001["last"]["celsius"] == -1.5
    assert [al["id"] for al in a["open_alerts"]] == [opened["id"]]


@pytest.mark.parametrize(
    "bag",
    [
        "B1%2Fx",  # decodes to B1/x: would publish to <prefix>/bags/B1/x/events, which nothing reads
        "B1%2B",  # a wildcard in a topic name (was a 500)
        "B1%23",
        "B" * 65,  # over the 64-character limit
    ],
)
def test_a_bag_id_is_checked_after_decoding(world: AlertWorld, bag: str) -> None:
    """A bag id that decodes to '/', '+' or '#', or is too long, is a 400 and nothing is published."""
    body = {"event": "diluted", "unit": "fridge-a"}
    response = api(world, "POST", f"/api/bags/{bag}/events", headers=JDOE, json=body)
    assert response.status_code == 400, response.text
    assert "bag id" in response.json()["error"]
    assert api(world, "POST", "/api/bags/B-ok/events", headers=JDOE, json=body).status_code == 202
    wait_for(lambda: world.count("bag_event", "event") == 1, 15, "only the good bag's event")
    assert [row["bag"] for row in world.rows('SELECT * FROM "bag_event"')] == ["B-ok"]


def test_the_export_public_key_is_served(world: AlertWorld, tmp_path: Path) -> None:
    """GET /api/keys/export gives the Ed25519 public key (PEM, base64, fingerprint) that signs the manifests."""
    from coldchain.reporting.signing import fingerprint, load_public_key

    response = api(world, "GET", "/api/keys/export", headers=JDOE)
    assert response.status_code == 200, response.text
    key = response.json()
    assert key["algorithm"] == "Ed25519" and key["fingerprint"].startswith("SHA256:")
    assert fingerprint(load_public_key(response.content)) == key["fingerprint"]
    assert fingerprint(load_public_key(key["public_key"].encode())) == key["fingerprint"]
    assert api(world, "GET", "/api/keys/export", headers=JDOE).json() == key  # created once, then the same
    assert api(world, "GET", "/api/keys/export").status_code == 401
