"""The notification outbox: idempotent planning, history, due order and backoff, restarts, give-up."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from coldchain.adapters.outbox import Outbox, OutboxError
from coldchain.core.alert import Alert
from coldchain.core.policy import Notice, Sent
from tests.samples import T0, freezing_alert

S = timedelta(seconds=1)


def alert(aid: str = "a1", state: str = "open", **changes: object) -> Alert:
    return freezing_alert(aid, state, **{"affected_bags": ("B-0042",), **changes})


def notice(target: str = "pharmacist", purpose: str = "opened", aid: str = "a1", tier: int = 0) -> Notice:
    return Notice(alert(aid), target, purpose, tier, f"{purpose} to {target}")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An outbox in a directory that does not exist yet (the outbox makes it)."""
    box = Outbox(tmp_path / "var" / "notify.sqlite")
    yield box
    box.close()


def test_add_is_idempotent_per_alert_target_and_purpose(outbox: Outbox) -> None:
    """A notice planned twice (restart, redelivered transition) is stored once; add counts only new ones."""
    assert outbox.add([notice("pharmacist"), notice("webhook")], T0) == 2
    assert outbox.add([notice("pharmacist"), notice("webhook")], T0 + S) == 0
    assert outbox.add([notice("pharmacist"), notice("pharmacist", "page-tier-1", tier=1)], T0 + S) == 1
    assert outbox.add([], T0) == 0
    assert outbox.pending_count() == 3


def test_history_lists_every_planned_notice_whatever_its_state(outbox: Outbox) -> None:
    """History holds delivered, pending and given-up notices of that alert only, in planning order."""
    outbox.add([notice("pharmacist"), notice("webhook")], T0)
    outbox.add([notice("pager", "page-tier-1", tier=1)], T0 + 5 * S)
    outbox.add([notice("pharmacist", aid="other")], T0)
    first, second = outbox.due("pharmacist", T0)[0], outbox.due("webhook", T0)[0]
    outbox.delivered(first.id, T0 + S)
    outbox.gave_up(second.id, T0 + S, "HTTP 500")

    assert outbox.history("a1") == [
        Sent("pharmacist", "opened", 0, T0),
        Sent("webhook", "opened", 0, T0),
        Sent("pager", "page-tier-1", 1, T0 + 5 * S),
    ]
    assert outbox.history("unknown") == []


def test_due_returns_the_targets_pending_notices_oldest_first_with_their_alert(outbox: Outbox) -> None:
    """due() is per target, oldest first, limited, and carries the stored alert back."""
    outbox.add([notice("pharmacist", "opened", aid="a1")], T0)
    outbox.add([notice("pharmacist", "opened", aid="a2"), notice("webhook", aid="a2")], T0 + S)
    outbox.add([notice("pharmacist", "opened", aid="a3")], T0 + 2 * S)

    due = outbox.due("pharmacist", T0 + 2 * S)
    assert [e.alert.id for e in due] == ["a1", "a2", "a3"]
    assert due[0].alert == alert("a1")
    assert (due[0].target, due[0].purpose, due[0].tier, due[0].attempts, due[0].created_at) == (
        "pharmacist",
        "opened",
        0,
        0,
        T0,
    )
    assert due[0].reason == "opened to pharmacist"
    assert [e.alert.id for e in outbox.due("pharmacist", T0 + S)] == ["a1", "a2"]  # a3 not yet planned by then
    assert [e.alert.id for e in outbox.due("pharmacist", T0 + 2 * S, limit=1)] == ["a1"]
    assert [e.alert.id for e in outbox.due("webhook", T0 + 2 * S)] == ["a2"]


def test_failed_notice_waits_for_its_next_attempt_and_counts_attempts(outbox: Outbox) -> None:
    """A failed notice is not due before next_attempt_at, is due from then on, and remembers its attempts."""
    outbox.add([notice()], T0)
    (entry,) = outbox.due("pharmacist", T0)
    outbox.failed(entry.id, T0 + S, "connection refused", next_attempt_at=T0 + 3 * S)

    assert outbox.due("pharmacist", T0 + 2 * S) == []
    (again,) = outbox.due("pharmacist", T0 + 3 * S)
    assert (again.id, again.attempts, again.created_at) == (entry.id, 1, T0)
    outbox.failed(again.id, T0 + 3 * S, "connection refused", next_attempt_at=T0 + 5 * S)
    outbox.delivered(again.id, T0 + 5 * S)
    assert outbox.due("pharmacist", T0 + timedelta(days=1)) == []
    assert outbox.pending_count() == 0
    with sqlite3.connect(outbox.path) as db:
        assert db.execute("SELECT state, attempts, last_error FROM notice").fetchall() == [
            ("delivered", 3, "connection refused")
        ]


def test_given_up_notice_is_never_due_again(outbox: Outbox) -> None:
    """gave_up ends a notice for good: not due, not pending, still in history (never planned again)."""
    outbox.add([notice()], T0)
    (entry,) = outbox.due("pharmacist", T0)
    outbox.gave_up(entry.id, T0 + S, "HTTP 500")

    assert outbox.due("pharmacist", T0 + timedelta(days=2)) == []
    assert outbox.pending_count() == 0
    assert outbox.add([notice()], T0 + 2 * S) == 0
    assert outbox.history("a1") == [Sent("pharmacist", "opened", 0, T0)]
    # marking a finished notice again changes nothing
    outbox.failed(entry.id, T0 + 3 * S, "late", T0 + 4 * S)
    assert outbox.due("pharmacist", T0 + timedelta(days=2)) == []
    with sqlite3.connect(outbox.path) as db:
        assert db.execute("SELECT state, attempts, last_error FROM notice").fetchall() == [("gave_up", 1, "HTTP 500")]


def test_outbox_survives_a_restart(tmp_path: Path) -> None:
    """After reopening the file, pending notices are still due, delivered ones are not, history is intact."""
    path = tmp_path / "notify.sqlite"
    box = Outbox(path)
    box.add([notice("pharmacist"), notice("webhook")], T0)
    box.delivered(box.due("pharmacist", T0)[0].id, T0 + S)
    box.close()

    reopened = Outbox(path)
    try:
        assert reopened.add([notice("pharmacist"), notice("webhook")], T0 + 2 * S) == 0
        assert reopened.due("pharmacist", T0 + 2 * S) == []
        assert [e.target for e in reopened.due("webhook", T0 + 2 * S)] == ["webhook"]
        assert reopened.pending_count() == 1
        assert reopened.pending_targets() == {"webhook": 1}
        assert [s.target for s in reopened.history("a1")] == ["pharmacist", "webhook"]
    finally:
        reopened.close()


def test_outbox_uses_wal_and_full_sync(outbox: Outbox) -> None:
    """The file is in WAL mode with synchronous=FULL, like the spool: a returned add is on disk."""
    with sqlite3.connect(outbox.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert outbox._db.execute("PRAGMA synchronous").fetchone() == (2,)


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    """A file written by a newer coldchain is refused by name instead of misread."""
    path = tmp_path / "notify.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxError, match="schema version 99"):
        Outbox(path)


def test_concurrent_adds_from_many_threads_store_each_notice_once(outbox: Outbox) -> None:
    """Threads adding the same notices at once store each exactly once (one connection, one lock)."""
    notices = [notice(f"target-{i}") for i in range(20)]
    counts: list[int] = []

    def add() -> None:
        counts.append(outbox.add(notices, T0))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 20
    assert outbox.pending_count() == 20
