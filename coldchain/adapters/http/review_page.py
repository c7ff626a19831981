"""The daily review page (``GET``/``POST /review[?site=<id>]``): a site's units, their figures, a signing form.

GET lists each unit of the site (every unit when no site is given) with what its review covers
(``reviews.py`` ``ReviewDesk.figures``: minimum, maximum and current temperature per sensor, time out
of range, excursions opened and their dispositions, the window and the site's local date) and a form
per unit: note, user name and signing password. The password is both the identification and the
electronic signature (meaning ``daily review``): POST re-computes the figures server side, checks the
signer with the API's ``Gatekeeper`` (role staff or above, 401 wrong, 423 locked, 403 a role that may
not sign) and records the review; the page is shown again with the outcome. Nothing typed on the
page becomes a figure.

CSRF as on the acknowledge page: a signed double-submit cookie (``cc_review_csrf``, HttpOnly,
SameSite=Strict, Path=/review) whose value is a nonce with an HMAC under a key of this process, plus
``Sec-Fetch-Site`` and ``Origin`` checks. Every value placed in HTML is escaped.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from html import escape
from http import HTTPStatus
from urllib.parse import quote, urlsplit

from coldchain.adapters.http.ack_page import (
    PAGE_CSS,
    SECURITY_HEADERS,
    FormError,
    box_html,
    cookie_value,
    read_fields,
)
from coldchain.adapters.http.api import Reply, Request
from coldchain.adapters.http.auth import Refusal
from coldchain.adapters.http.reviews import ReviewDesk, ReviewRefused
from coldchain.config import Settings
from coldchain.core.review import ReviewFigures, ReviewRequest
from coldchain.core.wording import KIND_WORDS, say_number, say_time

log = logging.getLogger("coldchain.review_page")

COOKIE = "cc_review_csrf"
MAX_NOTE = 2000
MAX_SIGNER = 200
MAX_PASSWORD = 1024
_CSS_MORE = "table{border-collapse:collapse;width:100%;font-size:.95rem}td,th{border-bottom:1px solid var(--line);"
_CSS_MORE += "padding:.25rem;text-align:left}section{border-top:2px solid var(--line);margin-top:1.5rem}"


class ReviewPage:
    """``route`` answers ``/review``; register it in ``HttpApi.extra_routes``."""

    def __init__(self, settings: Settings, desk: ReviewDesk, *, public_url: str = "") -> None:
        self.settings = settings
        self.desk = desk
        self.secure_cookie = public_url.lower().startswith("https://")
        self.public_netloc = urlsplit(public_url).netloc.lower()
        self._csrf_key = secrets.token_bytes(32)

    def route(self, request: Request) -> Reply | None:
        if request.path != "/review":
            return None
        asked = request.query.get("site") or []
        site = asked[0] if asked else None
        sites = {unit.site for unit in self.settings.units}
        if site is not None and site not in sites:
            return self._page(HTTPStatus.NOT_FOUND, "Unknown site", box_html(f"No unit is at site {site}.", "bad"))
        if request.method == "GET":
            return self._show(site, HTTPStatus.OK, "")
        if request.method == "POST":
            return self._submit(site, request)
        return self._page(HTTPStatus.METHOD_NOT_ALLOWED, "Not allowed", box_html("Use the form.", "bad"))

    # -- GET and POST ----------------------------------------------------------------------

    def _show(self, site: str | None, status: HTTPStatus, message: str, tone: str = "bad") -> Reply:
        csrf = self._new_csrf()
        units = [u for u in self.settings.units if site is None or u.site == site]
        parts = [box_html(message, tone) if message else ""]
        for unit in units:
            try:
                figures = self.desk.figures(unit.id)
            except ReviewRefused as exc:
                parts.append(f"<section><h2>{escape(unit.display_name)}</h2>{box_html(exc.message, 'bad')}</section>")
                continue
            parts.append(self._unit_html(unit.display_name, figures, csrf))
        title = f"Daily review — {site}" if site else "Daily review"
        return self._page(status, title, f"<h1>{escape(title)}</h1>" + "".join(parts), cookie=self._cookie(csrf))

    def _submit(self, site: str | None, request: Request) -> Reply:
        try:
            fields: dict[str, list[str]] | None = read_fields(request)
        except FormError:
            fields = None
        problem = self._csrf_problem(request, fields)
        if problem is not None or fields is None:
            log.warning("review form refused: %s", problem)
            text = "The form could not be checked (opened in another tab, or sent from elsewhere). Nothing was signed."
            return self._show(site, HTTPStatus.FORBIDDEN, text)
        unit = _single(fields, "unit")
        note = (_single(fields, "note") or "").replace("\r\n", "\n").strip()
        signer = (_single(fields, "signer") or "").strip()
        password = _single(fields, "password") or ""
        if unit is None or all(u.id != unit for u in self.settings.units):
            return self._show(site, HTTPStatus.BAD_REQUEST, "Choose a unit's form to sign.")
        if not signer or not password:
            return self._show(site, HTTPStatus.UNAUTHORIZED, "Enter your user name and signing password to sign.")
        if len(note) > MAX_NOTE or len(signer) > MAX_SIGNER or len(password) > MAX_PASSWORD:
            return self._show(site, HTTPStatus.BAD_REQUEST, "The note, user name or password is too long.")
        try:
            figures = self.desk.figures(unit)
            signed = self.desk.gate.sign(signer, password, request.client, f"review:{unit}", "sign_review")
            review = self.desk.rules().review(ReviewRequest(figures, signed.name, signed, note or None))
        except Refusal as refusal:
            return self._show(site, refusal.status, f"Not signed: {refusal.message}. Nothing was recorded.")
        except ReviewRefused as exc:
            return self._show(site, exc.status, f"Not signed: {exc.message}.")
        except TimeoutError:
            text = "The service did not confirm the review in time; reload the page to see whether it was recorded."
            return self._show(site, HTTPStatus.SERVICE_UNAVAILABLE, text)
        log.info("daily review signed on the page", extra={"unit": unit, "by": review.by})
        done = f"Review of {unit} signed by {review.full_name} ({review.by}) at {say_time(review.at)}."
        return self._show(site, HTTPStatus.OK, done, "good")

    # -- HTML ------------------------------------------------------------------------------

    def _unit_html(self, name: str, f: ReviewFigures, csrf: str) -> str:
        rows = "".join(
            f"<tr><td>{escape(s.sensor)}</td><td>{_num(s.min_celsius)}</td><td>{_num(s.max_celsius)}</td>"
            f"<td>{_num(s.current_celsius)}</td><td>{say_number(s.minutes_out_of_range)}</td>"
            f"<td>{say_number(s.minutes_unknown)}</td></tr>"
            for s in f.sensors
        )
        table = (
            "<table><tr><th>Sensor</th><th>Min °C</th><th>Max °C</th><th>Now °C</th><th>Out of range, min</th>"
            f"<th>No data, min</th></tr>{rows}</table>"
            if f.sensors
            else "<p>No temperature sensor.</p>"
        )
        excursions = "".join(
            f"<li>{escape(_kind_words(e.kind))} ({escape(e.subject)}) from {escape(say_time(e.started_at))}"
            f" — disposition: {escape(e.disposition or 'none yet')}</li>"
            for e in f.excursions
        )
        last = say_time(f.last_review_at) if f.last_review_at is not None else "never"
        unit = escape(f.unit)
        return (
            f'<section id="unit-{unit}"><h2>{escape(name)} ({unit})</h2>'
            f"<p>Local date <b>{escape(f.local_date)}</b> · from {escape(say_time(f.window_from))} to "
            f"{escape(say_time(f.window_to))} · last review: {escape(last)}</p>{table}"
            f"<p>Excursions opened: {len(f.excursions)}</p><ul>{excursions}</ul>"
            '<form method="post" autocomplete="off">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}"><input type="hidden" name="unit" value="{unit}">'
            f'<label for="note-{unit}">Note</label>'
            f'<textarea id="note-{unit}" name="note" rows="2" maxlength="{MAX_NOTE}"></textarea>'
            f'<label for="signer-{unit}">User name</label>'
            f'<input id="signer-{unit}" name="signer" autocomplete="username" maxlength="{MAX_SIGNER}">'
            f'<label for="password-{unit}">Signing password</label>'
            f'<input id="password-{unit}" name="password" type="password" autocomplete="current-password" '
            f'maxlength="{MAX_PASSWORD}">'
            f'<button type="submit">Sign the daily review of {unit}</button></form></section>'
        )

    def _page(self, status: HTTPStatus, title: str, body: str, cookie: str | None = None) -> Reply:
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">'
            f"<title>{escape(title)} · coldchain</title><style>{PAGE_CSS}{_CSS_MORE}"
            "label{display:block;font-weight:600;margin-top:.5rem}textarea,input{width:100%;font:inherit}</style>"
            f"</head><body><main>{body}</main></body></html>"
        )
        headers = SECURITY_HEADERS + ((("Set-Cookie", cookie),) if cookie else ())
        return Reply(status, page.encode(), "text/html; charset=utf-8", headers)

    # -- CSRF ------------------------------------------------------------------------------

    def _new_csrf(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._mac(nonce)}"

    def _mac(self, nonce: str) -> str:
        return hmac.new(self._csrf_key, f"cc-review-csrf\x00{nonce}".encode(), hashlib.sha256).hexdigest()

    def _cookie(self, csrf: str) -> str:
        attributes = ["Path=/review", "HttpOnly", "SameSite=Strict", *(["Secure"] if self.secure_cookie else [])]
        return "; ".join([f"{COOKIE}={quote(csrf, safe='.-_')}", *attributes])

    def _csrf_problem(self, request: Request, fields: dict[str, list[str]] | None) -> str | None:
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site != "same-origin":
            return f"Sec-Fetch-Site is {fetch_site}"
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            netloc = urlsplit(origin).netloc.lower()
            if not netloc or netloc not in {request.headers.get("host", "").lower(), self.public_netloc}:
                return f"Origin {origin} is neither Host nor api.public_url"
        cookie = cookie_value(request.headers.get("cookie", ""), COOKIE)
        if cookie is None or fields is None or len(fields.get("csrf", [])) != 1:
            return "no CSRF cookie or field"
        field = fields["csrf"][0]
        if not hmac.compare_digest(cookie.encode(), field.encode()):
            return "CSRF cookie and field differ"
        nonce, _, mac = field.partition(".")
        if not nonce or not hmac.compare_digest(mac.encode(), self._mac(nonce).encode()):
            return "CSRF value not issued here"
        return None


def _single(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name) or []
    return values[0] if len(values) == 1 else None


def _kind_words(kind: str) -> str:
    return next((words for known, words in KIND_WORDS.items() if known == kind), kind)


def _num(value: float | None) -> str:
    return say_number(value) if value is not None else "—"
