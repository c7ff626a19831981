"""Rollups end to end: ``coldchain ingest`` as a real process, real mosquitto and influxd."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.publishing import wait_for
from tests.world import Scenario, gauge, iso

pytestmark = pytest.mark.integration

FAST = {"COLDCHAIN_ROLLUPS__SETTLE": "0s", "COLDCHAIN_ROLLUPS__RECOMPUTE_EVERY": "200ms"}


def interval_ago(minutes: int) -> datetime:
    """The start of the 5-minute interval ``minutes`` ago (closed by the clock at once, with settle 0s)."""
    now = datetime.now(UTC) - timedelta(minutes=minutes)
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)


def rollup(world: Scenario, start: datetime, sensor: str = "t-001") -> dict[str, Any] | None:
    ms = int(start.timestamp() * 1000)
    rows = world.rows(f"SELECT * FROM rollup_5m WHERE sensor = '{sensor}' AND time = {ms}ms")
    return rows[0] if rows else None


@contextmanager
def running(tmp_path: Path, mosquitto: Any, influx: Any) -> Iterator[Scenario]:
    """A started ``coldchain ingest`` with fast rollups; stopped (and its publisher closed) afterwards."""
    world = Scenario(tmp_path, mosquitto, influx, env=FAST)
    try:
        world.service.start()
        yield world
    finally:
        world.close()


def reading(world: Scenario, at: datetime, celsius: float) -> None:
    """Publishes t-001's reading taken at ``at`` and waits for the broker's acknowledgement."""
    world.publisher_for().send(world.topic("t-001"), {"ts": iso(at), "celsius": celsius})


def raw_extremes(world: Scenario, start: datetime, sensor: str = "t-001") -> tuple[float, float, int]:
    ms = int(start.timestamp() * 1000)
    rows = world.rows(
        f"SELECT min(celsius), max(celsius), count(celsius) FROM temperature WHERE sensor = '{sensor}' "
        f"AND time >= {ms}ms AND time < {ms + 300_000}ms"
    )
    return float(rows[0]["min"]), float(rows[0]["max"]), int(rows[0]["count"])


def test_a_late_reading_corrects_its_rollup(tmp_path: Path, mosquitto: Any, influxd: Any) -> None:
    """A reading that arrives after its interval's rollup was written rewrites that rollup in InfluxDB."""
    with running(tmp_path, mosquitto, influxd) as world:
        start = interval_ago(20)
        for minute in range(5):
            reading(world, start + timedelta(minutes=minute), 5.0)
        reading(world, start + timedelta(minutes=5), 5.0)  # next interval
        first = wait_for(lambda: rollup(world, start), 20, "the interval's rollup from memory")
        assert (first["count"], first["max"], first["out_ms"]) == (5, 5.0, 0)
        reading(world, start + timedelta(seconds=90), 11.0)  # buffered
        fixed = wait_for(
            lambda: (r := rollup(world, start)) is not None and r["count"] == 6 and r, 20, "the corrected rollup"
        )
        assert (fixed["min"], fixed["max"], fixed["count"]) == raw_extremes(world, start)
        assert fixed["out_ms"] == 30_000  # 11 °C from 1:30 until the 2:00 reading


def test_a_spool_replay_after_influxdb_was_down_corrects_the_rollups(
    tmp_path: Path, mosquitto: Any, fresh_influxd: Any
) -> None:
    """Readings spooled while InfluxDB was down, and a late one among them, end in correct rollups."""
    influx = fresh_influxd()
    with running(tmp_path, mosquitto, influx) as world:
        start = interval_ago(30)
        reading(world, start, 4.0)
        reading(world, start + timedelta(minutes=5), 4.0)
        wait_for(lambda: rollup(world, start), 20, "a first rollup while InfluxDB is up")
        influx.stop()
        for minute in range(1, 5):  # late for the first interval, and spooled
            reading(world, start + timedelta(minutes=minute), 1.0)
        for minute in range(6, 12):  # the next intervals, spooled with their rollups
            reading(world, start + timedelta(minutes=minute), 9.5)
        wait_for(lambda: "store unreachable" in world.service.get("/readyz").text, 15, "the outage seen")
        influx.start()
        for interval in (start, start + timedelta(minutes=5)):
            wait_for(
                lambda i=interval: (
                    (r := rollup(world, i)) is not None  # type: ignore[misc]
                    and (r["min"], r["max"], r["count"]) == raw_extremes(world, i)
                ),
                30,
                f"the rollup at {interval} equal to its raw readings",
            )
        assert rollup(world, start)["out_ms"] == 240_000  # type: ignore[index]  # 1 °C from 1:00 to 5:00
        assert rollup(world, start + timedelta(minutes=5))["out_ms"] == 240_000  # type: ignore[index]


def test_a_late_readings_correction_survives_kill_9(tmp_path: Path, mosquitto: Any, fresh_influxd: Any) -> None:
    """A late reading taken while InfluxDB is down, then kill -9: after restart its rollup is still corrected."""
    influx = fresh_influxd()
    with running(tmp_path, mosquitto, influx) as world:
        start = interval_ago(20)
        for minute in range(6):
            reading(world, start + timedelta(minutes=minute), 5.0)
        wait_for(lambda: rollup(world, start), 20, "the interval's rollup")
        influx.stop()
        reading(world, start + timedelta(seconds=90), 11.0)  # late
        wait_for(
            lambda: gauge(world.service.get("/metrics").text, "coldchain_spool_depth_records") > 0,
            15,
            "the late reading spooled (and acknowledged)",
        )
        world.service.kill()  # the recompute was waiting for InfluxDB: only the durable mark remembers it
        influx.start()
        world.service.start()
        fixed = wait_for(
            lambda: (r := rollup(world, start)) is not None and r["count"] == 6 and r, 30, "the corrected rollup"
        )
        assert (fixed["max"], fixed["out_ms"]) == (11.0, 30_000)
