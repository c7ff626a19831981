"""Roles and electronic signatures over the real HTTP API (issue 17, CONTRACT §5): every row of the
role table allowed and refused, the signature rules, the history of a changed disposition, the
export's signatures, and throttled token checks; against a real ``coldchain run``, broker and database."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from coldchain.adapters.passwords import hash_password
from tests.publishing import wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import call, gauge, iso, token

pytestmark = pytest.mark.integration

PASSWORD = "signing-secret-1"
HASH = hash_password(PASSWORD)
ROLE_USERS = {"viewer": "v.iew", "staff": "k.tech", "pharmacist": "j.doe", "auditor": "q.audit", "admin": "a.smith"}
ROLES = list(ROLE_USERS)


def users_toml() -> str:
    out = []
    for role, name in ROLE_USERS.items():
        out += [
            "[[api.users]]",
            f'name = "{name}"',
            f'full_name = "{name.upper()} Full Name"',
            f'role = "{role}"',
            f'token = "{token(name)}"',
            f'password_hash = "{HASH}"',
        ]
    sha = hashlib.sha256(token("r.oleless").encode()).hexdigest()
    out += [  # no role: a pharmacist, as before roles; only the token's hash configured
        "[[api.users]]",
        'name = "r.oleless"',
        'full_name = "Roleless Pharmacist"',
        f'token_sha256 = "{sha}"',
        f'password_hash = "{HASH}"',
    ]
    out += ["[[api.users]]", 'name = "n.hash"', 'full_name = "No Hash"', f'token = "{token("n.hash")}"']
    out += ["[[api.users]]", 'name = "l.ock"', f'token = "{token("l.ock")}"', f'password_hash = "{HASH}"']
    out += ["[export]", 'signing_key = "integration-export-key-0123456789"']
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    """One service for the module's tests (each test uses its own alert or users)."""
    w = AlertWorld(tmp_path_factory.mktemp("roles"), mosquitto, influxd, extra=users_toml())
    w.service.start()
    yield w
    w.close()


_opened: dict[str, dict[str, Any]] = {}


def alert_of(world: AlertWorld, sensor: str) -> dict[str, Any]:
    """The alert of ``sensor`` (freezing, or agitation for the shake sensor), opened once per module."""
    if sensor not in _opened:
        kind, body = ("agitation", {"peak_g": 0.9}) if sensor.startswith("s-") else ("freezing", {"celsius": -1.5})
        topic = world.topic(sensor, "shake" if sensor.startswith("s-") else "temperature")
        world.publisher_for().send(topic, {"ts": iso(datetime.now(UTC)), **body})
        _opened[sensor] = world.wait_alert(kind, sensor, "open")
    return _opened[sensor]


def current(world: AlertWorld, alert_id: str) -> dict[str, Any]:
    alerts = call(world, "a.smith", "GET", "/api/alerts").json()
    return next(a for a in alerts if a["id"] == alert_id)


def sign_body(
    world: AlertWorld, alert_id: str, disposition: str, note: str, password: str = PASSWORD
) -> dict[str, Any]:
    """A signed disposition, naming the alert's current signature when it has one."""
    body: dict[str, Any] = {"note": note, "disposition": disposition, "signature": {"password": password}}
    signature = current(world, alert_id)["signature"]
    if signature is not None:
        body["supersedes"] = signature["id"]
    return body


def refusals(world: AlertWorld, reason: str) -> float:
    return gauge(world.service.get("/metrics").text, f'coldchain_api_refusals_total{{reason="{reason}"}}')


# -- the role table, row by row --------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_units_and_alerts(world: AlertWorld, role: str) -> None:
    """GET /api/units and /api/alerts answer 200 for every role."""
    user = ROLE_USERS[role]
    assert call(world, user, "GET", "/api/units").status_code == 200
    assert call(world, user, "GET", "/api/alerts").status_code == 200


@pytest.mark.parametrize(("role", "allowed"), [(r, r in ("staff", "pharmacist", "admin")) for r in ROLES])
def test_bag_events_by_role(world: AlertWorld, role: str, allowed: bool) -> None:
    """Staff, pharmacists and admins record bag events; viewers and auditors get 403 and nothing is stored."""
    user = ROLE_USERS[role]
    before = refusals(world, "forbidden")
    answer = call(world, user, "POST", f"/api/bags/B-{role}/events", json={"event": "diluted", "unit": "fridge-a"})
    if allowed:
        assert answer.status_code == 202, answer.text
        wait_for(lambda: world.rows(f'SELECT * FROM "bag_event" WHERE "bag" = \'B-{role}\''), 15, "the bag event")
        return
    assert answer.status_code == 403 and f"{user} is {role}" in answer.json()["error"]
    assert refusals(world, "forbidden") == before + 1
    fence = call(world, "a.smith", "POST", f"/api/bags/F-{role}/events", json={"event": "diluted", "unit": "fridge-a"})
    assert fence.status_code == 202
    wait_for(lambda: world.rows(f'SELECT * FROM "bag_event" WHERE "bag" = \'F-{role}\''), 15, "the fence event")
    assert world.rows(f'SELECT * FROM "bag_event" WHERE "bag" = \'B-{role}\'') == []


@pytest.mark.parametrize(("role", "allowed"), [(r, r in ("staff", "pharmacist", "admin")) for r in ROLES])
def test_acknowledge_without_disposition_by_role(world: AlertWorld, role: str, allowed: bool) -> None:
    """Staff, pharmacists and admins acknowledge; viewers and auditors get 403 and the alert is unchanged."""
    user = ROLE_USERS[role]
    alert = alert_of(world, "t-001")
    answer = call(world, user, "POST", f"/api/alerts/{alert['id']}/ack", json={"note": f"seen by {role}"})
    history = [entry["by"] for entry in current(world, alert["id"])["history"]]
    if allowed:
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "acknowledged" and user in history
    else:
        assert answer.status_code == 403 and "may not acknowledge" in answer.json()["error"]
        assert user not in history


@pytest.mark.parametrize(
    ("user", "allowed"),
    [(name, role in ("pharmacist", "admin")) for role, name in ROLE_USERS.items()] + [("r.oleless", True)],
)
def test_signed_disposition_by_role(world: AlertWorld, user: str, allowed: bool) -> None:
    """Pharmacists, admins and role-less users sign a disposition; the others get 403 even with the right password."""
    alert = alert_of(world, "t-001")
    before = current(world, alert["id"])
    answer = call(
        world,
        user,
        "POST",
        f"/api/alerts/{alert['id']}/ack",
        json=sign_body(world, alert["id"], "quarantined", f"{user} holds it"),
    )
    if allowed:
        assert answer.status_code == 200, answer.text
        signed = answer.json()
        assert (signed["signed_by"], signed["signature_meaning"]) == (user, "disposition: quarantined")
        assert signed["signed_by_full_name"] and signed["signed_at"]
        published = wait_for(
            lambda: next((a for a in world.payloads("freezing", "t-001") if a["signed_by"] == user), None),
            15,
            "the signed alert published",
        )
        assert published["signature"] == signed["signature"]
    else:
        assert answer.status_code == 403 and "may not set a disposition" in answer.json()["error"]
        assert current(world, alert["id"])["history"] == before["history"]


@pytest.mark.parametrize(("role", "allowed"), [(r, r in ("auditor", "admin")) for r in ROLES])
def test_exports_by_role(world: AlertWorld, role: str, allowed: bool) -> None:
    """Auditors and admins download the audit export as a zip; everyone else gets 403."""
    alert_of(world, "t-001")  # a reading today
    today = datetime.now(UTC).date().isoformat()
    answer = call(world, ROLE_USERS[role], "GET", f"/api/exports?from={today}&to={today}&unit=fridge-a")
    if allowed:
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(answer.content)).namelist()
        assert {n.split("/", 1)[1] for n in names} >= {"manifest.json", "signatures.csv", "report.pdf", "audit.csv"}
    else:
        assert answer.status_code == 403


@pytest.mark.parametrize(("role", "allowed"), [(r, r in ("pharmacist", "auditor", "admin")) for r in ROLES])
def test_audit_verify_by_role(world: AlertWorld, role: str, allowed: bool) -> None:
    """Pharmacists, auditors and admins verify the audit chain over HTTP; viewers and staff get 403."""
    answer = call(world, ROLE_USERS[role], "GET", "/api/audit/verify")
    if allowed:
        assert answer.status_code == 200, answer.text
        verdict = answer.json()
        assert verdict["intact"] is True and verdict["events"] >= 1 and verdict["first_break"] is None
    else:
        assert answer.status_code == 403


# -- signatures ------------------------------------------------------------------------------------


def test_missing_wrong_and_impossible_signatures_are_401_and_change_nothing(world: AlertWorld) -> None:
    """No signature, a wrong password, a pharmacist without password_hash: 401 saying why; a plain ack still works."""
    alert = alert_of(world, "t-002")
    path = f"/api/alerts/{alert['id']}/ack"
    missing = call(world, "j.doe", "POST", path, json={"note": "x", "disposition": "discarded"})
    assert missing.status_code == 401 and "signature missing" in missing.json()["error"]
    wrong = call(world, "j.doe", "POST", path, json=sign_body(world, alert["id"], "discarded", "x", "not-it-123"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "signature failed"
    cannot = call(world, "n.hash", "POST", path, json=sign_body(world, alert["id"], "discarded", "x"))
    assert cannot.status_code == 401 and "n.hash has no signing password" in cannot.json()["error"]
    assert current(world, alert["id"])["history"] == []
    plain = call(world, "n.hash", "POST", path, json={"note": "seen, calling the pharmacist"})
    assert plain.status_code == 200 and plain.json()["acknowledged_by"] == "n.hash"


def test_five_failed_signatures_lock_signing_audit_it_and_alert_the_admins(world: AlertWorld) -> None:
    """Five wrong passwords: 423 even with the right one, each failure and the lock audited, signing_locked raised."""
    alert = alert_of(world, "s-001")
    path = f"/api/alerts/{alert['id']}/ack"
    for n in range(5):
        wrong = call(
            world, "l.ock", "POST", path, json=sign_body(world, alert["id"], "discarded", "x", f"guess-{n}-xx")
        )
        assert wrong.status_code == 401, n
    assert "signing is now locked for l.ock" in wrong.json()["error"]
    locked = call(world, "l.ock", "POST", path, json=sign_body(world, alert["id"], "discarded", "x"))
    assert locked.status_code == 423 and "signing is locked for l.ock until" in locked.json()["error"]
    assert refusals(world, "signature_locked") >= 1
    assert current(world, alert["id"])["history"] == []
    raised = world.wait_alert("signing_locked", "l.ock", "open")
    assert raised["severity"] == "warning" and "l.ock" in raised["message"]

    def security_events() -> list[tuple[str, str]]:
        rows = world.rows('SELECT * FROM "audit" WHERE "actor" = \'l.ock\' ORDER BY time')
        found = [(r["action"], r["subject"]) for r in rows]
        return found if len(found) >= 6 else []

    events = wait_for(security_events, 15, "the failed signatures in the audit trail")
    assert events == [("signature_failed", "l.ock")] * 5 + [("signing_locked", "l.ock")]
    # another user is not locked
    assert call(world, "j.doe", "POST", path, json=sign_body(world, alert["id"], "discarded", "ok")).status_code == 200


def test_a_changed_disposition_names_the_earlier_one_and_the_alert_keeps_the_history(world: AlertWorld) -> None:
    """quarantined then released: without supersedes 409; with it 200; first note kept; history and audit show both."""
    alert = alert_of(world, "t-002")
    path = f"/api/alerts/{alert['id']}/ack"
    first_note = current(world, alert["id"])["note"]
    quarantined = call(world, "j.doe", "POST", path, json=sign_body(world, alert["id"], "quarantined", "hold"))
    assert quarantined.status_code == 200, quarantined.text
    first = quarantined.json()["signature"]
    silent = call(
        world,
        "a.smith",
        "POST",
        path,
        json={"note": "fine", "disposition": "released", "signature": {"password": PASSWORD}},
    )
    assert silent.status_code == 409 and first["id"] in silent.json()["error"]
    released = call(
        world, "a.smith", "POST", path, json={**sign_body(world, alert["id"], "released", "stability data ok")}
    )
    assert released.status_code == 200, released.text
    final = released.json()
    assert final["disposition"] == "released" and final["note"] == first_note  # the first note is never overwritten
    assert final["signature"]["supersedes"] == first["id"]
    signed = [(h["disposition"], h["signature"]["signed_by"]) for h in final["history"] if h["signature"]]
    assert signed == [("quarantined", "j.doe"), ("released", "a.smith")]
    published = world.wait_alert("freezing", "t-002", "acknowledged")
    wait_for(lambda: world.payloads("freezing", "t-002")[-1]["disposition"] == "released", 15, "the release published")
    assert published["id"] == alert["id"]


def test_the_export_zip_holds_the_signatures_and_verifies(world: AlertWorld, tmp_path: Path) -> None:
    """GET /api/exports: signatures.csv lists each signature with printed name and meaning; export verify passes."""
    alert = alert_of(world, "t-002")
    answer = call(
        world,
        "j.doe",
        "POST",
        f"/api/alerts/{alert['id']}/ack",
        json=sign_body(world, alert["id"], "discarded", "bin it"),
    )
    assert answer.status_code == 200, answer.text
    signature_id = answer.json()["signature"]["id"]
    today = datetime.now(UTC).date().isoformat()

    def exported() -> list[dict[str, str]]:
        got = call(world, "q.audit", "GET", f"/api/exports?from={today}&to={today}")
        assert got.status_code == 200, got.text
        archive = zipfile.ZipFile(io.BytesIO(got.content))
        archive.extractall(tmp_path / "zip")
        (name,) = {n.split("/", 1)[0] for n in archive.namelist()}
        rows = list(csv.DictReader(io.StringIO(archive.read(f"{name}/signatures.csv").decode())))
        return rows if any(r["signature_id"] == signature_id for r in rows) else []

    rows = wait_for(exported, 20, "the signature in the exported signatures.csv")
    mine = next(r for r in rows if r["signature_id"] == signature_id)
    assert (mine["signed_by"], mine["full_name"], mine["meaning"]) == (
        "j.doe",
        "J.DOE Full Name",
        "disposition: discarded",
    )
    assert mine["alert_id"] == alert["id"] and mine["unit"] == "fridge-b" and mine["kind"] == "freezing"
    (directory,) = (tmp_path / "zip").iterdir()
    key = call(world, "q.audit", "GET", "/api/keys/export")  # the inspector pins the signing key once
    assert key.status_code == 200, key.text
    trusted = tmp_path / "signing-key.json"
    trusted.write_bytes(key.content)
    verified = subprocess.run(
        [sys.executable, "-m", "coldchain.cli", "export", "verify", str(directory), "--public-key", str(trusted)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    bad = call(world, "q.audit", "GET", "/api/exports?from=yesterday&to=today")
    assert bad.status_code == 400 and "yesterday" in bad.json()["error"]


# -- failed token checks ---------------------------------------------------------------------------


def test_failed_token_checks_are_throttled_per_address(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """Ten wrong tokens from one address: the 11th call is 429 with Retry-After, even with a right token; counted."""
    w = AlertWorld(tmp_path, mosquitto, influxd, extra=users_toml())
    try:
        w.service.start()
        url = w.service.api + "/api/alerts"
        for n in range(10):
            wrong = httpx.get(url, headers={"Authorization": f"Bearer wrong-token-{n:04d}"}, timeout=15)
            assert wrong.status_code == 401, n
        good = httpx.get(url, headers={"Authorization": f"Bearer {token('j.doe')}"}, timeout=15)
        assert good.status_code == 429 and 1 <= int(good.headers["Retry-After"]) <= 60
        assert "too many failed token checks" in good.json()["error"]
        metrics = w.service.get("/metrics").text
        assert gauge(metrics, 'coldchain_api_refusals_total{reason="token"}') == 10
        assert gauge(metrics, 'coldchain_api_refusals_total{reason="rate_limited"}') == 1
        assert any("missing or wrong bearer token" in str(entry.get("message")) for entry in w.service.log_entries())
    finally:
        w.close()


def test_the_export_body_is_json_with_the_reason_when_refused(world: AlertWorld) -> None:
    """A refused call says why in JSON: who the caller is and what their role may not do."""
    answer = call(world, "v.iew", "GET", "/api/exports?from=2026-01-01&to=2026-01-02")
    assert answer.status_code == 403
    assert json.loads(answer.text) == {"error": "v.iew is viewer: a viewer may not download audit exports"}
