"""The one-click acknowledge page behind the links in notifications (``GET``/``POST /ack/<token>``).

The token (``ack_links.py``) is the only credential and the only source of the alert id: the page
shows that alert and asks for a note and a disposition; the POST acknowledges that alert, as
``"<recipient> (link)"``, whatever the form says. Forged or unknown tokens get 403, expired ones
410, and nothing changes.

Acknowledging needs only the link. A disposition is an electronic signature (21 CFR Part 11): the
form asks for the signer's user name and signing password (any user whose role may sign, not
necessarily the link's recipient), checked server side by the API's ``Gatekeeper`` (wrong: 401,
locked: 423, a role that may not sign: 403), and the page is shown again with the reason. When the
alert already has a signed disposition, the form names it (hidden ``supersedes``), so a change
replaces exactly the decision the signer saw (409 if another was signed meanwhile).

CSRF: a signed double-submit cookie. Each GET sets a fresh ``cc_ack_csrf`` cookie (HttpOnly,
SameSite=Strict, Path=/ack/, Secure behind https) and puts the same value in a hidden field; the
value is a nonce with an HMAC binding it to the token under a key of this process, so a cookie
planted from a sibling subdomain does not pass either. The POST needs cookie == field (constant
time), a valid MAC, no ``Sec-Fetch-Site`` other than ``same-origin``, and an ``Origin`` (when sent)
naming the request's ``Host`` or ``api.public_url``. ``Origin: null`` is let through: because
every page here says ``Referrer-Policy: no-referrer``, Chromium sends exactly that for our own
form (measured), so the signed cookie is what decides. Every answer forbids framing, external
resources and referrers.

Pages are small, self-contained HTML (inline CSS only) meant to be read on a phone at night. Every
value placed in HTML is escaped.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from coldchain.adapters.http.ack_links import LinkClaim, LinkError, LinkExpired, LinkSigner
from coldchain.adapters.http.api import Reply, Request
from coldchain.adapters.http.auth import Gatekeeper, Refusal
from coldchain.adapters.http.ports import RulesPort
from coldchain.core.alert import Alert
from coldchain.core.signature import Signer
from coldchain.core.signoff import Acknowledgement, DispositionConflict
from coldchain.core.wording import KIND_WORDS, VALUE_UNITS, say_number, say_span, say_time

log = logging.getLogger("coldchain.ack_page")

COOKIE = "cc_ack_csrf"
MAX_NOTE = 2000
MAX_FORM = 16 * 1024
MAX_SIGNER = 200
MAX_PASSWORD = 1024
_PATH = re.compile(r"^/ack/([^/]*)$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{1,128}$")

DISPOSITIONS: dict[str, str] = {
    "quarantined": "Quarantined — set aside, not to be used until decided",
    "released": "Released — fit for use",
    "discarded": "Discarded",
    "none": "None yet — decide later",
}
"""Form value -> label; ``none`` records no disposition."""

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
)


@dataclass(frozen=True, slots=True)
class AckForm:
    """A POSTed form, validated."""

    note: str
    disposition: str | None
    signer: str = ""
    password: str = ""
    supersedes: str | None = None


class FormError(Exception):
    """The form is incomplete or malformed; the message is shown to the person."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AckPage:
    """``route`` answers ``/ack/<token>``; register it in ``HttpApi.extra_routes``."""

    def __init__(
        self,
        signer: LinkSigner,
        rules: RulesPort,
        clock: Callable[[], datetime] = _utc_now,
        *,
        public_url: str = "",
        unit_names: Mapping[str, str] | None = None,
        gate: Gatekeeper | None = None,
    ) -> None:
        self.signer = signer
        self.rules = rules
        self.gate = gate
        """Checks signatures; without it the page takes no disposition (signatures are checked nowhere else)."""
        self.clock = clock
        self.secure_cookie = public_url.lower().startswith("https://")
        self.public_netloc = urlsplit(public_url).netloc.lower()
        self.unit_names = dict(unit_names or {})
        self._csrf_key = secrets.token_bytes(32)

    # -- routing ---------------------------------------------------------------------------

    def route(self, request: Request) -> Reply | None:
        """The reply for ``/ack/...`` requests; None for every other path."""
        if not request.path.startswith("/ack/"):
            return None
        match = _PATH.match(request.path)
        if match is None or request.method not in ("GET", "POST"):
            return self._page(HTTPStatus.NOT_FOUND, "Not found", _box("This page does not exist."))
        token = match.group(1)
        now = self.clock()
        try:
            if not _TOKEN.match(token):
                raise LinkError("malformed link")
            claim = self.signer.check(token, now)
        except LinkExpired:
            return self._refused(HTTPStatus.GONE, "This link has expired")
        except LinkError as exc:
            log.warning("acknowledge link refused: %s", exc)
            return self._refused(HTTPStatus.FORBIDDEN, "This link is not valid")
        if request.method == "GET":
            return self.show(token, claim, now)
        return self.submit(token, claim, request, now)

    # -- GET -------------------------------------------------------------------------------

    def show(self, token: str, claim: LinkClaim, now: datetime) -> Reply:
        """The alert and the form, with a fresh CSRF cookie."""
        alert = self._find(claim.alert_id)
        if alert is None:
            return self._gone_alert()
        csrf = self._new_csrf(token)
        return self._page(
            HTTPStatus.OK,
            self._title(alert),
            self._alert_html(alert, now) + self._form_html(alert, claim, csrf),
            cookie=self._cookie(csrf),
        )

    # -- POST ------------------------------------------------------------------------------

    def submit(self, token: str, claim: LinkClaim, request: Request, now: datetime) -> Reply:
        """Check CSRF, validate the form, acknowledge the token's alert, confirm."""
        try:
            fields: dict[str, list[str]] | None = read_fields(request)
        except FormError:
            fields = None
        problem = self._csrf_problem(token, request, fields)
        if problem is not None or fields is None:
            log.warning("acknowledge form refused: %s", problem, extra={"alert_id": claim.alert_id})
            reload_link = '<p><a class="button" href="">Open the alert again</a></p>'
            return self._page(
                HTTPStatus.FORBIDDEN,
                "Not acknowledged",
                _box(
                    "The form could not be checked (it may have been opened in another tab, or sent from "
                    "elsewhere). Nothing was changed.",
                    "bad",
                )
                + reload_link,
            )
        try:
            form = parse_form(fields)
        except FormError as exc:
            return self._again(HTTPStatus.BAD_REQUEST, str(exc), claim, fields, now)
        by = f"{claim.recipient} (link)"
        signer: Signer | None = None
        if form.disposition is not None:
            if self.gate is None:
                return self._again(HTTPStatus.FORBIDDEN, "Dispositions cannot be signed here.", claim, fields, now)
            try:
                signer = self.gate.sign(form.signer, form.password, request.client, claim.alert_id)
            except Refusal as refusal:
                return self._again(refusal.status, _refusal_text(refusal), claim, fields, now)
        try:
            acked = self.rules.acknowledge(
                Acknowledgement(claim.alert_id, by, form.note, form.disposition, signer, form.supersedes)
            )
        except DispositionConflict:
            return self._again(
                HTTPStatus.CONFLICT,
                "The disposition was changed while this page was open: read it again above before you sign. "
                "Nothing was changed.",
                claim,
                fields,
                now,
            )
        except TimeoutError:
            return self._page(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "Not confirmed",
                _box(
                    "The service did not confirm the acknowledgement in time; it may still be recorded. "
                    "Open the link again to see the alert's state before trying again.",
                    "bad",
                ),
            )
        if acked is None:
            return self._gone_alert()
        log.info(
            "alert acknowledged by link",
            extra={
                "alert_id": acked.id,
                "by": by,
                "disposition": form.disposition,
                "note": form.note,
                "signed_by": signer.name if signer is not None else None,
            },
        )
        return self._page(
            HTTPStatus.OK,
            "Acknowledged",
            _box(f"Acknowledged: {self._title(acked)}.", "good", heading="Done")
            + self._alert_html(acked, self.clock()),
            cookie=self._cookie("", max_age=0),  # spent: a reload cannot post the form twice
        )

    def _again(
        self, status: HTTPStatus, problem: str, claim: LinkClaim, fields: dict[str, list[str]], now: datetime
    ) -> Reply:
        """The alert and the form again (note, choice and signer kept; never the password), with the problem."""
        alert = self._find(claim.alert_id)
        if alert is None:
            return self._gone_alert()
        again = self._form_html(
            alert,
            claim,
            fields["csrf"][0],
            note=_first(fields, "note") or "",
            disposition=_first(fields, "disposition"),
            signer=_first(fields, "signer") or "",
        )
        return self._page(status, self._title(alert), _box(problem, "bad") + self._alert_html(alert, now) + again)

    # -- CSRF ------------------------------------------------------------------------------

    def _new_csrf(self, token: str) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._csrf_mac(token, nonce)}"

    def _csrf_mac(self, token: str, nonce: str) -> str:
        mac = hmac.new(self._csrf_key, f"cc-ack-csrf\x00{token}\x00{nonce}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def _our_origin(self, origin: str, host: str) -> bool:
        """``origin`` names the host the request was sent to, or the configured public URL (behind a proxy)."""
        netloc = urlsplit(origin).netloc.lower()
        return bool(netloc) and netloc in {host.lower(), self.public_netloc}

    def _cookie(self, csrf: str, max_age: int | None = None) -> str:
        """A session cookie for the CSRF value (``max_age=0`` deletes it)."""
        attributes = ["Path=/ack/", *([f"Max-Age={max_age}"] if max_age is not None else []), "HttpOnly"]
        attributes += ["SameSite=Strict", *(["Secure"] if self.secure_cookie else [])]
        return "; ".join([f"{COOKIE}={csrf}", *attributes])

    def _csrf_problem(self, token: str, request: Request, fields: dict[str, list[str]] | None) -> str | None:
        """Why the POST may not be trusted to come from our own page; None when it may."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site != "same-origin":
            return f"Sec-Fetch-Site is {fetch_site}"
        origin = request.headers.get("origin")
        # "null" is what browsers send for our own form: the page's Referrer-Policy is no-referrer
        if origin is not None and origin != "null" and not self._our_origin(origin, request.headers.get("host", "")):
            return f"Origin {origin} is neither Host nor api.public_url"
        cookie = _cookie_value(request.headers.get("cookie", ""), COOKIE)
        if cookie is None:
            return "no CSRF cookie"
        if fields is None:
            return "unreadable form"
        if len(fields.get("csrf", [])) != 1:
            return "no single CSRF field"
        field = fields["csrf"][0]
        if not hmac.compare_digest(cookie.encode(), field.encode()):
            return "CSRF cookie and field differ"
        nonce, _, mac = field.partition(".")
        if not nonce or not hmac.compare_digest(mac.encode(), self._csrf_mac(token, nonce).encode()):
            return "CSRF value not issued for this link"
        return None

    # -- HTML ------------------------------------------------------------------------------

    def _find(self, alert_id: str) -> Alert | None:
        return next((alert for alert in self.rules.view.alerts if alert.id == alert_id), None)

    def _unit(self, alert: Alert) -> str:
        name = self.unit_names.get(alert.unit)
        return f"{name} ({alert.unit})" if name and name != alert.unit else alert.unit

    def _title(self, alert: Alert) -> str:
        name = self.unit_names.get(alert.unit) or alert.unit
        return f"{KIND_WORDS.get(alert.kind, alert.kind)} — {name}"

    def _alert_html(self, alert: Alert, now: datetime) -> str:
        tone = "good" if alert.state == "resolved" else ("crit" if alert.severity == "critical" else "warn")
        rows: list[tuple[str, str]] = [("Unit", self._unit(alert)), ("Site", alert.site)]
        if alert.sensor is not None:
            rows.append(("Sensor", alert.sensor))
        if alert.bag is not None:
            rows.append(("Bag", alert.bag))
        since = say_time(alert.started_at)
        if alert.state != "resolved":
            since += f" ({say_span(max(now - alert.started_at, timedelta(0)))} ago)"
        rows.append(("Since", since))
        if alert.value is not None:
            unit = VALUE_UNITS.get(alert.kind)
            rows.append(("Value", say_number(alert.value) + (f" {unit}" if unit else "")))
        rows.append(("State", alert.state))
        if alert.resolved_at is not None:
            rows.append(("Resolved", say_time(alert.resolved_at)))
        rows.append(("Affected bags", ", ".join(alert.affected_bags) or "none recorded"))
        if alert.acknowledged_by is not None:
            when = f" at {say_time(alert.acknowledged_at)}" if alert.acknowledged_at is not None else ""
            rows.append(("Acknowledged", f"by {alert.acknowledged_by}{when}"))
            rows.append(("Disposition", alert.disposition or "none yet"))
            if alert.signature is not None:
                sig = alert.signature
                rows.append(("Signed", f"{sig.full_name} ({sig.name}) at {say_time(sig.at)}: {sig.meaning}"))
            if alert.note:
                rows.append(("Note", alert.note))
            for entry in alert.history[1:]:
                said = f"by {entry.by} at {say_time(entry.at)}"
                if entry.signature is not None:
                    said += f", signed by {entry.signature.full_name}: {entry.signature.meaning}"
                rows.append(("Later", said + (f" — {entry.note}" if entry.note else "")))
        table = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
        return (
            f'<p class="tag {tone}">{escape(alert.severity.upper())} · {escape(alert.state.upper())}</p>'
            f"<h1>{escape(self._title(alert))}</h1>"
            f'<p class="msg">{escape(alert.message)}</p>'
            f"<dl>{table}</dl>"
        )

    def _form_html(
        self,
        alert: Alert,
        claim: LinkClaim,
        csrf: str,
        *,
        note: str = "",
        disposition: str | None = None,
        signer: str = "",
    ) -> str:
        if alert.state == "resolved":
            intro = "This alert has resolved. You can still record an acknowledgement for the record."
        elif alert.state == "acknowledged":
            intro = "Already acknowledged. Confirming again adds to the record; what was recorded stays."
        else:
            intro = "Record what you did. Both answers are required."
        supersedes = ""
        replaces = ""
        if alert.signature is not None:
            supersedes = f'<input type="hidden" name="supersedes" value="{escape(alert.signature.id)}">'
            replaces = (
                f"Choosing a disposition replaces “{alert.disposition}”, signed by {alert.signature.full_name}; "
                "your signature names it. "
            )
        radios = "".join(
            f'<label class="choice"><input type="radio" name="disposition" value="{escape(value)}" required'
            f"{' checked' if value == disposition else ''}> {escape(label)}</label>"
            for value, label in DISPOSITIONS.items()
        )
        return (
            '<form method="post" autocomplete="off">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f"<h2>Acknowledge</h2><p>{escape(intro)}</p>"
            f"<fieldset><legend>What happened to the stock?</legend>{radios}</fieldset>"
            '<label for="note">Note (required)</label>'
            f'<textarea id="note" name="note" rows="4" maxlength="{MAX_NOTE}" required>{escape(note)}</textarea>'
            f"{supersedes}"
            "<fieldset><legend>Sign the disposition</legend>"
            f'<p class="small">{escape(replaces)}Quarantined, released or discarded is a signed decision: '
            "your user name and signing password (a pharmacist or admin). Not needed for “None yet”.</p>"
            '<label for="signer">User name</label>'
            f'<input id="signer" name="signer" autocomplete="username" maxlength="{MAX_SIGNER}" '
            f'value="{escape(signer)}">'
            '<label for="password">Signing password</label>'
            f'<input id="password" name="password" type="password" autocomplete="current-password" '
            f'maxlength="{MAX_PASSWORD}">'
            "</fieldset>"
            '<button type="submit">Confirm acknowledgement</button>'
            f'<p class="small">Recorded as {escape(claim.recipient)} (link). '
            f"This link works until {escape(say_time(claim.expires))}.</p>"
            "</form>"
        )

    def _refused(self, status: HTTPStatus, title: str) -> Reply:
        detail = (
            "Acknowledge links work for a limited time. Use the link in a newer notification, or the operator API."
            if status == HTTPStatus.GONE
            else "The link is incomplete or was changed. Open it again from the notification."
        )
        return self._page(status, title, _box(f"{title}. Nothing was changed. {detail}", "bad", heading=title))

    def _gone_alert(self) -> Reply:
        return self._page(
            HTTPStatus.NOT_FOUND,
            "Alert not found",
            _box("This alert is no longer known to the service (resolved long ago). Nothing was changed.", "bad"),
        )

    def _page(self, status: HTTPStatus, title: str, body: str, cookie: str | None = None) -> Reply:
        page = (
            "<!doctype html>"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f"<title>{escape(title)} · coldchain</title><style>{_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>"
        )
        headers = SECURITY_HEADERS + ((("Set-Cookie", cookie),) if cookie else ())
        return Reply(status, page.encode(), "text/html; charset=utf-8", headers)


def read_fields(request: Request) -> dict[str, list[str]]:
    """The fields of a POSTed ``application/x-www-form-urlencoded`` body; FormError if it is not one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError("The form was not sent as a form.")
    if len(request.body) > MAX_FORM:
        raise FormError("The form is too large.")
    try:
        return parse_qs(request.body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except ValueError:  # not UTF-8, or too many fields
        raise FormError("The form could not be read.") from None


def parse_form(fields: dict[str, list[str]]) -> AckForm:
    """The note and disposition of a form's fields; FormError says what is wrong."""
    note = (_one(fields, "note") or "").replace("\r\n", "\n").strip()
    disposition = _one(fields, "disposition")
    if disposition is None or disposition not in DISPOSITIONS:
        raise FormError("Choose what happened to the stock.")
    if not note:
        raise FormError("Write a note: what you found and what you did.")
    if len(note) > MAX_NOTE:
        raise FormError(f"The note is too long ({len(note)} characters; at most {MAX_NOTE}).")
    if disposition == "none":
        return AckForm(note, None)
    signer = (_one(fields, "signer") or "").strip()
    password = _one(fields, "password") or ""
    if not signer or not password:
        raise FormError("A disposition is a signed decision: enter your user name and signing password.")
    if len(signer) > MAX_SIGNER or len(password) > MAX_PASSWORD:
        raise FormError("The user name or password is too long.")
    return AckForm(note, disposition, signer, password, _one(fields, "supersedes") or None)


def _refusal_text(refusal: Refusal) -> str:
    """What the person reads when the signature is refused."""
    if refusal.status in (HTTPStatus.LOCKED, HTTPStatus.FORBIDDEN):
        return f"Not signed: {refusal.message}. Nothing was changed."
    return f"Not signed: {refusal.message} (check the user name and signing password). Nothing was changed."


def _one(fields: dict[str, list[str]], name: str) -> str | None:
    """The single value of ``name``; FormError when it is sent more than once."""
    values = fields.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise FormError(f"The form sent {name} more than once.")
    return values[0]


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _cookie_value(header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header; None if absent or sent twice."""
    found = [value for key, _, value in (part.strip().partition("=") for part in header.split(";")) if key == name]
    return found[0] if len(found) == 1 else None


def _box(text: str, tone: str = "", heading: str | None = None) -> str:
    title = f"<h1>{escape(heading)}</h1>" if heading else ""
    return f'<div class="box {escape(tone)}">{title}<p>{escape(text)}</p></div>'


_CSS = """
:root{color-scheme:light dark;--bg:#fff;--fg:#111;--mut:#555;--line:#ccc;--crit:#b00020;--warn:#8a5a00;--good:#1b6e2a}
@media (prefers-color-scheme:dark){:root{--bg:#111;--fg:#eee;--mut:#aaa;--line:#444;--crit:#ff6b7f;--warn:#ffc04d;
--good:#6fd488}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:18px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:36rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.25rem 0 .5rem}h2{font-size:1.2rem;margin:1.5rem 0 .25rem}
.tag{display:inline-block;margin:0;padding:.15rem .6rem;border-radius:.3rem;font-weight:700;color:var(--bg)}
.tag.crit{background:var(--crit)}.tag.warn{background:var(--warn)}.tag.good{background:var(--good)}
.msg{font-size:1.1rem;font-weight:600}
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem;margin:1rem 0}
dt{color:var(--mut)}dd{margin:0;overflow-wrap:anywhere;white-space:pre-wrap}
fieldset{border:1px solid var(--line);border-radius:.4rem;margin:1rem 0;padding:.5rem .75rem}
.choice{display:block;padding:.45rem 0}.choice input{width:1.3rem;height:1.3rem;vertical-align:-.2rem}
label[for=note],label[for=signer],label[for=password]{display:block;font-weight:600;margin-top:.5rem}
textarea,input[name=signer],input[name=password]{width:100%;font:inherit;padding:.5rem;border:1px solid var(--line);
border-radius:.4rem;background:var(--bg);color:var(--fg)}
button,.button{display:block;width:100%;margin:1rem 0;padding:.9rem;font:inherit;font-weight:700;text-align:center;
color:#fff;background:#0b57d0;border:0;border-radius:.5rem;text-decoration:none}
.small{color:var(--mut);font-size:.9rem}
.box{border-left:.4rem solid var(--line);padding:.5rem 1rem;margin:1rem 0}
.box.bad{border-color:var(--crit)}.box.good{border-color:var(--good)}
"""


# shared with the review page (review_page.py): its look, its boxes and its cookie parsing
PAGE_CSS = _CSS
box_html = _box
cookie_value = _cookie_value
