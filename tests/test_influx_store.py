"""InfluxStore against a real influxd: round trips, idempotence, refusals, auth, outages, queries."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coldchain.adapters.store.influx import InfluxStore
from coldchain.adapters.store.port import StoreError, StoreMisconfigured, StoreUnavailable, WriteResult
from coldchain.config import InfluxConfig
from coldchain.core.records import BagEvent, Rejection, RejectReason, ShakeReading, TemperatureReading
from tests.servers import Influxd

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
T0_MS = 1_796_004_000_000
MS = timedelta(milliseconds=1)


@pytest.fixture
def store(influx_config: InfluxConfig) -> Iterator[InfluxStore]:
    """A prepared store on this test's own database."""
    store = InfluxStore(influx_config)
    store.prepare()
    yield store
    store.close()


def reading(sensor: str = "t-001", minute: int = 0, celsius: float = 4.5, **more: object) -> TemperatureReading:
    return TemperatureReading(sensor, "fridge-a", "main", T0 + timedelta(minutes=minute), celsius, **more)  # type: ignore[arg-type]


def field_types(influxd: Influxd, database: str, measurement: str) -> dict[str, str]:
    answer = influxd.query(f'SHOW FIELD KEYS FROM "{measurement}"', db=database)
    return {name: kind for series in answer["results"][0]["series"] for name, kind in series["values"]}


@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "plain"])
def test_records_round_trip_with_tags_and_field_types(
    influxd: Influxd, influx_config: InfluxConfig, gzip: bool
) -> None:
    """Every record type reads back with its tags, its fields and their types (floats stay floats)."""
    store = InfluxStore(influx_config.model_copy(update={"gzip": gzip}))
    store.prepare()
    records = [
        reading(celsius=4.0, seq=1031, battery_pct=88),
        ShakeReading("s-001", "fridge-a", "main", T0, 0.75, seq=12),
        BagEvent("B-1", "diluted", T0, "fridge-a", "main", "natalizumab", "L1", None),
        Rejection(RejectReason.INVALID_JSON, "cc/sensors/x/temperature", "not JSON", b"{oops", T0),
    ]
    assert store.write(records) == WriteResult(stored=4)

    end = T0 + MS
    temperature = list(store.read_range("temperature", T0, end))
    assert temperature == [
        {
            "time": T0,
            "sensor": "t-001",
            "site": "main",
            "unit": "fridge-a",
            "celsius": 4.0,
            "seq": 1031,
            "battery_pct": 88.0,
        }
    ]
    assert type(temperature[0]["celsius"]) is float and type(temperature[0]["seq"]) is int
    assert list(store.read_range("shake", T0, end)) == [
        {"time": T0, "sensor": "s-001", "site": "main", "unit": "fridge-a", "peak_g": 0.75, "seq": 12}
    ]
    assert list(store.read_range("bag_event", T0, end)) == [
        {
            "time": T0,
            "bag": "B-1",
            "site": "main",
            "unit": "fridge-a",
            "event": "diluted",
            "product": "natalizumab",
            "lot": "L1",
        }
    ]
    assert list(store.read_range("rejected", T0, end)) == [
        {
            "time": T0,
            "reason": "invalid_json",
            "topic": "cc/sensors/x/temperature",
            "detail": "not JSON",
            "payload": "{oops",
        }
    ]
    assert field_types(influxd, influx_config.database, "temperature") == {
        "celsius": "float",
        "seq": "integer",
        "battery_pct": "float",
    }
    store.close()


def test_writing_the_same_record_three_times_is_one_point(store: InfluxStore) -> None:
    """Redelivery is harmless: the same series and time overwrite themselves."""
    record = reading(seq=5)
    for _ in range(3):
        assert store.write([record]).stored == 1
    assert store.write([record, record, record]).stored == 3
    assert len(list(store.read_range("temperature", T0, T0 + timedelta(hours=1)))) == 1


def test_field_type_conflict_refuses_only_the_bad_records(
    influxd: Influxd, influx_config: InfluxConfig, store: InfluxStore
) -> None:
    """A batch with conflicting points stores the rest; each bad record comes back with the server's reason."""
    # battery_pct already exists as an integer in this shard, so any reading carrying it conflicts.
    line = f"temperature,sensor=old battery_pct=1i {T0_MS}"
    assert influxd.write(line, influx_config.database).status_code == 204
    records = [reading(f"t-{i:02d}", minute=i) for i in range(20)]
    bad = [reading("t-bad-1", minute=3, battery_pct=50.0), reading("t-bad-2", minute=17, battery_pct=60.0)]
    batch = [*records[:5], bad[0], *records[5:15], bad[1], *records[15:]]

    result = store.write(batch)

    assert result.stored == 20
    assert [refused.record for refused in result.refused] == bad
    for refused in result.refused:
        assert 'field type conflict: input field "battery_pct"' in refused.reason
        assert "already exists as type integer" in refused.reason
    stored = {row["sensor"] for row in store.read_range("temperature", T0, T0 + timedelta(hours=1))}
    assert stored == {f"t-{i:02d}" for i in range(20)} | {"old"}


def test_a_replay_older_than_the_retention_policy_is_refused_without_bisecting(
    influxd: Influxd, influx_config: InfluxConfig
) -> None:
    """Points beyond retention are refused for good; a batch wholly beyond it costs one request."""
    influxd.query(f'CREATE DATABASE "{influx_config.database}" WITH DURATION 1h')
    writes: list[httpx.Request] = []
    client = httpx.Client(event_hooks={"request": [lambda r: writes.append(r) if r.url.path == "/write" else None]})
    store = InfluxStore(influx_config, client=client)
    store.prepare()
    now = datetime.now(UTC).replace(microsecond=0)
    old = [TemperatureReading("t-old", "fridge-a", "main", now - timedelta(days=2, minutes=i), 5.0) for i in range(8)]

    result = store.write(old)
    assert result.stored == 0 and [r.record for r in result.refused] == old
    assert all("points beyond retention policy" in r.reason for r in result.refused)
    assert len(writes) == 1

    fresh = TemperatureReading("t-new", "fridge-a", "main", now, 5.0)
    result = store.write([*old[:3], fresh, *old[3:]])
    assert result.stored == 1 and [r.record for r in result.refused] == old
    assert [row["sensor"] for row in store.read_range("temperature", now - timedelta(days=3), now + MS)] == ["t-new"]
    client.close()


def test_prepare_creates_the_database(influxd: Influxd, influx_config: InfluxConfig) -> None:
    """prepare() creates the configured database, and running it again is harmless."""

    def databases() -> list[str]:
        return [row[0] for row in influxd.query("SHOW DATABASES")["results"][0]["series"][0].get("values", [])]

    assert influx_config.database not in databases()
    store = InfluxStore(influx_config)
    store.prepare()
    store.prepare()
    assert influx_config.database in databases()
    store.close()


def test_a_missing_database_is_a_configuration_problem(influx_config: InfluxConfig) -> None:
    """Writing to a database that does not exist (and is not created) raises StoreMisconfigured."""
    store = InfluxStore(influx_config.model_copy(update={"create_database": False}))
    store.prepare()
    with pytest.raises(StoreMisconfigured, match="database not found"):
        store.write([reading()])
    with pytest.raises(StoreMisconfigured, match="database not found"):
        list(store.read_range("temperature", T0, T0 + MS))
    store.close()


def test_auth_basic_works_and_none_or_token_are_misconfigured(fresh_influxd: Callable[..., Influxd]) -> None:
    """With auth on, basic credentials write and read; no auth, a token (1.x) or a wrong password do not."""
    server = fresh_influxd(auth_enabled=True)
    server.query("CREATE USER admin WITH PASSWORD 'x' WITH ALL PRIVILEGES")  # allowed while no user exists
    base = InfluxConfig(url=server.url, database="secured")
    basic = InfluxStore(InfluxConfig(url=server.url, database="secured", auth="basic", username="admin", password="x"))
    basic.prepare()
    assert basic.write([reading()]) == WriteResult(stored=1)
    assert [row["sensor"] for row in basic.read_range("temperature", T0, T0 + MS)] == ["t-001"]

    wrong = InfluxConfig(url=server.url, database="secured", auth="basic", username="admin", password="y")
    token = InfluxConfig(url=server.url, database="secured", auth="token", token="s3cret")
    for config in (base, wrong, token):
        store = InfluxStore(config)
        with pytest.raises(StoreMisconfigured, match="401"):
            store.prepare()
        with pytest.raises(StoreMisconfigured, match="401"):
            store.write([reading()])
        store.close()
    basic.close()


def test_a_stopped_influxd_is_unavailable_at_once_and_back_after_start(fresh_influxd: Callable[..., Influxd]) -> None:
    """Connection refused raises StoreUnavailable quickly; once influxd is back, writes go through."""
    server = fresh_influxd()
    store = InfluxStore(InfluxConfig(url=server.url, database="outage"))
    store.prepare()
    server.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable") as caught:
        store.write([reading()])
    assert time.monotonic() - started < 2
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    with pytest.raises(StoreUnavailable):
        store.ping()
    server.start()
    store.ping()
    assert store.write([reading()]).stored == 1
    store.close()


def test_latest_returns_the_newest_row_per_sensor(store: InfluxStore) -> None:
    """latest() gives, for each sensor, its most recent reading with the sensor tag in the row."""
    store.write([reading("t-1", minute=m, celsius=4.0 + m) for m in range(5)])
    store.write([reading("t-2", minute=m, celsius=6.5) for m in (1, 9, 3)])
    newest = store.latest("temperature", "sensor")
    assert newest == {
        "t-1": {"time": T0 + timedelta(minutes=4), "sensor": "t-1", "site": "main", "unit": "fridge-a", "celsius": 8.0},
        "t-2": {"time": T0 + timedelta(minutes=9), "sensor": "t-2", "site": "main", "unit": "fridge-a", "celsius": 6.5},
    }
    assert store.latest("shake", "sensor") == {}


def test_read_range_filters_by_tags_and_bounds(store: InfluxStore) -> None:
    """read_range returns start <= time < end in order, only rows whose tags match exactly."""
    store.write(
        [
            *(reading("t-1", minute=m) for m in range(6)),
            *(reading("t-2", minute=m) for m in range(6)),
            TemperatureReading("t-1", "fridge-b", "main", T0 + timedelta(minutes=2, seconds=30), 3.0),
        ]
    )
    rows = list(
        store.read_range("temperature", T0 + timedelta(minutes=1), T0 + timedelta(minutes=4), {"sensor": "t-1"})
    )
    assert [(row["time"].minute, row["unit"]) for row in rows] == [
        (1, "fridge-a"),
        (2, "fridge-a"),
        (2, "fridge-b"),
        (3, "fridge-a"),
    ]
    rows = list(store.read_range("temperature", T0, T0 + timedelta(hours=1), {"sensor": "t-1", "unit": "fridge-b"}))
    assert [(row["sensor"], row["unit"], row["celsius"]) for row in rows] == [("t-1", "fridge-b", 3.0)]


def test_read_range_quotes_user_input_so_it_cannot_inject(store: InfluxStore) -> None:
    """Quotes in tag values, tag keys and measurement names match literally instead of changing the query."""
    store.write([reading("o'brien"), reading("t-2"), reading('say "x"')])
    end = T0 + MS
    assert [row["sensor"] for row in store.read_range("temperature", T0, end, {"sensor": "o'brien"})] == ["o'brien"]
    assert [row["sensor"] for row in store.read_range("temperature", T0, end, {"sensor": 'say "x"'})] == ['say "x"']
    injections = [
        ("temperature", {"sensor": 'x\' OR "sensor" =~ /.*/ OR "sensor" = \'y'}),
        ("temperature", {"sensor": "x\\' OR 'a' = 'a"}),
        ("temperature", {"sensor\" = 't-2' OR \"sensor": "x"}),
        ('temperature" WHERE time > 0 --', {}),
    ]
    for measurement, tags in injections:
        assert list(store.read_range(measurement, T0, end, tags)) == []


def test_read_range_streams_across_chunks(store: InfluxStore) -> None:
    """Rows arrive complete and in order when the answer spans many chunks."""
    store.chunk_size = 7
    store.write([reading("t-1", minute=m) for m in range(50)])
    rows = list(store.read_range("temperature", T0, T0 + timedelta(hours=1)))
    assert [row["time"] for row in rows] == [T0 + timedelta(minutes=m) for m in range(50)]


def test_retention_policy_is_written_to_and_read_from(influxd: Influxd, influx_config: InfluxConfig) -> None:
    """With retention_policy set, points go to that policy and read_range reads them from it."""
    influxd.query(f'CREATE DATABASE "{influx_config.database}"')
    influxd.query(f'CREATE RETENTION POLICY "short term" ON "{influx_config.database}" DURATION 1000d REPLICATION 1')
    store = InfluxStore(influx_config.model_copy(update={"retention_policy": "short term"}))
    store.prepare()
    assert store.write([reading()]).stored == 1
    assert [row["sensor"] for row in store.read_range("temperature", T0, T0 + MS)] == ["t-001"]
    default = InfluxStore(influx_config)
    assert list(default.read_range("temperature", T0, T0 + MS)) == []
    store.close()
    default.close()


def test_query_returns_series(store: InfluxStore) -> None:
    """query() runs InfluxQL and returns name/tags/columns/values series; an error carries the server's text."""
    store.write([reading("t-1"), reading("t-2", celsius=6.0)])
    series = store.query('SELECT max("celsius") FROM "temperature" GROUP BY "sensor"')
    assert [(s["name"], s["tags"], s["columns"], s["values"]) for s in series] == [
        ("temperature", {"sensor": "t-1"}, ["time", "max"], [[T0_MS, 4.5]]),
        ("temperature", {"sensor": "t-2"}, ["time", "max"], [[T0_MS, 6]]),
    ]
    with pytest.raises(StoreError, match="error parsing query"):
        store.query("SELEC nothing")


TEXT = st.text(max_size=30)


def test_arbitrary_text_in_tags_and_strings_round_trips(store: InfluxStore) -> None:
    """Any text in tag values and string fields reads back as written, bar the documented normalisations."""
    times = itertools.count()

    def as_tag(value: str) -> str:  # line breaks as backslash-n/r, U+0000 and trailing backslashes dropped
        return value.replace("\n", "\\n").replace("\r", "\\r").replace("\0", "").rstrip("\\")

    def as_string(value: str) -> str:  # line breaks become backslash-n/r
        return value.replace("\n", "\\n").replace("\r", "\\r")

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        bag=TEXT.filter(lambda s: as_tag(s) != ""),
        site=st.none() | TEXT,
        product=st.none() | TEXT,
        lot=st.none() | TEXT,
        by=st.none() | TEXT,
    )
    @example(bag="a\\,b c=d\\ e", site="x\\", product='q"\\', lot="\n\r", by="")  # escapes next to escapes
    @example(bag="\\\\x", site="\x00", product="\x85\u2028", lot=None, by="'; DROP")  # NUL, Unicode line breaks
    def round_trip(bag: str, site: str | None, product: str | None, lot: str | None, by: str | None) -> None:
        ts = T0 + next(times) * MS
        record = BagEvent(bag, "infusion_started", ts, None, site, product, lot, by)
        assert store.write([record]) == WriteResult(stored=1)
        expected: dict[str, object] = {"time": ts, "bag": as_tag(bag), "event": "infusion_started"}
        if site is not None and as_tag(site):
            expected["site"] = as_tag(site)
        for name, value in (("product", product), ("lot", lot), ("by", by)):
            if value is not None:
                expected[name] = as_string(value)
        assert list(store.read_range("bag_event", ts, ts + MS, {"bag": bag})) == [expected]

    round_trip()
