"""The HTTP server cannot be held hostage: real sockets against the real server, as an attacker would try."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coldchain.adapters.http.api import MAX_BODY, HttpApi
from coldchain.adapters.http.server import HttpServer
from coldchain.adapters.metrics import Metrics
from coldchain.adapters.store.factory import open_store
from coldchain.config import ConfigError, load_settings
from tests.config_files import load_config
from tests.samples import ONE_FRIDGE

TOKEN = "s3cret-token-for-tests"
TIMEOUT = 1.0  # api.client_timeout of these tests


def _settings(tmp_path: Path, max_connections: int = 4):
    return load_config(
        tmp_path,
        f"""
[store]
url = "sqlite:///{tmp_path / "store.db"}"
[api]
listen = "127.0.0.1:0"
client_timeout = "{TIMEOUT:g}s"
max_connections = {max_connections}
[[api.users]]
name = "j.doe"
token = "{TOKEN}"
{ONE_FRIDGE}""",
    )


class Served:
    """A started HttpServer (no rules role: POST /api/... answers 503 once its body was read and judged)."""

    def __init__(self, tmp_path: Path, max_connections: int = 4) -> None:
        settings = _settings(tmp_path, max_connections)
        self.metrics = Metrics()
        self.store = open_store(settings)
        self.api = HttpApi(settings, self.metrics, lambda: [], self.store)
        self.server = HttpServer(settings.api, self.api, self.metrics)
        self.server.start()
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock

    def refused(self, reason: str) -> float:
        return self.metrics.http_refused.labels(reason)._value.get()

    def close(self) -> None:
        self.server.stop()
        self.store.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    yield server
    server.close()


def _answer(sock: socket.socket, deadline: float = 10.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (or ``deadline``): (bytes, closed by the server)."""
    sock.settimeout(0.2)
    received = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def _wait(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def _post_head(path: str, extra: str, token: str = TOKEN) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}\r\n".encode()


ACK = "/api/alerts/a-1/ack"


@pytest.mark.parametrize(
    ("length_header", "status"),
    [
        ("Content-Length: -1\r\n", 400),  # negative: rfile.read(-1) used to read until the client hung up
        ("Content-Length: abc\r\n", 400),  # not a number
        ("", 400),  # missing on a POST
        ("Transfer-Encoding: chunked\r\n", 400),  # no length up front: refused like a missing one
        (f"Content-Length: {MAX_BODY + 1}\r\n", 413),  # over the limit
        ("Content-Length: 1000000\r\n", 413),  # 1 MB
    ],
)
def test_a_bad_or_oversized_length_is_refused_at_once_and_the_connection_closed(served, length_header, status):
    """Bad Content-Length gets 400, too large 413, right after the headers, body unread, connection closed."""
    sock = served.connect()
    started = time.monotonic()
    sock.sendall(_post_head(ACK, length_header))  # and never a byte of body
    answer, closed = _answer(sock)
    sock.close()
    assert _status(answer) == status, answer
    assert closed
    assert time.monotonic() - started < TIMEOUT, "answered at once, not after the client timeout"


def test_a_1mb_body_gets_413_without_being_read(served):
    """A 1 MB body is answered 413 and the connection closed while the client is still sending."""
    sock = served.connect()
    sock.sendall(_post_head(ACK, "Content-Length: 1000000\r\nContent-Type: application/json\r\n"))
    sent = 0
    with pytest.raises(OSError):  # the server hangs up long before a megabyte went through
        sock.settimeout(5)
        while sent < 50_000_000:
            sock.sendall(b"x" * 65536)
            sent += 65536
    sock.close()
    assert sent < 1_000_000 * 20
    assert served.refused("too_large") == 1


def test_an_unauthenticated_post_is_refused_before_its_body_is_read(served):
    """A POST to /api/ with a wrong token gets 401 right after its headers, though its body never comes."""
    sock = served.connect()
    sock.sendall(_post_head(ACK, "Content-Length: 100\r\n", token="wrong-token-xyz"))
    answer, closed = _answer(sock, deadline=TIMEOUT / 2)
    sock.close()
    assert _status(answer) == 401 and closed
    assert served.refused("unauthorized") == 1


def test_a_client_that_never_sends_its_body_is_dropped_after_the_client_timeout(served):
    """Headers promising a body that never comes: the connection is closed after api.client_timeout."""
    sock = served.connect()
    started = time.monotonic()
    sock.sendall(_post_head(ACK, "Content-Length: 20\r\n") + b'{"note"')
    _answer_bytes, closed = _answer(sock, deadline=TIMEOUT * 5)
    elapsed = time.monotonic() - started
    sock.close()
    assert closed and TIMEOUT * 0.8 <= elapsed < TIMEOUT * 3, elapsed
    assert served.refused("client_timeout") == 1


@pytest.mark.parametrize("trickled", ["headers", "body"])
def test_a_client_trickling_its_request_is_dropped_after_the_client_timeout(served, trickled):
    """One byte every 0.2 s keeps every read alive but not the request: it is cut off at api.client_timeout."""
    sock = served.connect()
    body = b'{"note": "' + b"n" * 200 + b'"}'
    request = _post_head(ACK, f"Content-Length: {len(body)}\r\n") + body
    split = 10 if trickled == "headers" else len(request) - len(body)
    sock.sendall(request[:split])
    started = time.monotonic()
    closed_at = None
    for byte in request[split:]:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.2)  # the trickle itself: this client is slow on purpose
        if time.monotonic() - started > TIMEOUT * 5:
            break
    answer, closed = _answer(sock, deadline=TIMEOUT * 3)
    closed_at = closed_at or time.monotonic()
    sock.close()
    assert closed and _status(answer) != 200
    assert closed_at - started < TIMEOUT * 4
    assert served.refused("client_timeout") == 1


def test_an_idle_client_is_dropped_and_others_are_served_meanwhile(served):
    """A connection that sends nothing is closed after api.client_timeout; a normal client is served meanwhile."""
    idle = served.connect()
    started = time.monotonic()
    assert httpx.get(served.url + "/healthz", timeout=5).status_code == 200
    _answer_bytes, closed = _answer(idle, deadline=TIMEOUT * 5)
    idle.close()
    assert closed and time.monotonic() - started < TIMEOUT * 3


def test_a_good_request_is_still_served_with_its_body(served):
    """A well-formed authenticated POST has its body read and judged (400 names the bad field)."""
    response = httpx.post(
        served.url + ACK, content=b'{"disposition": "eaten"}', headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 400 and "disposition" in response.json()["error"]
    response = httpx.post(served.url + ACK, json={"note": "checked"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503  # the body was fine; no rules role in this process


def test_keep_alive_serves_several_requests_on_one_connection(served):
    """Well-behaved clients keep their connection: several requests, one socket."""
    with httpx.Client(base_url=served.url, timeout=5) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
    assert served.refused("client_timeout") == 0


def test_connections_over_max_connections_get_503_and_close(tmp_path):
    """With max_connections open, the next connection is answered 503 and closed; freed slots serve again."""
    served = Served(tmp_path, max_connections=3)
    try:
        hogs = [served.connect() for _ in range(3)]
        for hog in hogs:  # each hog has begun a request, so each holds its slot
            hog.sendall(b"GET /healthz HTTP/1.1\r\n")
        _wait(lambda: served.server.open_connections == 3, "the server admitted the three hogs")
        extra = served.connect()
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer, closed = _answer(extra, deadline=TIMEOUT / 2)
        extra.close()
        assert _status(answer) == 503 and closed
        assert served.refused("too_many_connections") == 1
        for hog in hogs:
            hog.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                if httpx.get(served.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "slots never freed after the hogs left"
            time.sleep(0.05)
    finally:
        served.close()


def test_many_concurrent_well_behaved_clients_are_all_answered(tmp_path):
    """Within max_connections, concurrent clients are all served."""
    served = Served(tmp_path, max_connections=8)
    codes: list[int] = []
    lock = threading.Lock()

    def get() -> None:
        code = httpx.get(served.url + "/healthz", timeout=5).status_code
        with lock:
            codes.append(code)

    try:
        threads = [threading.Thread(target=get) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert codes == [200] * 8
    finally:
        served.close()


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        ('client_timeout = "1s"', True),  # the shortest allowed
        ('client_timeout = "10m"', True),  # the longest allowed
        ('client_timeout = "500ms"', False),  # shorter than any real client's round trip
        ('client_timeout = "11m"', False),  # a slow client could hold a slot for too long
        ("max_connections = 1", True),
        ("max_connections = 0", False),  # nobody could ever be served
        ("max_connections = 1001", False),  # one thread each: more would be a resource problem itself
    ],
)
def test_http_limits_are_bounded_in_the_configuration(tmp_path: Path, line: str, accepted: bool) -> None:
    """api.client_timeout and api.max_connections refuse values that would make the limits meaningless."""
    path = tmp_path / "coldchain.toml"
    path.write_text(f"[api]\n{line}\n")
    if accepted:
        load_settings(path)
    else:
        with pytest.raises(ConfigError, match=line.split(" ")[0]):
            load_settings(path)
