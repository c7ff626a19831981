"""The HTTP server under ``HttpApi``: cheroot, with the limits that keep a client from holding it hostage.

cheroot reads a request's line and headers, then hands over before the body is read; the body is
read here, and only once the request has earned it:

- ``/api/`` POSTs are authenticated (``HttpApi.user_of``) before a byte of their body is read;
- a POST without ``Content-Length`` (or with ``Transfer-Encoding``), or with a negative one, gets
  400; a non-numeric one gets cheroot's own 400; a body over ``MAX_BODY`` gets 413 — and in each
  case the connection is closed with the body unread;
- a request still arriving ``api.client_timeout`` after its first byte (a client trickling its
  headers or its body) is cut off: a watcher thread shuts its socket down; cheroot drops idle
  connections after the same time;
- at most ``api.max_connections`` connections are open at once (one worker thread each); the next
  one gets 503 and is closed at once.

Every refusal is logged and counted (``coldchain_http_refused_total{reason}``). Library types stop
here: the handlers see our ``Request`` and answer with our ``Reply``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import socket
import threading
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cheroot.server import Gateway, HTTPConnection, HTTPServer

from coldchain.adapters.http.api import MAX_BODY, UNAUTHORIZED, HttpApi, Reply, Request, error_reply
from coldchain.adapters.http.auth import Refusal
from coldchain.adapters.metrics import Metrics
from coldchain.config import ApiConfig

log = logging.getLogger("coldchain.http")

_ACK_TOKEN = re.compile(r"/ack/[^\s\"?]+")
_METHODS = ("GET", "POST")


class HttpServer:
    """Serves ``api`` on ``config.listen`` from a pool of ``config.max_connections`` worker threads."""

    def __init__(self, config: ApiConfig, api: HttpApi, metrics: Metrics) -> None:
        self.config = config
        timeout = config.client_timeout.total_seconds()
        self._server = _Server(
            (config.host, config.port),
            gateway=_ApiGateway,
            minthreads=config.max_connections,
            maxthreads=config.max_connections,
            server_name="coldchain",
        )
        self._server.app = api
        self._server.metrics = metrics
        self._server.max_connections = config.max_connections
        self._server.deadlines = _Deadlines(timeout, metrics)
        # cheroot's own per-read timeout, a second later than our deadline for the whole request (which
        # then always fires first, and is counted); it also drops idle keep-alive connections
        self._server.timeout = math.ceil(timeout) + 1
        self._server.keep_alive_conn_limit = config.max_connections
        self._server.max_request_header_size = 16 * 1024
        self._server.ConnectionClass = _Connection
        self._server.prepare()  # binds now: a port in use fails the start, loudly
        self._thread = threading.Thread(target=self._server.serve, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def open_connections(self) -> int:
        """Connections admitted and not yet closed."""
        return self._server.open_connections

    def start(self) -> None:
        self._server.deadlines.start()
        self._thread.start()
        log.info("http listening", extra={"address": f"{self.config.host}:{self.port}"})

    def alive(self) -> bool:
        """Whether the server's thread is serving (the supervisor watches it)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.stop()
        self._server.deadlines.stop()


class _Server(HTTPServer):
    """cheroot's server, counting open connections and refusing those over the limit."""

    app: HttpApi
    metrics: Metrics
    max_connections: int
    deadlines: _Deadlines

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open = 0
        self._open_lock = threading.Lock()

    def process_conn(self, conn: _Connection) -> None:
        if not conn.admitted:
            with self._open_lock:
                admitted = self._open < self.max_connections
                if admitted:
                    self._open += 1
            if not admitted:
                self.metrics.http_refused.labels("too_many_connections").inc()
                _refuse_busy(conn, self.max_connections)
                return
            conn.admitted = True
        super().process_conn(conn)

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        """cheroot's own messages, into our log (JSON lines) rather than raw onto stderr."""
        log.log(level, "cheroot: %s", msg, exc_info=traceback)

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return self._open

    def connection_closed(self) -> None:
        with self._open_lock:
            self._open -= 1


class _Connection(HTTPConnection):
    """One client connection: each request on it is watched until its body has been read."""

    server: _Server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admitted = False
        self._closed = False

    def communicate(self) -> bool:
        self.server.deadlines.watch(self)
        try:
            return bool(super().communicate())
        finally:
            self.server.deadlines.release(self)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.admitted:
                self.server.connection_closed()
        super().close()


def _refuse_busy(conn: HTTPConnection, limit: int) -> None:
    body = json.dumps({"error": f"too many connections (limit {limit}); try again"}).encode() + b"\n"
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    log.warning("http connection refused: %d connections open", limit, extra={"client": conn.remote_addr})
    with contextlib.suppress(OSError):  # a client that went away needs no answer
        conn.socket.sendall(head.encode("ascii") + body)
    conn.close()


class _Deadlines:
    """Cuts off requests still being received ``seconds`` after they began (slow or stalled clients)."""

    def __init__(self, seconds: float, metrics: Metrics) -> None:
        self.seconds = seconds
        self.metrics = metrics
        self._watched: dict[_Connection, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def watch(self, conn: _Connection) -> None:
        with self._lock:
            self._watched[conn] = time.monotonic() + self.seconds

    def release(self, conn: _Connection) -> None:
        """The request is in (or over): from here on it is ours to answer, not the client's to stall."""
        with self._lock:
            self._watched.pop(conn, None)

    def _run(self) -> None:
        tick = min(0.25, self.seconds / 4)
        while not self._stopping.wait(tick):
            now = time.monotonic()
            with self._lock:
                late = [conn for conn, deadline in self._watched.items() if deadline <= now]
                for conn in late:
                    del self._watched[conn]
            for conn in late:
                log.warning(
                    "http client dropped: request not received within %gs",
                    self.seconds,
                    extra={"client": conn.remote_addr},
                )
                self.metrics.http_refused.labels("client_timeout").inc()
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.socket.shutdown(socket.SHUT_RDWR)  # wakes the worker blocked reading it


class _ApiGateway(Gateway):
    """Turns cheroot's request into our ``Request``, reading the body only once it may be read."""

    def respond(self) -> None:
        req = self.req
        server: _Server = req.server
        method = req.method.decode("ascii", "replace")
        target = req.uri.decode("latin-1")
        parts = urlsplit(target)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in req.inheaders.items()}
        client = str(req.conn.remote_addr or "")
        request = Request(method, parts.path, parse_qs(parts.query), headers, b"", client)
        refusal = self._refusal(request, server)
        if refusal is not None:
            reason, reply = refusal
            server.metrics.http_refused.labels(reason).inc()
            log.info("http request refused (%s): %s %s", reason, method, _ACK_TOKEN.sub("/ack/<token>", parts.path))
            self._write(reply, close=True)
            return
        length = int(headers.get("content-length") or 0)
        try:
            body = req.rfile.read(length) if length else b""
        except TimeoutError:
            body = b""
        server.deadlines.release(req.conn)
        if len(body) < length:  # the client went away, or was cut off as too slow: nobody to answer
            req.close_connection = True
            return
        reply = server.app.route(Request(method, parts.path, request.query, headers, body, client))
        log.debug("http %s %s %d", method, _ACK_TOKEN.sub("/ack/<token>", parts.path), reply.status)
        self._write(reply, close=False)

    @staticmethod
    def _refusal(request: Request, server: _Server) -> tuple[str, Reply] | None:
        """Why this request is answered without reading its body (and its connection closed), if it is."""
        if request.method not in _METHODS:
            return "method", error_reply(HTTPStatus.NOT_IMPLEMENTED, f"method {request.method} not supported")
        headers = request.headers
        if "transfer-encoding" in headers:
            return "length_required", error_reply(HTTPStatus.BAD_REQUEST, "send the body with a Content-Length")
        raw = headers.get("content-length")
        if raw is None:
            if request.method == "POST":
                return "length_required", error_reply(HTTPStatus.BAD_REQUEST, "Content-Length is required")
            return None
        if not raw.strip().isdigit():  # cheroot refuses non-numbers itself; this catches "-1"
            return "bad_length", error_reply(HTTPStatus.BAD_REQUEST, "Content-Length must be a non-negative integer")
        if request.method == "POST" and request.path.startswith("/api/"):
            try:
                caller = server.app.user_of(request)
            except Refusal as exc:  # throttled after failed token checks: 429, before the body too
                refused = error_reply(exc.status, exc.message)
                return exc.reason, Reply(refused.status, refused.body, refused.content_type, exc.headers)
            if caller is None:
                return "unauthorized", UNAUTHORIZED
        if int(raw) > MAX_BODY:
            return "too_large", error_reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        return None

    def _write(self, reply: Reply, *, close: bool) -> None:
        req = self.req
        if close:
            req.close_connection = True  # and cheroot leaves the unread body unread
        req.status = f"{reply.status.value} {reply.status.phrase}".encode("ascii")
        req.outheaders.extend(
            [
                (b"Content-Type", reply.content_type.encode("latin-1")),
                (b"Content-Length", str(len(reply.body)).encode("ascii")),
                (b"Cache-Control", b"no-store"),
                *((key.encode("latin-1"), value.encode("latin-1")) for key, value in reply.headers),
            ]
        )
        req.ensure_headers_sent()
        req.write(reply.body)

