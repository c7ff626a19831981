"""InfluxStore's answers to what a real influxd will not do on demand: 429, 5xx, Retry-After, hangs.

A tiny real HTTP server (stdlib, 127.0.0.1, port 0, its own thread) plays InfluxDB; each test
decides its answers and reads back the requests it received.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from coldchain.adapters.store.influx import InfluxStore, retry_after_seconds
from coldchain.adapters.store.port import StoreMisconfigured, StoreUnavailable, WriteResult
from coldchain.config import InfluxConfig
from coldchain.core.records import TemperatureReading

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def lines(self) -> list[str]:
        raw = gzip.decompress(self.body) if self.headers.get("content-encoding") == "gzip" else self.body
        return raw.decode().split("\n")


Reply = tuple[int, dict[str, str], bytes]


class FakeInflux(ThreadingHTTPServer):
    """Answers every request with ``reply(request)``; keeps the requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[Request] = []
        self.reply: Callable[[Request], Reply] = lambda request: (204, {}, b"")
        self.release = threading.Event()  # set at teardown, so a deliberately hung answer returns

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeInflux

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query),
            {key.lower(): value for key, value in self.headers.items()},
            self.rfile.read(length),
        )
        self.server.requests.append(request)
        status, headers, body = self.server.reply(request)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeInflux]:
    server = FakeInflux()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def store_for(fake: FakeInflux, **settings: object) -> InfluxStore:
    return InfluxStore(InfluxConfig(url=fake.url, database="cc", **settings))  # type: ignore[arg-type]


def readings(count: int) -> list[TemperatureReading]:
    return [TemperatureReading(f"t-{i}", "fridge-a", "main", T0 + timedelta(seconds=i), 4.5) for i in range(count)]


def test_429_is_unavailable_with_retry_after_seconds(fake: FakeInflux) -> None:
    """429 with ``Retry-After: 7`` raises StoreUnavailable asking to wait 7 s, with the server's message."""
    fake.reply = lambda request: (429, {"Retry-After": "7"}, b'{"error":"too many requests"}')
    with pytest.raises(StoreUnavailable, match="429: too many requests") as caught:
        store_for(fake).write(readings(3))
    assert caught.value.retry_after == 7.0


def test_503_with_an_http_date_is_unavailable_until_that_date(fake: FakeInflux) -> None:
    """503 with ``Retry-After: <HTTP-date>`` raises StoreUnavailable asking to wait until that date."""
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    fake.reply = lambda request: (503, {"Retry-After": later}, b"overloaded")
    with pytest.raises(StoreUnavailable, match="503: overloaded") as caught:
        store_for(fake).write(readings(3))
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


def test_500_without_retry_after_is_unavailable(fake: FakeInflux) -> None:
    """A 5xx without Retry-After is transient too, with no advice on when to retry."""
    fake.reply = lambda request: (500, {}, b'{"error":"timeout"}')
    with pytest.raises(StoreUnavailable) as caught:
        store_for(fake).write(readings(1))
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),  # delay-seconds
        (" 120 ", 120.0),  # surrounding whitespace is tolerated
        ("0", 0.0),  # retry now
        ("Mon, 30 Nov 2026 02:01:30 GMT", 90.0),  # HTTP-date 90 s after NOW
        ("Mon, 30 Nov 2026 01:00:00 GMT", 0.0),  # a date in the past means now, never negative
        ("-5", None),  # not a delay-seconds value (digits only)
        ("1.5", None),  # idem: no fractions in HTTP
        ("soon", None),  # garbage is ignored, not guessed
        (None, None),  # no header
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    """Retry-After is read as seconds or an HTTP-date relative to now; anything else is ignored."""
    assert retry_after_seconds(header, now=datetime(2026, 11, 30, 2, 0, tzinfo=UTC)) == seconds


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_missing_database_are_misconfigured(fake: FakeInflux, status: int) -> None:
    """401, 403 and 404 raise StoreMisconfigured: retrying cannot help until an operator acts."""
    fake.reply = lambda request: (status, {}, b'{"error":"nope"}')
    with pytest.raises(StoreMisconfigured, match=f"{status}: nope"):
        store_for(fake).write(readings(1))


def test_a_hung_server_times_out_as_unavailable(fake: FakeInflux) -> None:
    """A server that never answers raises StoreUnavailable after the configured timeout."""

    def hang(request: Request) -> Reply:
        fake.release.wait(30)
        return 204, {}, b""

    fake.reply = hang
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store_for(fake, timeout="300ms").write(readings(1))
    assert time.monotonic() - started < 5


def test_write_sends_db_precision_rp_and_a_gzip_body(fake: FakeInflux) -> None:
    """A write is a POST to /write with db, rp and precision=ms, gzip-compressed when configured."""
    assert store_for(fake, retention_policy="a year").write(readings(2)) == WriteResult(stored=2)
    assert store_for(fake, gzip=False).write(readings(1)) == WriteResult(stored=1)
    zipped, plain = fake.requests
    assert (zipped.method, zipped.path) == ("POST", "/write")
    assert zipped.params == {"db": ["cc"], "rp": ["a year"], "precision": ["ms"]}
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.lines == [
        "temperature,sensor=t-0,site=main,unit=fridge-a celsius=4.5 1796004000000",
        "temperature,sensor=t-1,site=main,unit=fridge-a celsius=4.5 1796004001000",
    ]
    assert plain.params == {"db": ["cc"], "precision": ["ms"]}
    assert "content-encoding" not in plain.headers
    assert plain.body == b"temperature,sensor=t-0,site=main,unit=fridge-a celsius=4.5 1796004000000"


@pytest.mark.parametrize(
    ("settings", "authorization"),
    [
        ({"auth": "token", "token": "s3cret"}, "Token s3cret"),  # 2.x/3.x v1 compatibility
        ({"auth": "basic", "username": "cc", "password": "pw"}, "Basic Y2M6cHc="),  # base64("cc:pw")
    ],
)
def test_credentials_are_sent(fake: FakeInflux, settings: dict[str, str], authorization: str) -> None:
    """Token and basic auth put the configured credentials in the Authorization header of every request."""
    store = store_for(fake, **settings)
    store.write(readings(1))
    store.ping()
    assert [request.headers["authorization"] for request in fake.requests] == [authorization, authorization]


def test_a_refused_batch_is_bisected_never_resent_whole(fake: FakeInflux) -> None:
    """Only the records the server refuses come back refused; the whole batch is never sent twice."""

    def refuse_bad(request: Request) -> Reply:
        bad = [line for line in request.lines if "sensor=t-3," in line or "sensor=t-6," in line]
        if bad:
            return 400, {}, b'{"error":"partial write: bad point dropped=%d"}' % len(bad)
        return 204, {}, b""

    fake.reply = refuse_bad
    records = readings(8)
    result = store_for(fake).write(records)
    assert result.stored == 6
    assert [(refused.record, refused.reason) for refused in result.refused] == [
        (records[3], "partial write: bad point dropped=1"),
        (records[6], "partial write: bad point dropped=1"),
    ]
    assert [len(request.lines) for request in fake.requests].count(8) == 1


def test_a_batch_too_large_for_the_server_is_split_until_it_fits(fake: FakeInflux) -> None:
    """A 413 is a property of the batch, not of its records: halves are sent until each fits."""
    fake.reply = lambda request: (413, {}, b'{"error":"too large"}') if len(request.lines) > 3 else (204, {}, b"")
    assert store_for(fake).write(readings(10)) == WriteResult(stored=10)
    delivered = [line for request in fake.requests if len(request.lines) <= 3 for line in request.lines]
    assert sorted(delivered) == sorted(fake.requests[0].lines)
