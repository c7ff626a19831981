"""The durable writer against a real influxd: dead letters, spooling during an outage, ordered replay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.store.durable import DurableWriter
from coldchain.adapters.store.influx import InfluxStore
from coldchain.adapters.store.spool import Spool
from coldchain.config import InfluxConfig
from coldchain.core.records import TemperatureReading
from tests.publishing import wait_for
from tests.servers import Influxd

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def reading(i: int, sensor: str = "t-001") -> TemperatureReading:
    return TemperatureReading(sensor, "fridge-a", "main", T0 + timedelta(seconds=i), 4.0 + i / 100, i)


def count(store: InfluxStore, measurement: str, field: str) -> int:
    series = store.query(f'SELECT count("{field}") FROM "{measurement}"')
    return int(series[0]["values"][0][1]) if series else 0


def test_refused_records_are_dead_lettered_with_the_servers_reason(
    influxd: Influxd, influx_config: InfluxConfig, tmp_path: Path
) -> None:
    """A record InfluxDB refuses for good lands in `rejected` (store_rejected, server message); the rest is stored."""
    store = InfluxStore(influx_config)
    store.prepare()
    # a field's type is fixed per shard (and measurement) by its first write: an integer battery_pct in the
    # same shard makes any reading that carries a (float) battery_pct conflict
    t0_ms = int(T0.timestamp() * 1000)
    line = f"temperature,sensor=t-old,site=main,unit=fridge-a battery_pct=1i {t0_ms - 1000}"
    assert influxd.write(line, influx_config.database).status_code == 204
    metrics = Metrics()
    writer = DurableWriter(store, Spool(tmp_path / "spool.sqlite", 1 << 20), metrics)
    bad = TemperatureReading("t-009", "fridge-a", "main", T0, 5.5, None, 80.0)
    writer.write([reading(1), bad, reading(2)])
    assert count(store, "temperature", "celsius") == 2
    rows = store.query('SELECT * FROM "rejected"')
    columns = rows[0]["columns"]
    (values,) = rows[0]["values"]
    row = dict(zip(columns, values, strict=True))
    assert row["reason"] == "store_rejected" and "field type conflict" in row["detail"]
    assert '"sensor":"t-009"' in row["payload"]
    assert metrics.write_errors.labels("refused")._value.get() == 1
    store.close()


def test_outage_spools_then_replays_everything(fresh_influxd: Callable[..., Influxd], tmp_path: Path) -> None:
    """With InfluxDB down, write() returns at once with the batch in the spool; it is replayed once InfluxDB is back."""
    server = fresh_influxd()
    config = InfluxConfig(url=server.url, database="spooltest", timeout="2s")
    store = InfluxStore(config)
    spool = Spool(tmp_path / "spool.sqlite", 1 << 24)
    writer = DurableWriter(store, spool, Metrics())
    writer.start()
    try:
        writer.write([reading(i) for i in range(100)])
        server.stop()
        for batch in range(5):
            writer.write([reading(i) for i in range(100 + batch * 100, 200 + batch * 100)])
        assert spool.depth == 500
        server.start()
        wait_for(lambda: spool.depth == 0, 30, "the spool drained")
        assert count(store, "temperature", "celsius") == 600
    finally:
        writer.stop()
        store.close()
