"""Stored facts are never rewritten: the pure decision (``core/append_only``) and ingest's guard over SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coldchain.adapters.store.sqlite import SqliteStore
from coldchain.contract.topics import Topics
from coldchain.core.append_only import RecentFacts
from coldchain.core.records import BagEvent, Rejection, RejectReason, ShakeReading, TemperatureReading
from coldchain.roles.fact_guard import FactGuard

NOW = datetime.now(UTC).replace(microsecond=0)


def t(celsius: float, minutes_ago: float = 0, seq: int | None = None, sensor: str = "t-001") -> TemperatureReading:
    return TemperatureReading(sensor, "fridge-a", "main", NOW - timedelta(minutes=minutes_ago), celsius, seq)


def verdicts(window: RecentFacts, facts: list[TemperatureReading | ShakeReading | BagEvent]) -> list[bool]:
    keyed = window.keyed(facts)
    for need in window.missing(keyed):
        window.load(need, [])
    refused = {id(fact) for fact, _ in window.screen(keyed)}
    return [id(fact) not in refused for fact in facts]


@pytest.mark.parametrize(
    ("first", "second", "accepted"),
    [
        (t(4.0), t(4.0), True),  # a redelivery: same values
        (t(4.0), t(9.6), False),  # the rewrite: same sensor and ts, other celsius
        (t(4.0, seq=1), t(4.0, seq=2), False),  # any stored value counts
        (t(4.0), t(4.0, seq=1), False),  # adding a field rewrites the point too
        (t(4.0, seq=1), t(4.0, seq=1), True),
        (t(4.0), t(9.6, sensor="t-002"), True),  # another sensor's series
        (t(4.0), t(9.6, minutes_ago=1 / 60_000), True),  # another millisecond
        (
            ShakeReading("s-001", "fridge-a", "main", NOW, 0.9),
            ShakeReading("s-001", "fridge-a", "main", NOW, 0.0),
            False,
        ),  # shake readings follow the same rule
        (
            BagEvent("B1", "diluted", NOW, "fridge-a", "main", "nat", "L1", "j.doe"),
            BagEvent("B1", "diluted", NOW, "fridge-a", "main", "nat", "L2", "j.doe"),
            False,
        ),  # a bag event: another lot at the same moment
    ],
)
def test_second_version_of_a_fact(first: TemperatureReading, second: TemperatureReading, accepted: bool) -> None:
    """The same fact again is accepted; another version of it is refused."""
    window = RecentFacts()
    assert verdicts(window, [first]) == [True]
    assert verdicts(window, [second]) == [accepted]


def test_conflict_within_one_batch_names_both_values() -> None:
    """Two versions in one upload: the first stands, the second is refused with both values in the detail."""
    window = RecentFacts()
    facts = [t(9.6), t(4.0)]
    keyed = window.keyed(facts)
    for need in window.missing(keyed):
        window.load(need, [])
    ((refused, detail),) = window.screen(keyed)
    assert refused is facts[1]
    assert "celsius=9.6" in detail and "celsius=4.0" in detail


def test_old_facts_need_the_store_and_the_window_stays_bounded() -> None:
    """Past the window, a fact's series is asked of the store again; the window forgets what it passed."""
    window = RecentFacts(window=timedelta(minutes=30))
    verdicts(window, [t(5.0, minutes_ago=m) for m in range(120, -1, -1)])
    window.trim()
    assert window.size() == 31
    assert window.missing(window.keyed([t(5.0, minutes_ago=10)])) == []
    (need,) = window.missing(window.keyed([t(5.0, minutes_ago=60)]))
    assert need.series == ("temperature", "t-001") and need.end_ms is not None


def test_trimming_the_series_of_a_batch_forgets_only_theirs() -> None:
    """trim(series) bounds the series a batch touched and leaves the others as they were."""
    window = RecentFacts(window=timedelta(minutes=30))
    verdicts(window, [t(5.0, minutes_ago=m, sensor=s) for m in range(120, -1, -1) for s in ("t-001", "t-002")])
    window.trim([("temperature", "t-001")])
    assert window.size() == 31 + 121  # t-001 trimmed to its window, t-002 untouched
    window.trim()
    assert window.size() == 62


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "coldchain.db")
    s.prepare()
    return s


def screened(guard: FactGuard, store: SqliteStore, records: list[TemperatureReading]) -> list[object]:
    out = guard.screen(list(records), NOW)
    store.write(out)  # type: ignore[arg-type]
    return out


def test_sqlite_refuses_a_rewrite_after_a_restart(store: SqliteStore) -> None:
    """After a restart (a new guard, an empty window), a rewrite of a stored reading is refused from the store."""
    topics = Topics("cc")
    screened(FactGuard(store, topics), store, [t(9.6, minutes_ago=600), t(5.0)])
    out = screened(FactGuard(store, topics), store, [t(4.0, minutes_ago=600), t(5.0)])
    assert isinstance(out[0], Rejection) and out[0].reason == RejectReason.CONFLICTING_READING
    assert out[0].topic == "cc/sensors/t-001/temperature" and b'"celsius": 4.0' in out[0].payload
    assert out[1] == t(5.0)  # the redelivery is written again, harmlessly
    rows = list(store.read_range("temperature", NOW - timedelta(days=1), NOW + timedelta(seconds=1)))
    assert [row["celsius"] for row in rows] == [9.6, 5.0]


def test_sqlite_refuses_an_impossible_bag_sequence_after_a_restart(store: SqliteStore) -> None:
    """The stored dilution is looked up for a bag not seen since the start: an end before it is impossible."""
    diluted = BagEvent("B1", "diluted", NOW, "fridge-a", "main", "nat", "L1", "a")
    guard = FactGuard(store, Topics("cc"))
    assert guard.bag_message([diluted]) is None
    store.write([diluted])
    fresh = FactGuard(store, Topics("cc"))
    early = BagEvent("B1", "discarded", NOW - timedelta(hours=1), None, None, None, None, "a")
    why = fresh.bag_message([early])
    assert why is not None and "before its dilution" in why
    later = BagEvent("B1", "discarded", NOW + timedelta(hours=1), None, None, None, None, "a")
    assert fresh.bag_message([later]) is None


def test_one_query_per_batch_and_an_old_upload_reads_only_its_sensor(store: SqliteStore) -> None:
    """After a restart one query covers every sensor's recent readings; a late upload asks for its own sensor only."""
    asked: list[dict[str, str] | None] = []
    read_range = store.read_range

    def counting(measurement: str, start: datetime, end: datetime, tags: dict[str, str] | None = None) -> object:
        asked.append(tags)
        return read_range(measurement, start, end, tags)

    store.read_range = counting  # type: ignore[method-assign, assignment]
    guard = FactGuard(store, Topics("cc"))
    guard.screen([t(5.0, sensor=f"t-{i}") for i in range(50)], NOW)
    assert asked == [None]  # one query for the batch's 50 sensors
    guard.screen([t(5.0, sensor=f"t-{i}", minutes_ago=1) for i in range(50)], NOW)
    assert len(asked) == 2  # their minute-old readings predate what the window knows: one more query
    guard.screen([t(5.0, sensor=f"t-{i}", minutes_ago=0.5) for i in range(50)], NOW)
    assert len(asked) == 2  # inside the window now: no query
    guard.screen([t(5.0, sensor="t-7", minutes_ago=60 * 24 * 3)], NOW)
    assert asked[-1] == {"sensor": "t-7"}
