"""The one-click acknowledge page (issue 4): link tokens, CSRF, escaping, and a real headless Chromium.

Unit tests drive ``AckPage.route`` with a fake rules port (our own interface, not a server) and a
fake clock. Integration tests run a real ``coldchain run`` against real mosquitto and influxd and
open the link in Chromium through selenium (Debian ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from coldchain.adapters.http.ack_links import KEY_FILE, LinkError, LinkExpired, LinkSigner, load_link_key
from coldchain.adapters.http.ack_page import COOKIE, AckPage
from coldchain.adapters.http.api import Reply, Request
from coldchain.adapters.http.auth import Gatekeeper
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.passwords import hash_password
from coldchain.config import ApiConfig
from coldchain.config.api import ApiUser
from coldchain.core.alert import Alert
from coldchain.core.signature import Signer
from coldchain.core.signoff import Acknowledgement
from coldchain.core.signoff import acknowledge as signoff
from tests.publishing import wait_for
from tests.samples import freezing_alert
from tests.service_process import ColdchainProcess
from tests.test_rules_integration import AlertWorld
from tests.world import SIGNING_PASSWORD, SIGNING_PHARMACIST, iso

T0 = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)
KEY = b"k" * 32
HOST = "pharmacy.example:8443"
FORM = "application/x-www-form-urlencoded"


def make_alert(alert_id: str = "a" * 20, **changes: Any) -> Alert:
    page_alert = {"started_at": T0, "updated_at": T0, "value": -1.5, "affected_bags": ("B-0042",)}
    return freezing_alert(alert_id, **{**page_alert, "message": "Infusion fridge A at -1.5 °C: freezing", **changes})


@dataclass
class FakeView:
    alerts: tuple[Alert, ...]


@dataclass
class FakeRules:
    """The rules worker's port as the page uses it: the alerts view and ``acknowledge``."""

    alerts: list[Alert]
    calls: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    signers: list[Signer | None] = field(default_factory=list)
    fail: type[Exception] | None = None

    @property
    def view(self) -> FakeView:
        return FakeView(tuple(self.alerts))

    def acknowledge(self, ack: Acknowledgement) -> Alert | None:
        if self.fail is not None:
            raise self.fail()
        for index, alert in enumerate(self.alerts):
            if alert.id == ack.alert_id:
                state = "resolved" if alert.state == "resolved" else "acknowledged"
                self.alerts[index] = acked = replace(signoff(alert, ack, T0), state=state)
                self.calls.append((ack.alert_id, ack.by, ack.note, ack.disposition))
                self.signers.append(ack.signer)
                return acked
        return None

    def security_event(self, action: str, user: str, details: dict[str, Any]) -> None:
        self.events.append((action, user))

    events: list[tuple[str, str]] = field(default_factory=list)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    page: AckPage
    rules: FakeRules
    signer: LinkSigner
    clock: Clock

    def link(self, alert_id: str = "a" * 20, recipient: str = "night-pharmacist") -> str:
        return "/ack/" + self.signer.issue(alert_id, recipient, self.clock.now)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        reply = self.page.route(Request("GET", path, {}, {"host": HOST, **(headers or {})}, b""))
        assert reply is not None
        return reply

    def post(self, path: str, form: dict[str, str] | list[tuple[str, str]], headers: dict[str, str]) -> Reply:
        body = urlencode(form).encode()
        reply = self.page.route(Request("POST", path, {}, {"host": HOST, "content-type": FORM, **headers}, body))
        assert reply is not None
        return reply

    def open_form(self, path: str) -> tuple[str, dict[str, str]]:
        """GET the page; the CSRF value and the headers a browser would send back."""
        reply = self.get(path)
        assert reply.status == HTTPStatus.OK
        value = csrf_field(reply.body.decode())
        assert cookie_of(reply) == value
        return value, {"cookie": f"{COOKIE}={value}", "origin": "null", "sec-fetch-site": "same-origin"}


def csrf_field(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def header(reply: Reply, name: str) -> str | None:
    return next((value for key, value in reply.headers if key.lower() == name.lower()), None)


def cookie_of(reply: Reply) -> str:
    set_cookie = header(reply, "Set-Cookie")
    assert set_cookie is not None
    return set_cookie.split(";", 1)[0].removeprefix(f"{COOKIE}=")


PASSWORD = SIGNING_PASSWORD  # the pharmacist of LINK_USERS below signs with it too
HASH = hash_password(PASSWORD)
USERS = [
    ApiUser(name="j.doe", full_name="Jane Doe, PharmD", token="token-j-doe-1", password_hash=HASH),
    ApiUser(name="a.smith", full_name="Alex Smith, RPh", role="admin", token="token-a-smith", password_hash=HASH),
    ApiUser(name="k.tech", role="staff", token="token-k-tech-1", password_hash=HASH),
    ApiUser(name="n.hash", full_name="No Hash", token="token-n-hash-1"),
]


@pytest.fixture
def harness() -> Harness:
    clock = Clock(T0 + timedelta(minutes=20))
    rules = FakeRules([make_alert(), make_alert("b" * 20, subject="t-002", sensor="t-002", unit="fridge-b")])
    signer = LinkSigner(KEY, timedelta(hours=1))
    gate = Gatekeeper(USERS, Metrics(), clock, security=rules.security_event)
    page = AckPage(
        signer, rules, clock, unit_names={"fridge-a": "Infusion fridge A", "fridge-b": "Fridge B"}, gate=gate
    )
    return Harness(page, rules, signer, clock)


GOOD = {"note": "moved stock to fridge B", "disposition": "quarantined", "signer": "j.doe", "password": PASSWORD}


# -- the page ---------------------------------------------------------------------------------


def test_get_shows_the_alert_and_a_form_with_a_fresh_csrf_cookie(harness: Harness) -> None:
    """A valid link shows kind in words, unit, site, sensor, since, value, bags and a form; sets the cookie."""
    reply = harness.get(harness.link())
    html = reply.body.decode()
    assert reply.status == HTTPStatus.OK and reply.content_type == "text/html; charset=utf-8"
    for text in [
        "Freezing — Infusion fridge A",
        "Infusion fridge A (fridge-a)",
        "main-pharmacy",
        "t-001",
        "2026-11-30 02:10 UTC (20 min ago)",
        "-1.5 °C",
        "B-0042",
        "Infusion fridge A at -1.5 °C: freezing",
        'name="note"',
        'value="quarantined"',
        'value="released"',
        'value="discarded"',
        'value="none"',
        "night-pharmacist (link)",
    ]:
        assert text in html, text
    assert "<script" not in html and "http://" not in html and "https://" not in html  # nothing external
    set_cookie = header(reply, "Set-Cookie")
    assert set_cookie is not None
    attributes = {part.strip() for part in set_cookie.split(";")[1:]}
    assert attributes == {"Path=/ack/", "HttpOnly", "SameSite=Strict"}
    assert cookie_of(reply) == csrf_field(html)
    assert cookie_of(harness.get(harness.link())) != cookie_of(reply)  # fresh on every GET
    assert header(reply, "Content-Security-Policy") == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    )
    assert header(reply, "X-Frame-Options") == "DENY" and header(reply, "Referrer-Policy") == "no-referrer"


def test_cookie_is_secure_when_the_public_url_is_https(harness: Harness) -> None:
    """Behind an https public_url the CSRF cookie carries Secure."""
    page = AckPage(harness.signer, harness.rules, harness.clock, public_url="https://pharmacy.example:8443")
    reply = page.route(Request("GET", harness.link(), {}, {"host": HOST}, b""))
    assert reply is not None
    assert "Secure" in (header(reply, "Set-Cookie") or "").split("; ")


def test_confirm_acknowledges_the_tokens_alert_as_the_recipient(harness: Harness) -> None:
    """POST with matching cookie and field acknowledges as '<recipient> (link)' and confirms."""
    link = harness.link(recipient="oncall-sms")
    csrf, headers = harness.open_form(link)
    reply = harness.post(link, {"csrf": csrf, **GOOD}, headers)
    assert reply.status == HTTPStatus.OK, reply.body
    assert harness.rules.calls == [("a" * 20, "oncall-sms (link)", "moved stock to fridge B", "quarantined")]
    html = reply.body.decode()
    assert "Acknowledged: Freezing — Infusion fridge A" in html and "by oncall-sms (link)" in html
    assert (header(reply, "Set-Cookie") or "").startswith(f"{COOKIE}=; Path=/ack/; Max-Age=0")


def test_none_yet_records_no_disposition(harness: Harness) -> None:
    """The 'none yet' choice records disposition null."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    assert harness.post(link, {"csrf": csrf, "note": "checking", "disposition": "none"}, headers).status == 200
    assert harness.rules.calls[0][3] is None


def test_a_disposition_is_signed_by_the_user_named_in_the_form(harness: Harness) -> None:
    """The signer may be anyone whose role signs, not the link's recipient; the signature names them."""
    link = harness.link(recipient="oncall-sms")
    csrf, headers = harness.open_form(link)
    reply = harness.post(link, {"csrf": csrf, **GOOD, "signer": "a.smith"}, headers)
    assert reply.status == HTTPStatus.OK, reply.body
    assert harness.rules.signers == [Signer("a.smith", "Alex Smith, RPh")]
    assert "Alex Smith, RPh (a.smith)" in reply.body.decode() and "disposition: quarantined" in reply.body.decode()


@pytest.mark.parametrize(
    ("why", "changes", "status", "says"),
    [
        ("wrong password", {"password": "not-the-one-1"}, HTTPStatus.UNAUTHORIZED, "signature failed"),
        ("unknown user", {"signer": "nobody"}, HTTPStatus.UNAUTHORIZED, "signature failed"),
        ("staff may not sign", {"signer": "k.tech"}, HTTPStatus.FORBIDDEN, "may not sign a disposition"),
        ("no password_hash", {"signer": "n.hash"}, HTTPStatus.UNAUTHORIZED, "has no signing password"),
    ],
)
def test_refused_signatures_change_nothing(
    harness: Harness, why: str, changes: dict[str, str], status: HTTPStatus, says: str
) -> None:
    """A refused signature shows the form again with the reason (never the password) and acknowledges nothing."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    reply = harness.post(link, {"csrf": csrf, **GOOD, **changes}, headers)
    html = reply.body.decode()
    assert reply.status == status, why
    assert says in html and "Nothing was changed" in html, why
    assert harness.rules.calls == [], why
    assert changes.get("password", PASSWORD) not in html and 'name="csrf"' in html


def test_five_failed_signatures_lock_signing_until_the_lock_expires(harness: Harness) -> None:
    """Five wrong passwords lock j.doe's signing (423 even with the right one, audited); 15 min later it works."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    for _ in range(5):
        wrong = harness.post(link, {"csrf": csrf, **GOOD, "password": "guess-guess"}, headers)
        assert wrong.status == HTTPStatus.UNAUTHORIZED
    assert "locked" in wrong.body.decode()
    locked = harness.post(link, {"csrf": csrf, **GOOD}, headers)
    assert locked.status == HTTPStatus.LOCKED and "signing is locked for j.doe" in locked.body.decode()
    assert harness.rules.calls == []
    assert harness.rules.events == [("signature_failed", "j.doe")] * 5 + [("signing_locked", "j.doe")]
    other = harness.post(link, {"csrf": csrf, **GOOD, "signer": "a.smith"}, headers)
    assert other.status == HTTPStatus.OK  # only j.doe is locked
    harness.clock.now += timedelta(minutes=14, seconds=59)
    assert harness.post(link, {"csrf": csrf, **GOOD}, headers).status == HTTPStatus.LOCKED
    harness.clock.now += timedelta(seconds=1)
    assert harness.post(link, {"csrf": csrf, **GOOD, "signer": "j.doe"}, headers).status == HTTPStatus.CONFLICT
    csrf, headers = harness.open_form(link)  # the page again: it names a.smith's signature to supersede
    form = {"csrf": csrf, **GOOD, "disposition": "released", "supersedes": "a" * 20 + "-s1"}
    assert harness.post(link, form, headers).status == HTTPStatus.OK


def test_a_signed_disposition_is_changed_only_by_naming_it(harness: Harness) -> None:
    """The page shows the signed disposition and carries its id; a stale form (signed meanwhile) is 409."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    stale_csrf, stale_headers = harness.open_form(link)  # a second tab, opened before the first signs
    assert harness.post(link, {"csrf": csrf, **GOOD}, headers).status == HTTPStatus.OK
    page = harness.get(link).body.decode()
    assert 'name="supersedes" value="' + "a" * 20 + '-s1"' in page
    assert "Jane Doe, PharmD (j.doe)" in page and "replaces “quarantined”" in page
    stale = harness.post(link, {"csrf": stale_csrf, **GOOD, "disposition": "released"}, stale_headers)
    assert stale.status == HTTPStatus.CONFLICT and "changed while this page was open" in stale.body.decode()
    csrf, headers = harness.open_form(link)
    fresh = harness.post(
        link, {"csrf": csrf, **GOOD, "disposition": "released", "supersedes": "a" * 20 + "-s1"}, headers
    )
    assert fresh.status == HTTPStatus.OK
    alert = harness.rules.alerts[0]
    assert alert.disposition == "released" and alert.note == GOOD["note"]
    assert [e.disposition for e in alert.history] == ["quarantined", "released"]
    assert alert.signature is not None and alert.signature.supersedes == "a" * 20 + "-s1"


@pytest.mark.parametrize(
    ("why", "form_changes", "header_changes"),
    [
        ("no cookie", {}, {"cookie": None}),
        ("no field", {"csrf": None}, {}),
        ("cookie and field differ", {"csrf": "x.y"}, {}),
        ("both forged alike: not issued by us", {"csrf": "x.y"}, {"cookie": f"{COOKIE}=x.y"}),
        ("another site", {}, {"origin": "https://evil.example", "sec-fetch-site": None}),
        ("same Host, other port", {}, {"origin": "https://pharmacy.example:9999"}),
        ("cross-site fetch metadata", {}, {"sec-fetch-site": "cross-site"}),
        ("sibling subdomain", {}, {"sec-fetch-site": "same-site"}),
        ("cookie sent twice (tossing)", {}, {"cookie": "+twice"}),
    ],
)
def test_csrf_refusals_change_nothing(
    harness: Harness, why: str, form_changes: dict[str, str | None], header_changes: dict[str, str | None]
) -> None:
    """A POST failing any CSRF check is 403 and acknowledges nothing."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    form: dict[str, str | None] = {"csrf": csrf, **GOOD, **form_changes}
    for key, value in header_changes.items():
        if value == "+twice":
            headers[key] = f"{headers[key]}; {COOKIE}=other"
        elif value is None:
            headers.pop(key, None)
        else:
            headers[key] = value
    reply = harness.post(link, {k: v for k, v in form.items() if v is not None}, headers)
    assert reply.status == HTTPStatus.FORBIDDEN, why
    assert harness.rules.calls == [], why
    assert "Nothing was changed" in reply.body.decode()


def test_csrf_value_of_another_links_page_is_refused(harness: Harness) -> None:
    """A cookie/field pair issued for one link's page does not work for another link."""
    csrf, headers = harness.open_form(harness.link("b" * 20))
    reply = harness.post(harness.link(), {"csrf": csrf, **GOOD}, headers)
    assert reply.status == HTTPStatus.FORBIDDEN and harness.rules.calls == []


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "null", "sec-fetch-site": "same-origin"},  # what Chromium sends under no-referrer
        {"origin": f"https://{HOST}"},  # Origin naming the Host
        {},  # an older browser sending neither
    ],
)
def test_own_form_posts_are_accepted(harness: Harness, headers: dict[str, str]) -> None:
    """Origin null (our no-referrer policy), Origin == Host, or no Origin at all pass with the cookie."""
    link = harness.link()
    csrf, base = harness.open_form(link)
    assert harness.post(link, {"csrf": csrf, **GOOD}, {"cookie": base["cookie"], **headers}).status == HTTPStatus.OK


def test_origin_of_the_public_url_passes_behind_a_proxy(harness: Harness) -> None:
    """A proxy rewriting Host still works when Origin is the configured public_url."""
    page = AckPage(
        harness.signer,
        harness.rules,
        harness.clock,
        public_url="https://pharmacy.example:8443/",
        gate=harness.page.gate,
    )
    link = harness.link()
    got = page.route(Request("GET", link, {}, {"host": "127.0.0.1:8080"}, b""))
    assert got is not None
    csrf = csrf_field(got.body.decode())
    headers = {"host": "127.0.0.1:8080", "content-type": FORM, "cookie": f"{COOKIE}={csrf}"}
    body = urlencode({"csrf": csrf, **GOOD}).encode()
    reply = page.route(Request("POST", link, {}, {**headers, "origin": "https://pharmacy.example:8443"}, body))
    assert reply is not None and reply.status == HTTPStatus.OK


# -- the link is bound to one alert, and expires ---------------------------------------------


def test_the_form_cannot_name_another_alert(harness: Harness) -> None:
    """Alert ids sent in the form are ignored: only the token's alert is acknowledged."""
    link = harness.link("a" * 20)
    csrf, headers = harness.open_form(link)
    form = [("csrf", csrf), *GOOD.items(), ("alert_id", "b" * 20), ("id", "b" * 20)]
    assert harness.post(link, form, headers).status == HTTPStatus.OK
    assert [call[0] for call in harness.rules.calls] == ["a" * 20]


def test_a_token_edited_to_name_another_alert_is_refused(harness: Harness) -> None:
    """Swapping the alert id inside a genuine token breaks its signature: 403, nothing changes."""
    token = harness.link("a" * 20).removeprefix("/ack/")
    body_text, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4)))
    body[0] = "b" * 20
    edited = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).rstrip(b"=").decode()
    assert harness.get(f"/ack/{edited}.{mac}").status == HTTPStatus.FORBIDDEN
    csrf, headers = harness.open_form(harness.link("a" * 20))
    assert harness.post(f"/ack/{edited}.{mac}", {"csrf": csrf, **GOOD}, headers).status == HTTPStatus.FORBIDDEN
    assert harness.rules.calls == []


@pytest.mark.parametrize(
    "token",
    [
        "",  # nothing
        "not-a-token",  # no signature part
        "a.b.c",  # too many parts
        "eyJ9.AAAA",  # a signature that does not match
        "%3Cscript%3E.x",  # not base64 at all
    ],
)
def test_malformed_or_forged_tokens_are_403(harness: Harness, token: str) -> None:
    """Anything that is not a token we signed gets the 403 refusal page."""
    reply = harness.get(f"/ack/{token}")
    assert reply.status == HTTPStatus.FORBIDDEN
    assert "This link is not valid" in reply.body.decode() and header(reply, "Set-Cookie") is None


def test_a_token_signed_with_another_key_is_403(harness: Harness) -> None:
    """A token from another installation (another key) is refused."""
    other = LinkSigner(b"z" * 32, timedelta(hours=1)).issue("a" * 20, "night-pharmacist", harness.clock.now)
    assert harness.get(f"/ack/{other}").status == HTTPStatus.FORBIDDEN


def test_an_expired_link_is_410_for_get_and_post(harness: Harness) -> None:
    """After its validity the link shows the 410 page, and a form opened before cannot be sent."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    harness.clock.now += timedelta(hours=1)  # exactly at expiry
    got = harness.get(link)
    assert got.status == HTTPStatus.GONE and "This link has expired" in got.body.decode()
    assert harness.post(link, {"csrf": csrf, **GOOD}, headers).status == HTTPStatus.GONE
    assert harness.rules.calls == []


def test_link_signer_tells_expired_from_forged() -> None:
    """check raises LinkExpired for a genuine expired token, plain LinkError for a forged one."""
    signer = LinkSigner(KEY, timedelta(minutes=5))
    token = signer.issue("a" * 20, "x", T0)
    assert signer.check(token, T0 + timedelta(minutes=4, seconds=59)).alert_id == "a" * 20
    with pytest.raises(LinkExpired):
        signer.check(token, T0 + timedelta(minutes=5))
    with pytest.raises(LinkError) as forged:
        LinkSigner(b"z" * 32, timedelta(minutes=5)).check(token, T0)
    assert not isinstance(forged.value, LinkExpired)


# -- form validation, states, escaping --------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"disposition": "quarantined"}, "Write a note"),  # note missing
        ({"note": "  \r\n ", "disposition": "quarantined"}, "Write a note"),  # only whitespace
        ({"note": "x" * 2001, "disposition": "released"}, "too long"),  # over 2000 characters
        ({"note": "ok"}, "Choose what happened"),  # no disposition
        ({"note": "ok", "disposition": "eaten"}, "Choose what happened"),  # not one of ours
        ([("note", "a"), ("note", "b"), ("disposition", "released")], "more than once"),  # ambiguous
        ({"note": "ok", "disposition": "released", "password": PASSWORD}, "enter your user name"),  # unsigned
        ({"note": "ok", "disposition": "released", "signer": "j.doe"}, "signing password"),  # no password
    ],
)
def test_invalid_forms_are_400_and_change_nothing(
    harness: Harness, form: dict[str, str] | list[tuple[str, str]], says: str
) -> None:
    """An incomplete form is shown again with the reason; nothing is acknowledged."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    items = list(form.items()) if isinstance(form, dict) else form
    reply = harness.post(link, [("csrf", csrf), *items], headers)
    assert reply.status == HTTPStatus.BAD_REQUEST and says in reply.body.decode()
    assert harness.rules.calls == []


def test_a_note_of_2000_characters_is_accepted(harness: Harness) -> None:
    """The limit is inclusive: 2000 characters pass."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    assert harness.post(link, {"csrf": csrf, **GOOD, "note": "é" * 2000}, headers).status == 200


def test_hostile_text_is_escaped_everywhere(harness: Harness) -> None:
    """Markup in the message, site, bag ids, recipient and a re-shown note is rendered as text."""
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    harness.rules.alerts[0] = make_alert(
        message=evil, site=evil, affected_bags=(evil,), note=evil, acknowledged_by=evil
    )
    link = harness.link(recipient=evil)
    html = harness.get(link).body.decode()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    csrf, headers = harness.open_form(link)
    again = harness.post(link, {"csrf": csrf, "note": evil}, headers).body.decode()  # 400, note shown again
    assert "<script>" not in again and "<img" not in again and "&lt;/script&gt;" in again


def test_acknowledged_and_resolved_alerts_say_so_and_still_take_an_ack(harness: Harness) -> None:
    """The page shows who acknowledged and when; a resolved alert still takes an acknowledgement."""
    at = T0 + timedelta(minutes=3)
    harness.rules.alerts[0] = make_alert(
        state="resolved", resolved_at=at, acknowledged_by="j.doe", acknowledged_at=at, disposition="released"
    )
    link = harness.link()
    html = harness.get(link).body.decode()
    assert "by j.doe at 2026-11-30 02:13 UTC" in html and "has resolved" in html and "released" in html
    csrf, headers = harness.open_form(link)
    assert harness.post(link, {"csrf": csrf, **GOOD}, headers).status == HTTPStatus.OK
    assert harness.rules.alerts[0].state == "resolved" and harness.rules.calls


def test_unknown_alert_is_404_and_other_paths_are_not_ours(harness: Harness) -> None:
    """A valid link for an alert no longer known is 404; paths outside /ack/ fall through."""
    assert harness.get(harness.link("c" * 20)).status == HTTPStatus.NOT_FOUND
    assert harness.get("/ack/a/b").status == HTTPStatus.NOT_FOUND
    assert harness.page.route(Request("GET", "/healthz", {}, {}, b"")) is None


def test_a_busy_rules_worker_answers_503(harness: Harness) -> None:
    """If the rules worker does not answer in time the page says so instead of claiming success."""
    link = harness.link()
    csrf, headers = harness.open_form(link)
    harness.rules.fail = TimeoutError
    assert harness.post(link, {"csrf": csrf, **GOOD}, headers).status == HTTPStatus.SERVICE_UNAVAILABLE


# -- the key ----------------------------------------------------------------------------------


def test_link_key_is_created_once_0600_and_reused(tmp_path: Path) -> None:
    """Without link_secret a 32-byte key file is created (0600) and the same key is read after a restart."""
    state = tmp_path / "state"
    key = load_link_key(ApiConfig(), state)
    path = state / KEY_FILE
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_link_key(ApiConfig(), state) == key
    token = LinkSigner(key, timedelta(hours=1)).issue("a" * 20, "x", T0)
    assert LinkSigner(load_link_key(ApiConfig(), state), timedelta(hours=1)).check(token, T0).alert_id == "a" * 20
    assert [p.name for p in state.iterdir()] == [KEY_FILE]  # no temporary files left


def test_configured_link_secret_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    """A configured link_secret is the key (no file written); a short one is refused."""
    assert load_link_key(ApiConfig(link_secret="s" * 16), tmp_path) == b"s" * 16
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(ValueError, match="link_secret"):
        load_link_key(ApiConfig(link_secret="short"), tmp_path)


def test_a_damaged_key_file_is_refused_not_replaced(tmp_path: Path) -> None:
    """A key file of the wrong size stops the start instead of silently minting a new key."""
    (tmp_path / KEY_FILE).write_bytes(b"short")
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with pytest.raises(ValueError, match="remove it"):
        load_link_key(ApiConfig(), tmp_path)
    assert (tmp_path / KEY_FILE).read_bytes() == b"short"


# -- integration: a real coldchain run, a real Chromium ---------------------------------------

SECRET = "integration-link-secret-0123456789"
LINK_USERS = f"""{SIGNING_PHARMACIST}
[[api.users]]
name = "k.tech"
full_name = "Kim Tech"
role = "staff"
token = "token-of-k-tech-456"
password_hash = "{HASH}"
"""


@pytest.fixture
def link_world(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[AlertWorld]:
    """``coldchain run`` with public_url and link_secret set through the environment."""
    world = AlertWorld(tmp_path, mosquitto, influxd, extra=LINK_USERS)  # started below with the environment
    env = {"COLDCHAIN_API__LINK_SECRET": SECRET, "COLDCHAIN_API__PUBLIC_URL": world.service.api}
    world.service = ColdchainProcess(world.config, "run", env=env)
    world.service.start()
    yield world
    world.close()


@pytest.fixture
def chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium driven by the system chromedriver; Selenium Manager stays offline."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        assert os.access(binary, os.X_OK), f"{binary} missing: run scripts/bootstrap.sh (chromium, chromium-driver)"
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=412,915",  # a phone
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def open_alert(world: AlertWorld, sensor: str) -> dict[str, Any]:
    world.publisher_for().send(world.topic(sensor), {"ts": iso(datetime.now(UTC)), "celsius": -1.5})
    return world.wait_alert("freezing", sensor, "open")


def link_for(world: AlertWorld, alert_id: str, recipient: str = "night-pharmacist", at: datetime | None = None) -> str:
    signer = LinkSigner(SECRET.encode(), timedelta(hours=24))
    return f"{world.service.api}/ack/{signer.issue(alert_id, recipient, at or datetime.now(UTC))}"


def states(world: AlertWorld, sensor: str) -> list[str]:
    return [a["state"] for a in world.payloads("freezing", sensor)]


def open_form(link: str) -> tuple[str, str]:
    """GET the page over HTTP: the CSRF field and the cookie value."""
    page = httpx.get(link, timeout=15)
    assert page.status_code == 200, page.text
    return csrf_field(page.text), page.cookies[COOKIE]


ANSWER_PAGE_LOADED = "return document.readyState === 'complete' && !window.coldchainFormPage;"


@pytest.mark.integration
def test_chromium_opens_the_link_and_acknowledges(link_world: AlertWorld, chromium: Any, tmp_path: Path) -> None:
    """In a real Chromium the link shows the alert, takes a note and disposition, and the ack is published."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    opened = open_alert(link_world, "t-001")
    chromium.get(link_for(link_world, opened["id"]))
    wait = WebDriverWait(chromium, 15)
    title = wait.until(ec.visibility_of_element_located((By.TAG_NAME, "h1")))
    assert title.text == "Freezing — Infusion fridge A"
    text = chromium.find_element(By.TAG_NAME, "main").text
    assert "Infusion fridge A (fridge-a)" in text and "main-pharmacy" in text and "-1.5 °C" in text
    assert chromium.get_cookie(COOKIE)["httpOnly"] is True
    chromium.save_screenshot(str(tmp_path / "ack-page.png"))

    chromium.find_element(By.ID, "note").send_keys("Moved all stock to fridge B <checked>")
    chromium.find_element(By.CSS_SELECTOR, 'input[name="disposition"][value="quarantined"]').click()
    chromium.find_element(By.ID, "signer").send_keys("j.doe")
    chromium.find_element(By.ID, "password").send_keys(PASSWORD)
    chromium.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
    # Chromium may answer with an inspector error, not a stale element, while it swaps the document.
    answered = WebDriverWait(chromium, 15, ignored_exceptions=(WebDriverException,))
    answered.until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Done"))
    assert "by night-pharmacist (link)" in chromium.find_element(By.TAG_NAME, "main").text
    chromium.save_screenshot(str(tmp_path / "ack-done.png"))

    acked = link_world.wait_alert("freezing", "t-001", "acknowledged")
    assert acked["id"] == opened["id"]
    assert (acked["acknowledged_by"], acked["disposition"], acked["note"]) == (
        "night-pharmacist (link)",
        "quarantined",
        "Moved all stock to fridge B <checked>",
    )
    assert (acked["signed_by"], acked["signed_by_full_name"], acked["signature_meaning"]) == (
        "j.doe",
        "Jane Doe, PharmD",
        "disposition: quarantined",
    )


@pytest.mark.integration
def test_chromium_signing_form_refuses_then_signs_and_changes_the_disposition(
    link_world: AlertWorld, chromium: Any, tmp_path: Path
) -> None:
    """In Chromium: a staff signer and a wrong password are refused (nothing published), the right
    pharmacist signs quarantined, and a later signed release names it; the alert shows both."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    opened = open_alert(link_world, "t-001")
    link = link_for(link_world, opened["id"])
    wait = WebDriverWait(chromium, 15)

    def submit(disposition: str, signer: str, password: str, note: str) -> str:
        chromium.get(link)
        note_field = wait.until(ec.visibility_of_element_located((By.ID, "note")))
        note_field.send_keys(note)
        chromium.find_element(By.CSS_SELECTOR, f'input[name="disposition"][value="{disposition}"]').click()
        chromium.find_element(By.ID, "signer").send_keys(signer)
        chromium.find_element(By.ID, "password").send_keys(password)
        chromium.execute_script("window.coldchainFormPage = true;")
        chromium.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()
        # The answer page replaced the form once the marker is gone. While the document is being
        # swapped Chromium may answer any query with an inspector error, not only a stale element.
        answered = WebDriverWait(chromium, 15, ignored_exceptions=(WebDriverException,))
        answered.until(lambda d: d.execute_script(ANSWER_PAGE_LOADED))
        return str(answered.until(lambda d: d.find_element(By.TAG_NAME, "main").text))

    refused = submit("quarantined", "k.tech", PASSWORD, "staff tries")
    assert "may not sign a disposition" in refused and "Nothing was changed" in refused
    wrong = submit("quarantined", "j.doe", "not-my-password", "typo")
    assert "signature failed" in wrong
    assert chromium.find_element(By.ID, "password").get_attribute("value") == ""  # never sent back
    assert states(link_world, "t-001") == ["open"]

    done = submit("quarantined", "j.doe", PASSWORD, "Moved to fridge B")
    assert "Done" in done and "Jane Doe, PharmD (j.doe)" in done and "disposition: quarantined" in done
    first = link_world.wait_alert("freezing", "t-001", "acknowledged")
    chromium.save_screenshot(str(tmp_path / "ack-signed.png"))

    changed = submit("released", "j.doe", PASSWORD, "Stability data checked: fit for use")
    assert "Done" in changed and "disposition: released" in changed
    latest = wait_for(
        lambda: next((a for a in link_world.payloads("freezing", "t-001") if a["disposition"] == "released"), None),
        15,
        "the released disposition published",
    )
    assert latest["note"] == "Moved to fridge B"  # the first acknowledgement's note stays
    assert latest["signature"]["supersedes"] == first["signature"]["id"]
    assert [(h["disposition"], h["signature"]["full_name"]) for h in latest["history"]] == [
        ("quarantined", "Jane Doe, PharmD"),
        ("released", "Jane Doe, PharmD"),
    ]


@pytest.mark.integration
def test_chromium_shows_the_refusal_for_an_expired_link(link_world: AlertWorld, chromium: Any) -> None:
    """An expired link is 410 and Chromium shows the refusal page; the alert stays open."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    opened = open_alert(link_world, "t-001")
    link = link_for(link_world, opened["id"], at=datetime.now(UTC) - timedelta(hours=25))
    assert httpx.get(link, timeout=15).status_code == 410
    chromium.get(link)
    WebDriverWait(chromium, 15).until(ec.text_to_be_present_in_element((By.TAG_NAME, "h1"), "This link has expired"))
    assert chromium.find_elements(By.TAG_NAME, "form") == []
    assert states(link_world, "t-001") == ["open"]


@pytest.mark.integration
def test_a_link_cannot_acknowledge_another_alert(link_world: AlertWorld) -> None:
    """A's link posted with B's id in the form acknowledges A only; A's token edited to B is 403."""
    a = open_alert(link_world, "t-001")
    b = open_alert(link_world, "t-002")
    link = link_for(link_world, a["id"])
    csrf, cookie = open_form(link)
    form = {"csrf": csrf, "note": "checked", "disposition": "none", "alert_id": b["id"], "id": b["id"]}
    answer = httpx.post(link, data=form, cookies={COOKIE: cookie}, timeout=15)
    assert answer.status_code == 200, answer.text
    assert link_world.wait_alert("freezing", "t-001", "acknowledged")["acknowledged_by"] == "night-pharmacist (link)"

    token = link.rsplit("/", 1)[1]
    body_text, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps([b["id"], *body[1:]], separators=(",", ":")).encode())
    forged = f"{link_world.service.api}/ack/{edited.rstrip(b'=').decode()}.{mac}"
    assert httpx.get(forged, timeout=15).status_code == 403
    refused = httpx.post(forged, data={**form, "csrf": csrf}, cookies={COOKIE: cookie}, timeout=15)
    assert refused.status_code == 403
    # fence: a genuine ack of B afterwards is the only acknowledgement B ever gets
    fence_link = link_for(link_world, b["id"], recipient="fence")
    csrf_b, cookie_b = open_form(fence_link)
    fence = httpx.post(
        fence_link,
        data={"csrf": csrf_b, "note": "fence", "disposition": "none"},
        cookies={COOKIE: cookie_b},
        timeout=15,
    )
    assert fence.status_code == 200, fence.text
    link_world.wait_alert("freezing", "t-002", "acknowledged")
    assert [(p["state"], p["acknowledged_by"]) for p in link_world.payloads("freezing", "t-002")] == [
        ("open", None),
        ("acknowledged", "fence (link)"),
    ]


@pytest.mark.integration
def test_a_post_without_the_csrf_cookie_is_refused(link_world: AlertWorld) -> None:
    """Without the cookie (or with a different one) the POST is 403 and the alert stays open."""
    opened = open_alert(link_world, "t-001")
    link = link_for(link_world, opened["id"])
    csrf, cookie = open_form(link)
    form = {"csrf": csrf, "note": "not me", "disposition": "discarded", "signer": "j.doe", "password": PASSWORD}
    no_cookie = httpx.post(link, data=form, timeout=15)
    assert no_cookie.status_code == 403 and "Nothing was changed" in no_cookie.text
    other = httpx.post(link, data=form, cookies={COOKIE: cookie[::-1]}, timeout=15)
    assert other.status_code == 403
    cross_site = httpx.post(
        link, data=form, cookies={COOKIE: cookie}, headers={"Origin": "https://evil.example"}, timeout=15
    )
    assert cross_site.status_code == 403
    # fence: the genuine post goes through, and is the only acknowledgement ever published
    good = httpx.post(link, data={**form, "note": "me"}, cookies={COOKIE: cookie}, timeout=15)
    assert good.status_code == 200, good.text
    link_world.wait_alert("freezing", "t-001", "acknowledged")
    assert [(a["state"], a["note"]) for a in link_world.payloads("freezing", "t-001")] == [
        ("open", None),
        ("acknowledged", "me"),
    ]
