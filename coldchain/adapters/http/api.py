"""HTTP edge: health, readiness, metrics and the operator API (CONTRACT §5).

Standard-library ``ThreadingHTTPServer``: the service answers a handful of requests a minute and
needs no framework. Every ``/api/`` call needs ``Authorization: Bearer <token>``; the token names
the user, compared in constant time, and the user recorded on an action is always the token's.
Handlers convert requests into calls on the rules worker (which owns the alerts) and never touch
the engine themselves.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coldchain.adapters.http.ports import RulesPort
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.mqtt import MqttError
from coldchain.adapters.store.port import Store, StoreError
from coldchain.config import Settings
from coldchain.contract.parser import MessageParser, RejectedMessage
from coldchain.core.times import format_time

log = logging.getLogger("coldchain.api")

ReadinessCheck = Callable[[], list[str]]
"""Returns the reasons the service is not ready; empty when ready."""

MAX_BODY = 64 * 1024
_ACK = re.compile(r"^/api/alerts/([^/]+)/ack$")
_BAG = re.compile(r"^/api/bags/([^/+#]+)/events$")
_ACK_TOKEN = re.compile(r"/ack/[^\s\"?]+")


class AckBody(BaseModel):
    """``POST /api/alerts/<id>/ack``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    note: str | None = Field(default=None, max_length=2000)
    disposition: Literal["quarantined", "released", "discarded"] | None = None


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


class HttpApi:
    """Serves the endpoints on ``api.listen`` in a background thread."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        readiness: ReadinessCheck,
        store: Store,
        rules: RulesPort | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.readiness = readiness
        self.store = store
        self.rules = rules
        self.parser = MessageParser(settings)
        self._tokens = [(user.token.get_secret_value().encode(), user.name) for user in settings.api.users]
        self.liveness: Callable[[], list[str]] = list
        """Roles that cannot recover (the supervisor's ``dead``): /healthz answers 503 while there are any."""
        self.extra_routes: list[Callable[[Request], Reply | None]] = []
        """Handlers tried before the built-in routes (the acknowledge page registers here)."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "coldchain"
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api.serve(self, "GET")

            def do_POST(self) -> None:
                api.serve(self, "POST")

            def log_message(self, format: str, *args: object) -> None:
                # acknowledge links carry a credential in their path: never log it
                log.debug("http %s", _ACK_TOKEN.sub("/ack/<token>", format % args))

        self._server = ThreadingHTTPServer((settings.api.host, settings.api.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http listening", extra={"address": f"{self.settings.api.host}:{self.port}"})

    def alive(self) -> bool:
        """Whether the server's thread is serving."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- plumbing --------------------------------------------------------------------------

    def serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            reply = error_reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        else:
            parts = urlsplit(handler.path)
            request = Request(
                method,
                parts.path,
                parse_qs(parts.query),
                {key.lower(): value for key, value in handler.headers.items()},
                handler.rfile.read(length) if length else b"",
            )
            reply = self.route(request)
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.send_header("Cache-Control", "no-store")
        for key, value in reply.headers:
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(reply.body)

    def route(self, request: Request) -> Reply:
        try:
            for extra in self.extra_routes:
                reply = extra(request)
                if reply is not None:
                    return reply
            return self._route(request)
        except ApiError as exc:
            return error_reply(exc.status, exc.message)
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
            return Reply(
                HTTPStatus.UNAUTHORIZED,
                b'{"error": "missing or wrong bearer token"}\n',
                headers=(("WWW-Authenticate", 'Bearer realm="coldchain"'),),
            )
        if method == "GET" and path == "/api/units":
            return json_reply(HTTPStatus.OK, self.units())
        if method == "GET" and path == "/api/alerts":
            return json_reply(HTTPStatus.OK, self.alerts(request.query.get("state", [None])[0]))
        if method == "POST" and (match := _ACK.match(path)):
            return self.acknowledge(unquote(match.group(1)), user, request.body)
        if method == "POST" and (match := _BAG.match(path)):
            return self.bag_event(unquote(match.group(1)), user, request.body)
        return error_reply(HTTPStatus.NOT_FOUND, "not found")

    def user_of(self, request: Request) -> str | None:
        """The user whose token the request carries, compared in constant time against every token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        given = token.strip().encode()
        found: str | None = None
        for secret, name in self._tokens:
            if hmac.compare_digest(given, secret) and found is None:
                found = name
        return found

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

    def acknowledge(self, alert_id: str, user: str, body: bytes) -> Reply:
        """Acknowledge as the token's user; publishes and stores the updated alert."""
        try:
            ack = AckBody.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, _first_error(exc)) from None
        alert = self._rules().acknowledge(alert_id, user, ack.note, ack.disposition)
        if alert is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no alert {alert_id!r} is open or recently resolved")
        log.info(
            "alert acknowledged",
            extra={"alert_id": alert_id, "by": user, "disposition": ack.disposition, "note": ack.note},
        )
        return json_reply(HTTPStatus.OK, alert.to_payload())

    def bag_event(self, bag_id: str, user: str, body: bytes) -> Reply:
        """The MQTT bag event's body; ``by`` is the token's user; ``ts`` defaults to now."""
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
