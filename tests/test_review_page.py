"""The daily review page (``/review``, issue 15 item 2): figures, signing, CSRF, escaping, and a real Chromium.

Unit tests drive ``ReviewPage.route`` over a real SQLite store and the real ``Gatekeeper``, with a fake rules
port (our own interface) recording the reviews it is handed; the Chromium test runs a real ``coldchain run``
against real mosquitto and influxd.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from coldchain.adapters.http.api import HttpApi, Request
from coldchain.adapters.http.review_page import COOKIE, ReviewPage
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.passwords import hash_password
from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.config import load_settings
from coldchain.core.alert import Alert
from coldchain.core.records import Review, TemperatureReading
from coldchain.core.review import ReviewRequest, review_record
from tests.test_ack_page import chromium  # noqa: F401 - the headless Chromium fixture
from tests.test_rules_integration import AlertWorld
from tests.world import iso

PASSWORD = "review-page-secret"
HASH = hash_password(PASSWORD)
NOW = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
HOST = "pharmacy.example:8443"
FORM = "application/x-www-form-urlencoded"


@dataclass
class FakeView:
    alerts: tuple[Alert, ...] = ()
    bags: tuple[tuple[str, str, datetime, datetime], ...] = ()


@dataclass
class FakeRules:
    """The rules port as the page uses it: the last review and ``review``."""

    reviews: list[Review] = field(default_factory=list)
    view: FakeView = field(default_factory=FakeView)

    def review(self, request: ReviewRequest) -> Review:
        record = review_record(request, NOW, 1)
        self.reviews.append(record)
        return record

    def last_review(self, unit: str) -> datetime | None:
        return max((r.at for r in self.reviews if r.unit == unit), default=None)

    def security_event(self, action: str, user: str, details: dict[str, Any]) -> None:
        pass


def settings_toml(tmp_path: Path) -> Path:
    text = f"""
[[sites]]
id = "main"
timezone = "Europe/Berlin"
review_due = "10:00"
[[units]]
id = "fridge-a"
site = "main"
name = "Fridge <b>A</b>"
[[sensors]]
id = "t-001"
unit = "fridge-a"
kind = "temperature"
[[api.users]]
name = "k.tech"
full_name = "Kim Tech"
role = "staff"
token = "token-of-k.tech-0123"
password_hash = "{HASH}"
[[api.users]]
name = "v.iew"
role = "viewer"
token = "token-of-v.iew-0123"
password_hash = "{HASH}"
[rules]
state_path = "{tmp_path / "rules.sqlite"}"
"""
    path = tmp_path / "coldchain.toml"
    path.write_text(text)
    return path


@dataclass
class Harness:
    page: ReviewPage
    rules: FakeRules

    def get(self, query: dict[str, list[str]] | None = None) -> tuple[HTTPStatus, str, str]:
        reply = self.page.route(Request("GET", "/review", query or {}, {"host": HOST}, b""))
        assert reply is not None
        cookie = next(v for k, v in reply.headers if k == "Set-Cookie")
        return reply.status, reply.body.decode(), cookie.split(";")[0].split("=", 1)[1]

    def post(self, form: dict[str, str], cookie: str | None, headers: dict[str, str] | None = None) -> tuple[int, str]:
        base = {"host": HOST, "content-type": FORM, "origin": "null", "sec-fetch-site": "same-origin"}
        if cookie is not None:
            base["cookie"] = f"{COOKIE}={cookie}"
        request = Request("POST", "/review", {}, {**base, **(headers or {})}, urlencode(form).encode())
        reply = self.page.route(request)
        assert reply is not None
        return reply.status, reply.body.decode()

    def signed_form(self, **changes: str) -> tuple[dict[str, str], str]:
        _, html, cookie = self.get()
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        form = {"csrf": csrf.group(1), "unit": "fridge-a", "note": "ok", "signer": "k.tech", "password": PASSWORD}
        return {**form, **changes}, cookie


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    settings = load_settings(settings_toml(tmp_path))
    store = SqliteStore(tmp_path / "store.sqlite")
    store.prepare()
    store.write(
        [
            TemperatureReading("t-001", "fridge-a", "main", NOW - timedelta(minutes=m), value)
            for m, value in [(50, 5.0), (40, 9.4), (30, 2.5), (5, 4.0)]
        ]
    )
    rules = FakeRules()
    api = HttpApi(settings, Metrics(), list, store, rules, clock=lambda: NOW)  # type: ignore[arg-type]
    yield Harness(ReviewPage(settings, api.reviews), rules)
    store.close()


def test_the_page_lists_the_units_figures_escaped_with_a_signing_form(harness: Harness) -> None:
    """Min, max, current and time out of range from the stored readings; the local date; HTML escaped."""
    status, html, cookie = harness.get({"site": ["main"]})
    assert status == HTTPStatus.OK and cookie
    assert "Fridge &lt;b&gt;A&lt;/b&gt; (fridge-a)" in html and "<b>A</b>" not in html
    assert "<td>t-001</td><td>2.5</td><td>9.4</td><td>4.0</td><td>10.0</td>" in html
    assert "Local date <b>2026-12-01</b>" in html and "last review: never" in html
    assert 'name="password" type="password"' in html


def test_signing_on_the_page_records_the_review_as_the_signer(harness: Harness) -> None:
    """The user name and signing password identify and sign; the figures are computed server side."""
    form, cookie = harness.signed_form(note="checked <ok>")
    status, html = harness.post(form, cookie)
    assert status == HTTPStatus.OK and "signed by Kim Tech (k.tech)" in html
    (review,) = harness.rules.reviews
    assert (review.unit, review.by, review.full_name, review.meaning, review.note) == (
        "fridge-a",
        "k.tech",
        "Kim Tech",
        "daily review",
        "checked <ok>",
    )
    assert '"max_celsius":9.4' in review.figures


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"password": "wrong"}, HTTPStatus.UNAUTHORIZED),  # a wrong signing password
        ({"password": ""}, HTTPStatus.UNAUTHORIZED),  # none
        ({"signer": "v.iew"}, HTTPStatus.FORBIDDEN),  # a viewer may not sign a review
        ({"signer": "nobody"}, HTTPStatus.UNAUTHORIZED),  # unknown users fail like wrong passwords
        ({"unit": "fridge-z"}, HTTPStatus.BAD_REQUEST),  # not a configured unit
    ],
)
def test_refused_signatures_record_nothing(harness: Harness, changes: dict[str, str], status: HTTPStatus) -> None:
    """Refusals are shown on the page again and record no review."""
    form, cookie = harness.signed_form(**changes)
    answered, html = harness.post(form, cookie)
    assert answered == status
    assert any(said in html for said in ("Not signed", "Enter your user name", "Choose a unit"))
    assert harness.rules.reviews == []


@pytest.mark.parametrize(
    ("cookie", "headers"),
    [
        (None, {}),  # no CSRF cookie
        ("forged.value", {}),  # a cookie this process did not issue
        ("", {"sec-fetch-site": "cross-site"}),  # sent from another site
        ("", {"origin": "https://evil.example"}),  # another origin
    ],
)
def test_csrf_refusals_record_nothing(harness: Harness, cookie: str | None, headers: dict[str, str]) -> None:
    """A POST that cannot be shown to come from our own page is 403 and records nothing."""
    form, issued = harness.signed_form()
    status, _ = harness.post(form, issued if cookie == "" else cookie, headers)
    assert status == HTTPStatus.FORBIDDEN and harness.rules.reviews == []


def test_unknown_site_is_404(harness: Harness) -> None:
    """A site no unit is at is 404."""
    reply = harness.page.route(Request("GET", "/review", {"site": ["elsewhere"]}, {"host": HOST}, b""))
    assert reply is not None and reply.status == HTTPStatus.NOT_FOUND


# -- a real Chromium against coldchain run -----------------------------------------------------


@pytest.fixture
def review_world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    extra = "\n".join(
        [
            "[[sites]]",
            'id = "main-pharmacy"',
            'workdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]',
            'review_due = "00:00"',
            "[[api.users]]",
            'name = "k.tech"',
            'full_name = "Kim Tech"',
            'role = "staff"',
            'token = "token-of-k.tech-0123"',
            f'password_hash = "{HASH}"',
        ]
    )
    world = AlertWorld(tmp_path, mosquitto, influxd, extra=extra + "\n")
    world.service.start()
    yield world
    world.close()


@pytest.mark.integration
def test_chromium_signs_a_review_on_the_page(review_world: AlertWorld, chromium: Any, tmp_path: Path) -> None:  # noqa: F811
    """In a real Chromium: the page shows fridge-a's figures, the signed form records the review and
    review_missed resolves."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    missed = review_world.wait_alert("review_missed", "fridge-a", "open")
    review_world.publisher_for().send(review_world.topic("t-001"), {"ts": iso(datetime.now(UTC)), "celsius": 6.5})
    wait_for_count(review_world)
    chromium.get(f"{review_world.service.api}/review?site=main-pharmacy")
    wait = WebDriverWait(chromium, 15)
    wait.until(ec.visibility_of_element_located((By.ID, "unit-fridge-a")))
    section = chromium.find_element(By.ID, "unit-fridge-a")
    assert "Infusion fridge A (fridge-a)" in section.text and "6.5" in section.text
    assert chromium.get_cookie(COOKIE)["httpOnly"] is True
    section.find_element(By.ID, "note-fridge-a").send_keys("min/max read off the page")
    section.find_element(By.ID, "signer-fridge-a").send_keys("k.tech")
    section.find_element(By.ID, "password-fridge-a").send_keys(PASSWORD)
    section.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    answered = WebDriverWait(chromium, 15, ignored_exceptions=(WebDriverException,))
    answered.until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "signed by Kim Tech (k.tech)"))
    chromium.save_screenshot(str(tmp_path / "review-page.png"))
    resolved = review_world.wait_alert("review_missed", "fridge-a", "resolved")
    assert resolved["id"] == missed["id"]
    rows = review_world.rows('SELECT * FROM "review"')
    assert [(r["by"], r["note"]) for r in rows] == [("k.tech", "min/max read off the page")]
    answer = httpx.get(
        f"{review_world.service.api}/api/units/fridge-a/review",
        headers={"Authorization": "Bearer token-of-k.tech-0123"},
        timeout=15,
    )
    assert answer.json()["last_review_at"] is not None


def wait_for_count(world: AlertWorld) -> None:
    from tests.publishing import wait_for

    wait_for(lambda: world.count() >= 1 or None, 15, "a reading stored")
