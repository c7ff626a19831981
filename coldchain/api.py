"""HTTP edge: liveness, readiness and Prometheus metrics (the operator API joins in a later issue).

Standard-library ``ThreadingHTTPServer``: the service answers a handful of requests per minute and
needs no framework for it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from coldchain.metrics import Metrics

log = logging.getLogger("coldchain.api")

ReadinessCheck = Callable[[], list[str]]
"""Returns the reasons the service is not ready; empty when ready."""


class HttpApi:
    """Serves /healthz, /readyz and /metrics on ``host:port`` in a background thread."""

    def __init__(self, host: str, port: int, metrics: Metrics, readiness: ReadinessCheck) -> None:
        self.metrics = metrics
        self.readiness = readiness
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "coldchain"

            def do_GET(self) -> None:
                api.handle_get(self)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http %s", format % args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("http listening", extra={"address": f"{self._server.server_address[0]}:{self.port}"})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle_get(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            _send(request, HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            problems = self.readiness()
            status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
            body = json.dumps({"ready": not problems, "problems": problems}).encode() + b"\n"
            _send(request, status, body, "application/json")
        elif path == "/metrics":
            _send(request, HTTPStatus.OK, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            _send(request, HTTPStatus.NOT_FOUND, b'{"error": "not found"}\n', "application/json")


def _send(request: BaseHTTPRequestHandler, status: HTTPStatus, body: bytes, content_type: str) -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)
