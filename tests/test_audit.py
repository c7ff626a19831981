"""The audit trail's hash chain (pure) and the rules worker's local append-only log."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from coldchain.adapters.audit_log import AuditLog
from coldchain.core.audit_chain import GENESIS, chain_hash, next_event, verify_chain
from coldchain.core.records import AuditEvent

T0 = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)


def chain(length: int = 6) -> list[AuditEvent]:
    """A valid chain: config_loaded, then bag events and acknowledgements a minute apart."""
    events: list[AuditEvent] = []
    head = None
    for i in range(length):
        action = "config_loaded" if i == 0 else ("bag_event" if i % 2 else "acknowledged")
        head = next_event(head, T0 + timedelta(minutes=i), "j.doe", action, f"subject-{i}", {"n": i, "note": "ok"})
        events.append(head)
    return events


def edit(events: list[AuditEvent], seq: int, **changes: object) -> list[AuditEvent]:
    return [dataclasses.replace(e, **changes) if e.seq == seq else e for e in events]  # type: ignore[arg-type]


def test_a_valid_chain_verifies() -> None:
    """A chain built link by link has no break; seq 1 hangs off the genesis hash."""
    events = chain()
    assert verify_chain(events) is None
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))


def test_the_hash_covers_every_field() -> None:
    """Changing any field (or the predecessor's hash) changes the hash."""
    e = chain(1)[0]
    base = chain_hash(e.prev_hash, e.seq, e.at, e.actor, e.action, e.subject, e.details)
    assert base == e.hash and len(base) == 64
    variants = [
        ("1" * 64, e.seq, e.at, e.actor, e.action, e.subject, e.details),
        (e.prev_hash, 2, e.at, e.actor, e.action, e.subject, e.details),
        (e.prev_hash, e.seq, e.at + timedelta(milliseconds=1), e.actor, e.action, e.subject, e.details),
        (e.prev_hash, e.seq, e.at, "a.smith", e.action, e.subject, e.details),
        (e.prev_hash, e.seq, e.at, e.actor, "bag_event", e.subject, e.details),
        (e.prev_hash, e.seq, e.at, e.actor, e.action, "other", e.details),
        (e.prev_hash, e.seq, e.at, e.actor, e.action, e.subject, '{"n":1}'),
    ]
    assert len({chain_hash(*v) for v in variants} | {base}) == len(variants) + 1


Tamper = Callable[[list[AuditEvent]], list[AuditEvent]]
BREAKS: list[tuple[str, Tamper, int, str]] = [
    # the note of seq 3 changed after the fact: its own hash no longer matches
    ("edited details", lambda ev: edit(ev, 3, details='{"n":3,"note":"nothing happened"}'), 3, "edited"),
    # who acknowledged changed
    ("edited actor", lambda ev: edit(ev, 4, actor="boss"), 4, "edited"),
    # seq 3 edited and re-hashed by someone without the rest: seq 4's prev_hash exposes it
    (
        "edited and re-hashed",
        lambda ev: edit(
            ev,
            3,
            subject="x",
            hash=chain_hash(ev[2].prev_hash, 3, ev[2].at, ev[2].actor, ev[2].action, "x", ev[2].details),
        ),
        4,
        "prev_hash",
    ),
    # seq 4 deleted: the gap is named at the missing seq
    ("removed", lambda ev: [e for e in ev if e.seq != 4], 4, "seq 4 missing"),
    # the last two swapped (read out of order): named where the order first breaks
    ("reordered", lambda ev: [*ev[:4], ev[5], ev[4]], 5, "out of order"),
    # seq numbers of 4 and 5 swapped, then read in seq order: seq 4 is no longer what was hashed
    (
        "renumbered",
        lambda ev: sorted(
            [dataclasses.replace(e, seq={4: 5, 5: 4}.get(e.seq, e.seq)) for e in ev], key=lambda e: e.seq
        ),
        4,
        "prev_hash",
    ),
    # a second seq 2 appended (e.g. the local log was wiped and restarted)
    ("duplicated", lambda ev: [*ev[:2], ev[1], *ev[2:]], 2, "twice"),
    # the first event removed: the chain must start at seq 1
    ("head removed", lambda ev: ev[1:], 1, "does not start at seq 1"),
]


@pytest.mark.parametrize(("name", "tamper", "seq", "why"), BREAKS, ids=[b[0] for b in BREAKS])
def test_the_first_break_is_named(name: str, tamper: Tamper, seq: int, why: str) -> None:
    """Each kind of tampering is reported at the seq where the chain first stops holding, saying why."""
    problem = verify_chain(tamper(chain()))
    assert problem is not None, name
    assert problem.seq == seq
    assert why in problem.reason
    assert str(problem).startswith(f"seq {seq}")


def test_a_slice_verifies_without_its_start() -> None:
    """With from_genesis=False a slice of a chain (seq 3 on) verifies on its own."""
    assert verify_chain(chain()[2:], from_genesis=False) is None
    assert verify_chain(chain()[2:]) is not None


def test_next_event_bumps_time_and_normalises_text() -> None:
    """A new event is at least 1 ms after the head; control characters become visible escapes."""
    first = next_event(None, T0, "j.doe", "bag_event", "B-1", {"b": 1, "a": "x\ny"})
    second = next_event(first, T0 - timedelta(seconds=5), "j\ndoe", "bag_event", "B\ud800", {})
    assert second.at == T0 + timedelta(milliseconds=1)
    assert first.details == '{"a":"x\\ny","b":1}'
    assert (second.actor, second.subject) == ("j\\ndoe", "B\ufffd")
    assert verify_chain([first, second]) is None


def test_audit_log_appends_dedupes_and_survives_a_restart(tmp_path: Path) -> None:
    """Redelivered actions (same dedupe key) append once; a reopened log continues the chain."""
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    first = log.append("coldchain", "config_loaded", "<defaults>", {"units": 2}, T0)
    bag = log.append("j.doe", "bag_event", "B-1", {"event": "diluted"}, T0, dedupe_key="bag:B-1:diluted:1")
    assert first is not None and bag is not None and bag.seq == 2
    assert log.append("j.doe", "bag_event", "B-1", {"event": "diluted"}, T0, dedupe_key="bag:B-1:diluted:1") is None
    assert [e.seq for e in log.unstored()] == [1, 2]
    log.mark_stored([1])
    assert [e.seq for e in log.unstored()] == [2]
    log.close()

    reopened = AuditLog(path)  # a restart (or a kill -9: every append is its own committed transaction)
    assert reopened.append("j.doe", "bag_event", "B-1", {}, T0, dedupe_key="bag:B-1:diluted:1") is None
    ack = reopened.append("a.smith", "acknowledged", "alert-1", {"note": "moved"}, T0, dedupe_key="ack:alert-1:5")
    assert ack is not None and ack.seq == 3 and ack.prev_hash == bag.hash
    assert [e.seq for e in reopened.unstored()] == [2, 3]
    events = list(reopened.events())
    assert verify_chain(events) is None
    assert [e.at for e in events] == [T0, T0 + timedelta(milliseconds=1), T0 + timedelta(milliseconds=2)]
    reopened.close()


def test_audit_log_is_durable_sqlite(tmp_path: Path) -> None:
    """The log is WAL with synchronous=FULL, and dedupe keys are unique in the table itself."""
    path = tmp_path / "audit.sqlite"
    AuditLog(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ddl = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "dedupe_key TEXT UNIQUE" in ddl
    db.close()
