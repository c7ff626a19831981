"""The InfluxDB adapter of the storage port, over the v1 HTTP API only (``/write``, ``/query``).

The v1 API is served by InfluxDB 1.x and, for compatibility, by 2.x and 3.x, so one adapter covers
all three; auth is ``none``, ``basic`` (1.x users) or ``token`` (2.x/3.x). Errors map onto the
port's exceptions:

- connection errors, timeouts, 5xx and 429 raise ``StoreUnavailable`` (with ``Retry-After``);
- 401, 403 and 404 (database not found) raise ``StoreMisconfigured``;
- any other 4xx refuses points for good. InfluxDB 1.x answers ``400 partial write`` after storing
  the valid points, so a refused batch is never retried whole: it is split in halves, each half
  written again (idempotent: same series and time overwrite with the same values) until the
  single records the server still refuses are known. They come back in ``WriteResult.refused``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from coldchain.adapters.store.lineprotocol import encode_batch, stored_tag_value
from coldchain.adapters.store.port import Refused, StoreError, StoreMisconfigured, StoreUnavailable, WriteResult
from coldchain.config import InfluxConfig
from coldchain.core.records import Record
from coldchain.core.times import from_millis, to_millis

_DROPPED = re.compile(r"dropped=(\d+)\s*$")
_READ_ONLY = re.compile(r"\s*(SELECT|SHOW)\b", re.IGNORECASE)
_INTO = re.compile(r"\bINTO\b", re.IGNORECASE)


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes, safe for any text (ValueError for U+0000)."""
    return '"' + _escape_quoted(name).replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes, safe for any text (ValueError for U+0000)."""
    return "'" + _escape_quoted(value).replace("'", "\\'") + "'"


def _escape_quoted(text: str) -> str:
    if "\0" in text:  # the InfluxQL scanner reads U+0000 as the end of input; it has no escape for it
        raise ValueError(f"InfluxQL cannot express U+0000 (in {text!r})")
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _server_message(response: httpx.Response) -> str:
    """The error text of an InfluxDB answer: 1.x ``error``, 2.x ``message``, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(message := body.get(key), str):
                return message
    text = response.text.strip()[:500]
    return text or response.headers.get("X-Influxdb-Error", "") or response.reason_phrase


class InfluxStore:
    """``Store`` over the InfluxDB v1 HTTP API with a synchronous ``httpx.Client``."""

    chunk_size = 10_000
    """Rows per chunk of a streamed ``read_range``."""

    def __init__(self, config: InfluxConfig, client: httpx.Client | None = None) -> None:
        self._config = config
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._timeout = httpx.Timeout(config.timeout.total_seconds())
        self._headers: dict[str, str] = {}
        self._auth: httpx.Auth | None = None
        if config.auth == "basic":
            self._auth = httpx.BasicAuth(config.username, config.password.get_secret_value())
        elif config.auth == "token":
            self._headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        self._db_params = {"db": config.database}
        if config.retention_policy:
            self._db_params["rp"] = config.retention_policy

    # -- plumbing -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One HTTP exchange; transport failures, 5xx, 429, 401, 403 and 404 raised as ours."""
        try:
            response = self._client.request(
                method,
                self._config.url + path,
                params=params,
                content=content,
                headers={**self._headers, **(headers or {})},
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            )
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"InfluxDB at {self._config.url} unreachable: {exc!r}") from exc
        self._raise_for_status(response, path)
        return response

    def _raise_for_status(self, response: httpx.Response, path: str) -> None:
        """Raise for every status but 2xx and the 4xx that refuse data (left to the caller)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            raise StoreMisconfigured(f"InfluxDB {path} {status}: {_server_message(response)} (check influx.auth)")
        if status == 404:
            raise StoreMisconfigured(f"InfluxDB {path} 404: {_server_message(response)}")
        if status == 429 or status >= 500:
            raise StoreUnavailable(
                f"InfluxDB {path} {status}: {_server_message(response)}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if not 400 <= status < 500:
            raise StoreMisconfigured(f"InfluxDB {path} answered {status}: is influx.url right?")

    # -- Store ----------------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise StoreUnavailable unless InfluxDB answers ``/ping``."""
        self._ping()

    def _ping(self) -> httpx.Response:
        response = self._request("GET", "/ping")
        if not response.is_success:
            raise StoreUnavailable(f"InfluxDB /ping {response.status_code}: {_server_message(response)}")
        return response

    def prepare(self) -> None:
        """Check the server answers and, on 1.x with ``create_database``, create the database."""
        version = self._ping().headers.get("X-Influxdb-Version", "")
        if self._config.create_database and (version.startswith("1.") or not version):
            self.query(f"CREATE DATABASE {quote_ident(self._config.database)}")

    def write(self, records: Sequence[Record]) -> WriteResult:
        """Store ``records``; refused ones come back with the server's reason. Raises StoreUnavailable."""
        if not records:
            return WriteResult(stored=0)
        refusal = self._post(encode_batch(records))
        if refusal is None:
            return WriteResult(stored=len(records))
        dropped = _DROPPED.search(refusal)
        if len(records) == 1 or (dropped is not None and int(dropped.group(1)) == len(records)):
            # Every point refused (e.g. a whole replayed batch older than the retention policy).
            return WriteResult(stored=0, refused=[Refused(record, refusal) for record in records])
        half = len(records) // 2
        first, second = self.write(records[:half]), self.write(records[half:])
        return WriteResult(stored=first.stored + second.stored, refused=first.refused + second.refused)

    def _post(self, body: bytes) -> str | None:
        """POST line protocol to ``/write``: None when all was stored, else the server's refusal."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._config.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self._request(
            "POST", "/write", params={**self._db_params, "precision": "ms"}, content=body, headers=headers
        )
        return None if response.is_success else _server_message(response)

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL (GET for SELECT/SHOW, POST otherwise): every series of every statement.

        Each series is ``{"name", "tags", "columns", "values"}`` with times in epoch ms. An error
        reported in the answer raises StoreError with the server's message.
        """
        method = "GET" if _READ_ONLY.match(q) and ";" not in q and not _INTO.search(q) else "POST"
        response = self._request(method, "/query", params={**self._db_params, "q": q, "epoch": "ms"})
        if not response.is_success:
            raise StoreError(f"InfluxDB refused query: {_server_message(response)}")
        series: list[dict[str, Any]] = []
        for result in _results(response.json()):
            series.extend(_series_of(result))
        return series

    def read_range(
        self, measurement: str, start: datetime, end: datetime, tags: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Rows with start <= time < end, oldest first, streamed in chunks so memory stays flat."""
        where = f"time >= {to_millis(start)}ms AND time < {to_millis(end)}ms"
        for key, value in (tags or {}).items():
            where += f" AND {quote_ident(key)} = {quote_string(stored_tag_value(value))}"
        q = f"SELECT * FROM {self._source(measurement)} WHERE {where} ORDER BY time ASC"
        floats = self._float_fields(measurement)
        params = {**self._db_params, "q": q, "epoch": "ms", "chunked": "true", "chunk_size": str(self.chunk_size)}
        try:
            with self._client.stream(
                "GET",
                self._config.url + "/query",
                params=params,
                headers=self._headers,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
            ) as response:
                if not response.is_success:
                    response.read()
                    self._raise_for_status(response, "/query")
                    raise StoreError(f"InfluxDB refused query: {_server_message(response)}")
                for body in _json_lines(response.iter_bytes()):
                    for result in _results(body):
                        for series in _series_of(result):
                            yield from _rows(series, floats)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"InfluxDB at {self._config.url} unreachable: {exc!r}") from exc

    def latest(self, measurement: str, by: str) -> dict[str, dict[str, Any]]:
        """The newest row of ``measurement`` for each value of tag ``by``, with that tag in the row."""
        floats = self._float_fields(measurement)
        q = f"SELECT * FROM {self._source(measurement)} GROUP BY {quote_ident(by)} ORDER BY time DESC LIMIT 1"
        newest: dict[str, dict[str, Any]] = {}
        for series in self.query(q):
            value = series["tags"].get(by, "")
            if value:  # points without the tag form a group of their own, under ""
                for row in _rows(series, floats):
                    newest[value] = {**row, by: value}
        return newest

    def close(self) -> None:
        """Close the HTTP client if this store created it."""
        if self._owns_client:
            self._client.close()

    # -- helpers --------------------------------------------------------------------------------

    def _source(self, measurement: str) -> str:
        if self._config.retention_policy:
            return f"{quote_ident(self._config.retention_policy)}.{quote_ident(measurement)}"
        return quote_ident(measurement)

    def _float_fields(self, measurement: str) -> frozenset[str]:
        """Float fields of ``measurement``: InfluxDB's JSON writes 4.0 as 4, read back as float."""
        fields = self.query(f"SHOW FIELD KEYS FROM {self._source(measurement)}")
        return frozenset(name for series in fields for name, kind in series["values"] if kind == "float")


def _json_lines(chunks: Iterator[bytes]) -> Iterator[Any]:
    """JSON documents of a chunked ``/query`` answer, one per line, parsed as they arrive.

    Split on b"\\n" only: text splitters also break at U+0085 or U+2028, which JSON may hold raw.
    """
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            if pending[start:end].strip():
                yield json.loads(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending.strip():
        yield json.loads(pending)


def _results(body: Any) -> list[dict[str, Any]]:
    """The statement results of a ``/query`` answer; raise StoreError on an error inside it."""
    if not isinstance(body, dict):
        raise StoreError(f"InfluxDB answered a query with {type(body).__name__}, not an object")
    errors = [body["error"]] if "error" in body else []
    results = body.get("results") or []
    errors += [result["error"] for result in results if "error" in result]
    if errors:
        message = f"InfluxDB query failed: {errors[0]}"
        if str(errors[0]).startswith("database not found"):
            raise StoreMisconfigured(message)
        raise StoreError(message)
    return results


def _series_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": series.get("name", ""),
            "tags": series.get("tags") or {},
            "columns": series.get("columns", []),
            "values": series.get("values") or [],
        }
        for series in result.get("series") or []
    ]


def _rows(series: dict[str, Any], floats: frozenset[str]) -> Iterator[dict[str, Any]]:
    """Rows of a series as dicts: ``time`` an aware UTC datetime, None values left out."""
    columns = series["columns"]
    for values in series["values"]:
        row: dict[str, Any] = {}
        for column, value in zip(columns, values, strict=False):
            if value is None:
                continue
            if column == "time":
                value = from_millis(value)
            elif column in floats and isinstance(value, int):
                value = float(value)
            row[column] = value
        yield row
