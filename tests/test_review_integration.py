"""The daily review over the real HTTP API of ``coldchain run`` (issue 15 item 2): figures computed from the
stored readings, a signed review stored in measurement ``review`` and audited, ``review_missed`` opened by
the site's deadline and resolved by the signature, and kept across a restart; against real servers."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coldchain.adapters.passwords import hash_password
from tests.publishing import wait_for
from tests.test_rules_integration import AlertWorld
from tests.world import call, iso, token

pytestmark = pytest.mark.integration

PASSWORD = "review-secret-1"
USERS = {"k.tech": "staff", "v.iew": "viewer", "q.audit": "auditor"}


def extra(timezone: str = "Europe/Berlin") -> str:
    lines = [
        "[[sites]]",
        'id = "main-pharmacy"',
        f'timezone = "{timezone}"',
        # every day a workday, due at local midnight: today's deadline has always passed
        'workdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]',
        'review_due = "00:00"',
    ]
    hashed = hash_password(PASSWORD)
    for name, role in USERS.items():
        lines += ["[[api.users]]", f'name = "{name}"', f'full_name = "{name.upper()} Full"', f'role = "{role}"']
        lines += [f'token = "{token(name)}"', f'password_hash = "{hashed}"']
    return "\n".join(lines) + "\n"


@pytest.fixture
def world(tmp_path: Any, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    w = AlertWorld(tmp_path, mosquitto, influxd, extra=extra())
    w.service.start()
    yield w
    w.close()


@pytest.fixture
def utc_world(tmp_path: Any, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    """The same site in UTC, so the export's days (UTC here) are the reviews' local dates."""
    w = AlertWorld(tmp_path, mosquitto, influxd, extra=extra("UTC"))
    w.service.start()
    yield w
    w.close()


def test_review_flow_over_the_api(world: AlertWorld) -> None:
    """Figures from readings; 403/401/404; a signed review is stored, audited and resolves review_missed."""
    missed = world.wait_alert("review_missed", "fridge-a", "open")
    assert missed["severity"] == "warning" and missed["unit"] == "fridge-a"
    now = datetime.now(UTC).replace(microsecond=0)
    publisher = world.publisher_for()
    for minutes, celsius in [(40, 5.0), (30, 9.5), (20, 3.1), (10, 4.4)]:
        publisher.send(world.topic("t-001"), {"ts": iso(now - timedelta(minutes=minutes)), "celsius": celsius})
    wait_for(lambda: world.count() >= 4 or None, 15, "four readings stored")

    def figures() -> dict[str, Any] | None:
        answer = call(world, "k.tech", "GET", "/api/units/fridge-a/review")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        sensor = next(s for s in body["sensors"] if s["sensor"] == "t-001")
        return body if sensor["readings"] == 4 else None

    body = wait_for(figures, 15, "the review figures of four readings")
    assert body is not None
    t001 = next(s for s in body["sensors"] if s["sensor"] == "t-001")
    assert (t001["min_celsius"], t001["max_celsius"], t001["current_celsius"]) == (3.1, 9.5, 4.4)
    assert t001["minutes_out_of_range"] == 10.0  # 9.5 °C stood from minute 30 to minute 20
    assert body["local_date"] == now.astimezone(ZoneInfo("Europe/Berlin")).date().isoformat()
    assert body["last_review_at"] is None

    assert call(world, "v.iew", "GET", "/api/units/fridge-a/review").status_code == 403
    assert call(world, "q.audit", "GET", "/api/units/fridge-a/review").status_code == 200
    signed = {"note": "min/max checked", "signature": {"password": PASSWORD}}
    assert call(world, "q.audit", "POST", "/api/units/fridge-a/reviews", json=signed).status_code == 403
    assert call(world, "k.tech", "POST", "/api/units/nowhere/reviews", json=signed).status_code == 404
    wrong = {"note": "x", "signature": {"password": "wrong"}}
    assert call(world, "k.tech", "POST", "/api/units/fridge-a/reviews", json=wrong).status_code == 401
    assert call(world, "k.tech", "POST", "/api/units/fridge-a/reviews", json={"note": "x"}).status_code == 401

    answer = call(world, "k.tech", "POST", "/api/units/fridge-a/reviews", json=signed)
    assert answer.status_code == 201, answer.text
    review = answer.json()
    assert review["signature"]["signed_by"] == "k.tech" and review["signature"]["full_name"] == "K.TECH Full"
    assert review["signature"]["meaning"] == "daily review" and review["note"] == "min/max checked"
    assert next(s for s in review["figures"]["sensors"] if s["sensor"] == "t-001")["max_celsius"] == 9.5
    resolved = world.wait_alert("review_missed", "fridge-a", "resolved")
    assert resolved["id"] == missed["id"]

    rows = world.rows('SELECT * FROM "review"')
    assert [(r["unit"], r["by"], r["meaning"]) for r in rows] == [("fridge-a", "k.tech", "daily review")]
    assert json.loads(rows[0]["figures"])["sensors"]
    audit = wait_for(lambda: world.rows('SELECT * FROM "audit" WHERE "action" = \'reviewed\'') or None, 15, "audit")
    assert audit is not None and audit[0]["subject"] == "fridge-a" and audit[0]["actor"] == "k.tech"
    after = call(world, "k.tech", "GET", "/api/units/fridge-a/review").json()
    assert after["last_review_at"] == review["signature"]["signed_at"] and after["from"] == after["last_review_at"]

    # fridge-b was never reviewed: still missed; after a restart its alert is the same episode, fridge-a stays reviewed
    missed_b = world.wait_alert("review_missed", "fridge-b", "open")
    world.service.stop()
    world.service.start()
    again = call(world, "k.tech", "GET", "/api/units/fridge-a/review").json()
    assert again["last_review_at"] == review["signature"]["signed_at"]
    open_ids = [a["id"] for a in call(world, "k.tech", "GET", "/api/alerts?state=open").json()]
    assert missed_b["id"] in open_ids and missed["id"] not in open_ids
    # acknowledging it says someone is on it; only a signed review resolves it
    acked = call(world, "k.tech", "POST", f"/api/alerts/{missed_b['id']}/ack", json={"note": "on it"})
    assert acked.status_code == 200, acked.text
    assert world.wait_alert("review_missed", "fridge-b", "acknowledged")["acknowledged_by"] == "k.tech"
    answer = call(world, "k.tech", "POST", "/api/units/fridge-b/reviews", json=signed)
    assert answer.status_code == 201, answer.text
    assert world.wait_alert("review_missed", "fridge-b", "resolved")["acknowledged_by"] == "k.tech"


def test_exports_hold_the_reviews(utc_world: AlertWorld) -> None:
    """reviews.csv lists the signed review; report.pdf shows it for its day and NOT REVIEWED for the other unit."""
    world = utc_world
    signed = {"note": "checked, all fine", "signature": {"password": PASSWORD}}
    answer = call(world, "k.tech", "POST", "/api/units/fridge-a/reviews", json=signed)
    assert answer.status_code == 201, answer.text
    review = answer.json()
    now = datetime.now(UTC)
    # a reading so the period has data; the export covers today (UTC) up to now
    world.publisher_for().send(world.topic("t-001"), {"ts": iso(now - timedelta(seconds=5)), "celsius": 5.0})
    wait_for(lambda: world.count() >= 1 or None, 15, "a reading stored")
    wait_for(lambda: world.rows('SELECT * FROM "review"') or None, 15, "the review stored")
    day = now.date().isoformat()
    zipped = call(world, "q.audit", "GET", f"/api/exports?from={day}&to={day}")
    assert zipped.status_code == 200, zipped.text
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        names = {Path(name).name: name for name in archive.namelist()}
        rows = list(csv.DictReader(io.StringIO(archive.read(names["reviews.csv"]).decode())))
        pdf = archive.read(names["report.pdf"])
    assert [(r["unit"], r["signed_by"], r["note"], r["meaning"]) for r in rows] == [
        ("fridge-a", "k.tech", "checked, all fine", "daily review")
    ]
    assert rows[0]["signature_id"] == review["signature"]["id"]
    text = pdf_text(pdf)
    assert "Daily review" in text and "K.TECH Full (k.tech)" in text and "checked, all fine" in text
    assert "NOT REVIEWED" in text  # fridge-b, never reviewed, on a workday


def pdf_text(data: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(data)
        handle.flush()
        return subprocess.run(["pdftotext", handle.name, "-"], capture_output=True, text=True, check=True).stdout
