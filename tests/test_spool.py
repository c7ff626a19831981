"""The on-disk spool: FIFO order, durability across reopen, the size cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldchain.adapters.store import codec as record_codec
from coldchain.adapters.store.spool import Spool, SpoolFull
from coldchain.core.alert import Alert
from coldchain.core.records import (
    BagEvent,
    BagStatus,
    NotificationAttempt,
    Record,
    Rejection,
    RejectReason,
    SensorAvailability,
    ShakeReading,
    TemperatureReading,
)

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def readings(n: int, start: int = 0) -> list[Record]:
    return [
        TemperatureReading("t-001", "fridge-a", "main", T0 + timedelta(seconds=start + i), 4.0 + i / 100, i, 88.0)
        for i in range(n)
    ]


def test_batches_come_back_in_order_and_survive_reopen(tmp_path: Path) -> None:
    """What was appended is there after a restart, oldest batch first, until removed."""
    path = tmp_path / "spool.sqlite"
    spool = Spool(path, 1 << 20)
    spool.append(readings(3))
    spool.append(readings(2, start=100))
    spool.close()

    reopened = Spool(path, 1 << 20)
    assert (reopened.batches, reopened.depth) == (2, 5)
    first = reopened.oldest()
    assert first is not None and first.records == readings(3)
    reopened.remove(first.id)
    second = reopened.oldest()
    assert second is not None and second.records == readings(2, start=100)
    reopened.remove(second.id)
    assert reopened.oldest() is None
    assert (reopened.batches, reopened.depth, reopened.size_bytes) == (0, 0, 0)


def test_cap_refuses_and_frees_space(tmp_path: Path) -> None:
    """At its cap the spool refuses a batch (the caller then holds its acks); removal frees room."""
    spool = Spool(tmp_path / "spool.sqlite", 1 << 16)
    big = readings(300)
    spool.append(big)
    assert spool.size_bytes > 0
    with pytest.raises(SpoolFull):
        while True:
            spool.append(big)
    assert spool.size_bytes <= spool.max_bytes
    assert spool.full
    oldest = spool.oldest()
    assert oldest is not None
    spool.remove(oldest.id)
    assert not spool.full
    spool.append(big)


def test_oldest_age(tmp_path: Path) -> None:
    """The oldest batch's age is what the metric reports; an empty spool is 0 s old."""
    spool = Spool(tmp_path / "spool.sqlite", 1 << 20)
    assert spool.oldest_age() == 0.0
    spool.append(readings(1))
    created = spool.oldest()
    assert created is not None
    assert spool.oldest_age(now=created.created_at + 42) == pytest.approx(42)


texts = st.text(max_size=30)
moments = st.integers(min_value=0, max_value=10**7).map(lambda s: T0 + timedelta(milliseconds=s))
records = st.one_of(
    st.builds(
        TemperatureReading,
        texts,
        texts,
        texts,
        moments,
        st.floats(-100, 100),
        st.none() | st.integers(0, 2**63 - 1),
        st.none() | st.floats(0, 100),
    ),
    st.builds(ShakeReading, texts, texts, texts, moments, st.floats(0, 1000), st.none() | st.integers(0, 2**40)),
    st.builds(
        BagEvent,
        texts,
        st.sampled_from(["diluted", "infusion_started", "infusion_completed", "discarded"]),
        moments,
        st.none() | texts,
        st.none() | texts,
        st.none() | texts,
        st.none() | texts,
        st.none() | texts,
    ),
    st.builds(Rejection, st.sampled_from(list(RejectReason)), texts, texts, st.binary(max_size=64), moments),
    st.builds(SensorAvailability, texts, texts, texts, moments, st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(records, min_size=1, max_size=5))
def test_codec_round_trips_every_record(batch: list[Record]) -> None:
    """Any record survives the spool's encoding exactly (payload bytes included)."""
    assert record_codec.loads(record_codec.dumps(batch)) == batch


def test_codec_round_trips_alerts_bag_timers_and_attempts() -> None:
    """Alert states (tuples, optional times), bag timers and notification attempts survive the spool."""
    alert = Alert(
        "a1",
        "freezing",
        "t-001",
        "acknowledged",
        "critical",
        "main",
        "fridge-a",
        "t-001",
        None,
        T0,
        T0,
        None,
        -1.5,
        "m",
        "j.doe",
        "note",
        ("B-1", "B-2"),
        "quarantined",
        T0,
    )
    status = BagStatus("B-1", "fridge-a", "main", T0, T0 + timedelta(hours=8), "running")
    attempt = NotificationAttempt(
        "a1", "freezing", "critical", "main", "fridge-a", "mail", "email", "opened", 1, "failed", "refused", 2, T0
    )
    batch: list[Record] = [alert, status, attempt]
    assert record_codec.loads(record_codec.dumps(batch)) == batch
