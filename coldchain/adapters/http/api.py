"""HTTP edge: health, readiness, metrics and the operator API (CONTRACT §5).

``route`` turns our ``Request`` into our ``Reply``; ``server.HttpServer`` (cheroot, hardened against
slow, oversized and malformed clients) serves it. Every ``/api/`` call needs ``Authorization:
Bearer <token>``; the token names the user, and the user recorded on an action is always the token's.
``auth.py`` checks tokens, roles (403) and electronic signatures (401/423) and throttles failed token
checks (429).
Handlers convert requests into calls on the rules worker (which owns the alerts) and never touch
the engine themselves.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coldchain.adapters.http.auth import Gatekeeper, Refusal
from coldchain.adapters.http.bodies import SignatureBody
from coldchain.adapters.http.ports import RulesPort
from coldchain.adapters.http.reviews import ReviewBody, ReviewDesk, ReviewRefused
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.mqtt import MqttError
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Settings
from coldchain.contract.parser import MessageParser, RejectedMessage
from coldchain.contract.topics import id_problem
from coldchain.core.access import Caller
from coldchain.core.review import review_document
from coldchain.core.signoff import Acknowledgement, DispositionConflict
from coldchain.core.times import format_time

log = logging.getLogger("coldchain.api")

ReadinessCheck = Callable[[], list[str]]
"""Returns the reasons the service is not ready; empty when ready."""

MAX_BODY = 64 * 1024
_ACK = re.compile(r"^/api/alerts/([^/]+)/ack$")
_BAG = re.compile(r"^/api/bags/([^/+#]+)/events$")
_REVIEW = re.compile(r"^/api/units/([^/]+)/(review|reviews)$")


class AckBody(BaseModel):
    """``POST /api/alerts/<id>/ack``; a disposition is signed and names the signed one it replaces."""

    model_config = ConfigDict(extra="forbid", strict=True)
    note: str | None = Field(default=None, max_length=2000)
    disposition: Literal["quarantined", "released", "discarded"] | None = None
    signature: SignatureBody | None = None
    supersedes: str | None = Field(default=None, max_length=100)


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer."""

    status: HTTPStatus
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: HTTPStatus, data: Any) -> Reply:
    return Reply(status, json.dumps(data, ensure_ascii=False).encode() + b"\n")


def error_reply(status: HTTPStatus, message: str) -> Reply:
    return json_reply(status, {"error": message})


UNAUTHORIZED = Reply(
    HTTPStatus.UNAUTHORIZED,
    b'{"error": "missing or wrong bearer token"}\n',
    headers=(("WWW-Authenticate", 'Bearer realm="coldchain"'),),
)
"""The answer to a call whose bearer token names nobody (before or after its body is read)."""


class ApiError(Exception):
    """A request the API refuses, with the status to answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    """What the handlers need of an HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: str = ""
    """The client's address (failed token checks are throttled per address)."""


@dataclass(eq=False)
class HttpApi:
    """The endpoints: ``route(request) -> reply``; ``server.HttpServer`` serves them on ``api.listen``."""

    settings: Settings
    metrics: Metrics
    readiness: ReadinessCheck
    store: Store
    rules: RulesPort | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        self.parser = MessageParser(self.settings)
        security = self.rules.security_event if self.rules is not None else None
        self.gate = Gatekeeper(self.settings.api.users, self.metrics, self.clock, security=security)
        self.liveness: Callable[[], list[str]] = list
        """Roles that cannot recover (the supervisor's ``dead``): /healthz answers 503 while there are any."""
        self.extra_routes: list[Callable[[Request], Reply | None]] = []
        """Handlers tried before the built-in routes (the acknowledge page registers here)."""
        self.reviews = ReviewDesk(self.settings, self.store, self.gate, self._rules, self.clock)

    def route(self, request: Request) -> Reply:
        try:
            for extra in self.extra_routes:
                reply = extra(request)
                if reply is not None:
                    return reply
            return self._route(request)
        except ApiError as exc:
            return error_reply(exc.status, exc.message)
        except Refusal as exc:
            reply = error_reply(exc.status, exc.message)
            return Reply(reply.status, reply.body, reply.content_type, exc.headers)
        except Exception:  # a bug answers 500 and is logged; the service goes on
            log.exception("error serving %s %s", request.method, request.path)
            return error_reply(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; see the service log")

    def _route(self, request: Request) -> Reply:
        path, method = request.path, request.method
        if method == "GET" and path == "/healthz":
            dead = self.liveness()
            if dead:
                return Reply(
                    HTTPStatus.SERVICE_UNAVAILABLE, ("\n".join(dead) + "\n").encode(), "text/plain; charset=utf-8"
                )
            return Reply(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        if method == "GET" and path == "/readyz":
            problems = self.readiness()
            status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
            return json_reply(status, {"ready": not problems, "problems": problems})
        if method == "GET" and path == "/metrics":
            return Reply(HTTPStatus.OK, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        if not path.startswith("/api/"):
            return error_reply(HTTPStatus.NOT_FOUND, "not found")
        user = self.user_of(request)
        if user is None:
            return UNAUTHORIZED
        gate = self.gate
        if method == "GET" and path == "/api/units":
            gate.authorize(user, "read", "read units")
            return json_reply(HTTPStatus.OK, self.units())
        if method == "GET" and path == "/api/alerts":
            gate.authorize(user, "read", "read alerts")
            return json_reply(HTTPStatus.OK, self.alerts(request.query.get("state", [None])[0]))
        if method == "POST" and (match := _ACK.match(path)):
            return self.acknowledge(unquote(match.group(1)), user, request.body, request.client)
        if method == "POST" and (match := _BAG.match(path)):
            gate.authorize(user, "bag_event", "record bag events")
            return self.bag_event(unquote(match.group(1)), user.name, request.body)
        if match := _REVIEW.match(path):
            return self.review(method, match.group(2), unquote(match.group(1)), user, request)
        if method == "GET" and path == "/api/exports":
            gate.authorize(user, "export", "download audit exports")
            return self.export(request.query, user)
        if method == "GET" and path == "/api/audit/verify":
            gate.authorize(user, "verify_audit", "verify the audit trail")
            return json_reply(HTTPStatus.OK, self.audit_verify())
        if method == "GET" and path == "/api/keys/export":
            gate.authorize(user, "read", "read the export signing key")
            return self.export_key()
        return error_reply(HTTPStatus.NOT_FOUND, "not found")

    def user_of(self, request: Request) -> Caller | None:
        """The user (name, full name, role) whose token the request carries; None when it names nobody.

        Tokens are compared as SHA-256 digests in constant time against every user; failed checks are
        throttled per client address (``Refusal`` 429).
        """
        return self.gate.caller(request.headers.get("authorization", ""), request.client)

    def _rules(self) -> RulesPort:
        if self.rules is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "alerts are served by the process running the rules role")
        return self.rules

    # -- endpoints -------------------------------------------------------------------------

    def alerts(self, state: str | None) -> list[dict[str, Any]]:
        """Known alerts, newest first: active ones and recently resolved ones.

        ``state`` filters: ``open``, ``acknowledged``, ``resolved``, or ``active`` (open or acknowledged).
        """
        wanted = {"active": {"open", "acknowledged"}}.get(state or "", {state} if state else None)
        if wanted is not None and not wanted <= {"open", "acknowledged", "resolved"}:
            raise ApiError(HTTPStatus.BAD_REQUEST, "state must be open, acknowledged, resolved or active")
        alerts = sorted(self._rules().view.alerts, key=lambda a: a.updated_at, reverse=True)
        return [a.to_payload() for a in alerts if wanted is None or a.state in wanted]

    def units(self) -> list[dict[str, Any]]:
        """Each unit: last reading per sensor, open alerts, diluted bags with time left."""
        view = self._rules().view
        now = datetime.now(UTC)
        latest: dict[str, dict[str, Any]] = {}
        store_error = None
        try:
            for measurement in ("temperature", "shake"):
                latest.update(self.store.latest(measurement, "sensor"))
        except StoreError as exc:
            store_error = str(exc)
        out = []
        for unit in self.settings.units:
            sensors = []
            for sensor in (s for s in self.settings.sensors if s.unit == unit.id):
                row = latest.get(sensor.id)
                last = None
                if row is not None:
                    value_key = "celsius" if sensor.kind == "temperature" else "peak_g"
                    last = {"ts": format_time(row["time"]), value_key: row.get(value_key)}
                sensors.append({"id": sensor.id, "kind": sensor.kind, "last": last})
            bags = [
                {
                    "bag": bag,
                    "diluted_at": format_time(diluted),
                    "deadline": format_time(deadline),
                    "seconds_left": round((deadline - now).total_seconds()),
                }
                for bag, bag_unit, diluted, deadline in view.bags
                if bag_unit == unit.id
            ]
            out.append(
                {
                    "id": unit.id,
                    "site": unit.site,
                    "name": unit.display_name,
                    "profile": unit.profile,
                    "sensors": sensors,
                    "open_alerts": [a.to_payload() for a in view.alerts if a.unit == unit.id and a.state != "resolved"],
                    "bags": bags,
                    **({"store_error": store_error} if store_error else {}),
                }
            )
        return out

    def acknowledge(self, alert_id: str, user: Caller, body: bytes, client: str = "") -> Reply:
        """Acknowledge as the token's user; a disposition is signed with the user's signing password.

        Publishes and stores the updated alert; 403 outside the role, 401/423 for the signature, 409 for
        a disposition change that does not name the signed disposition it replaces.
        """
        try:
            ack = AckBody.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, _first_error(exc)) from None
        signer = None
        if ack.disposition is None:
            self.gate.authorize(user, "acknowledge", "acknowledge alerts")
            if ack.signature is not None:
                raise ApiError(HTTPStatus.BAD_REQUEST, "signature: only a disposition is signed; send one or neither")
        else:
            self.gate.authorize(user, "sign_disposition", "set a disposition (a signed decision about stock)")
            password = ack.signature.password if ack.signature is not None else None
            signer = self.gate.sign(user.name, password, client, alert_id)
        rules = self._rules()
        try:
            alert = rules.acknowledge(
                Acknowledgement(alert_id, user.name, ack.note, ack.disposition, signer, ack.supersedes)
            )
        except DispositionConflict as exc:
            raise ApiError(HTTPStatus.CONFLICT, str(exc)) from None
        if alert is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no alert {alert_id!r} is open or recently resolved")
        log.info(
            "alert acknowledged",
            extra={
                "alert_id": alert_id,
                "by": user.name,
                "disposition": ack.disposition,
                "note": ack.note,
                "signed": signer is not None,
            },
        )
        return json_reply(HTTPStatus.OK, alert.to_payload())

    def review(self, method: str, which: str, unit: str, user: Caller, request: Request) -> Reply:
        """GET ``…/review``: what the unit's daily review covers; POST ``…/reviews``: sign it (201)."""
        try:
            if method == "GET" and which == "review":
                self.gate.authorize(user, "read_review", "read the daily review")
                return json_reply(HTTPStatus.OK, self.reviews.figures(unit).to_payload())
            if method == "POST" and which == "reviews":
                try:
                    body = ReviewBody.model_validate_json(request.body or b"{}")
                except ValidationError as exc:
                    raise ApiError(HTTPStatus.BAD_REQUEST, _first_error(exc)) from None
                password = body.signature.password if body.signature is not None else None
                review = self.reviews.sign(unit, user, body.note, password, request.client)
                log.info("daily review signed", extra={"unit": unit, "by": user.name})
                return json_reply(HTTPStatus.CREATED, review_document(review))
        except ReviewRefused as exc:
            raise ApiError(exc.status, exc.message) from None
        raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here")

    def export(self, query: dict[str, list[str]], user: Caller) -> Reply:
        """``GET /api/exports?from=&to=[&site=&unit=]``: the audit export (csv and pdf, signed manifest) as a zip."""
        from coldchain.adapters.http.exports import ExportRefused, export_zip

        try:
            data, filename = export_zip(self.store, self.settings, query, self.clock())
        except ExportRefused as exc:
            raise ApiError(HTTPStatus(exc.status), exc.message) from None
        log.info("audit export downloaded", extra={"by": user.name, "file": filename, "bytes": len(data)})
        disposition = ("Content-Disposition", f'attachment; filename="{filename}"')
        return Reply(HTTPStatus.OK, data, "application/zip", (disposition,))

    def audit_verify(self) -> dict[str, Any]:
        """``GET /api/audit/verify``: walk the store's audit chain; ``intact`` false names the first break."""
        from coldchain.core.audit_chain import verify_chain
        from coldchain.reporting.audit_trail import read_chain

        try:
            events = read_chain(self.store, chain=self.settings.rules.audit_chain)
        except StoreError as exc:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read the audit trail: {exc}") from None
        problem = verify_chain(events)
        head = events[-1] if events else None
        return {
            "intact": problem is None,
            "events": len(events),
            "head_seq": head.seq if head is not None else 0,
            "head_hash": head.hash if head is not None else None,
            "head_at": format_time(head.at) if head is not None else None,
            "first_break": str(problem) if problem is not None else None,
        }
    def export_key(self) -> Reply:
        """The Ed25519 public key that signs export manifests (PEM, base64 and fingerprint), to pin once."""
        from coldchain.reporting.signing import load_signer

        try:
            signer = load_signer(self.settings)
        except ValueError as exc:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
        return json_reply(HTTPStatus.OK, signer.describe())

    def bag_event(self, bag_id: str, user: str, body: bytes) -> Reply:
        """The MQTT bag event's body; ``by`` is the token's user; ``ts`` defaults to now. The bag id is checked
        after decoding (``%2F`` is a ``/``), as one topic level of at most 64 characters."""
        if (problem := id_problem(bag_id)) is not None:
            raise ApiError(HTTPStatus.BAD_REQUEST, problem)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        data["by"] = user
        data.setdefault("ts", format_time(datetime.now(UTC)))
        try:
            self.parser.bag_event_body(bag_id, data)
        except RejectedMessage as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, exc.detail) from None
        try:
            self._rules().publish_bag_event(bag_id, data)
        except MqttError as exc:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"broker did not take the event: {exc}") from None
        return json_reply(HTTPStatus.ACCEPTED, {"bag": bag_id, "event": data})


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{field}: {error['msg'].removeprefix('Value error, ')}"
