"""One integration test's world: its topic prefix, database, configuration and coldchain process."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from coldchain.adapters.passwords import hash_password
from tests.publishing import Publisher
from tests.service_process import ColdchainProcess, write_config

SIGNING_PASSWORD = "signing-secret-1"
SIGNING_PHARMACIST = f"""
[[api.users]]
name = "j.doe"
full_name = "Jane Doe, PharmD"
token = "token-of-j-doe-123"
password_hash = "{hash_password(SIGNING_PASSWORD)}"
"""
"""j.doe, a pharmacist who signs with ``SIGNING_PASSWORD``, as an ``[[api.users]]`` table."""
TWO_USERS = SIGNING_PHARMACIST + '\n[[api.users]]\nname = "a.smith"\ntoken = "token-of-a-smith-456"\n'
"""Two API users (their tokens as named; j.doe, a pharmacist, signs with ``SIGNING_PASSWORD``), for a
world's ``extra`` configuration."""


def influxql(url: str, database: str, query: str) -> list[dict[str, Any]]:
    """Rows of the first series of an InfluxQL query, as dicts."""
    response = httpx.get(f"{url}/query", params={"db": database, "q": query, "epoch": "ms"}, timeout=10)
    response.raise_for_status()
    result = response.json()["results"][0]
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            row.update(series.get("tags") or {})
            rows.append(row)
    return rows


def count(url: str, database: str, measurement: str, field: str) -> int:
    try:
        rows = influxql(url, database, f'SELECT count("{field}") FROM "{measurement}"')
    except httpx.HTTPError:
        return 0
    return int(rows[0]["count"]) if rows else 0


class Scenario:
    """One test's world: a topic prefix, a database, a config and the coldchain process (`service`)."""

    def __init__(
        self,
        tmp_path: Path,
        mqtt: Any,
        influx: Any,
        env: dict[str, str] | None = None,
        role: str = "ingest",
        unit_options: dict[str, list[str]] | None = None,
        extra: str = "",
    ) -> None:
        self.mqtt = mqtt
        self.influx = influx
        self.prefix = f"cc{uuid.uuid4().hex[:8]}"
        self.database = f"db_{uuid.uuid4().hex[:8]}"
        self.config = write_config(
            tmp_path, mqtt.url, influx.url, self.database, self.prefix, extra, unit_options=unit_options
        )
        self.service = ColdchainProcess(self.config, role, env)
        self.publisher: Publisher | None = None

    def publisher_for(self) -> Publisher:
        if self.publisher is None:
            self.publisher = Publisher("127.0.0.1", self.mqtt.port)
        return self.publisher

    def topic(self, sensor: str, kind: str = "temperature") -> str:
        return f"{self.prefix}/sensors/{sensor}/{kind}"

    def count(self, measurement: str = "temperature", field: str = "celsius") -> int:
        return count(self.influx.url, self.database, measurement, field)

    def rows(self, query: str) -> list[dict[str, Any]]:
        return influxql(self.influx.url, self.database, query)

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        self.service.kill()


def token(user: str) -> str:
    """The API token a test's ``[[api.users]]`` table gives ``user`` (``token-of-<user>-0123``)."""
    return f"token-of-{user}-0123"


def call(world: Scenario, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """``method path`` on the world's API, as ``user`` with their ``token``."""
    headers = {"Authorization": f"Bearer {token(user)}"}
    return httpx.request(method, world.service.api + path, headers=headers, timeout=30, **kwargs)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
