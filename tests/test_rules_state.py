"""The rules worker's state file (``adapters/rules_snapshot.py``): base snapshot, change log, compaction, old files."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from coldchain.adapters import rules_snapshot
from coldchain.adapters.rules_snapshot import RulesState
from coldchain.core.records import BagEvent, TemperatureReading
from coldchain.core.rules import RulesEngine
from tests.test_rules_properties import SETTINGS, T0


def _engine_with_history() -> RulesEngine:
    """An engine with a pending excursion, an open freezing alert and a running bag timer."""
    engine = RulesEngine(SETTINGS.frozen_inventory())
    engine.observe(
        [
            TemperatureReading("t-001", "fridge-a", "main-pharmacy", T0, 9.5),
            TemperatureReading("t-002", "fridge-b", "main-pharmacy", T0, -1.0),
            BagEvent("B-1", "diluted", T0, "fridge-a", "main-pharmacy", None, None, None),
        ],
        T0,
    )
    return engine


def _normal(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {
        **snapshot,
        "alerts": sorted(snapshot["alerts"], key=lambda alert: alert["id"]),
        "bags": sorted(snapshot["bags"], key=lambda bag: bag["bag"]),
    }


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM changes").fetchone()[0])


def test_a_snapshot_file_of_the_format_before_change_logs_restores(tmp_path: Path) -> None:
    """A state file written before change logs (one snapshot row, no changes table) restores as it was."""
    engine = _engine_with_history()
    old = engine.snapshot()
    old["recent_resolved"] = []
    path = tmp_path / "rules.sqlite"
    with sqlite3.connect(path) as db:  # exactly the schema and row the earlier RulesState wrote
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), saved_at REAL, body TEXT)")
        db.execute("INSERT INTO snapshot VALUES (1, 0, ?)", (json.dumps(old, separators=(",", ":")),))
    state = RulesState(path)
    loaded = state.load()
    assert loaded is not None and state.reset is None
    restored = RulesEngine.restore(SETTINGS.frozen_inventory(), loaded)
    assert _normal(restored.snapshot()) == _normal(engine.snapshot())
    assert [a.kind for a in restored.open_alerts()] == ["freezing"]
    state.close()


def test_change_records_survive_reopening_and_fold_onto_the_snapshot(tmp_path: Path) -> None:
    """Records appended after a snapshot come back, applied in order, after the file is reopened."""
    path = tmp_path / "rules.sqlite"
    engine = RulesEngine(SETTINGS.frozen_inventory())
    state = RulesState(path)
    assert state.needs_snapshot  # a fresh file has no base yet
    state.save(engine.snapshot())
    engine.mark_saved()
    for minute in range(30):
        at = T0 + timedelta(minutes=minute)
        engine.observe([TemperatureReading("t-001", "fridge-a", "main-pharmacy", at, 9.5 - minute / 5)], at)
        engine.tick(at)
        record = engine.changes()
        if record:
            state.append(record)
    state.close()
    reopened = RulesState(path)
    loaded = reopened.load()
    assert loaded is not None and reopened.log_rows == _rows(path) > 0
    restored = RulesEngine.restore(SETTINGS.frozen_inventory(), loaded)
    assert _normal(restored.snapshot()) == _normal(engine.snapshot())
    reopened.close()


def test_compaction_keeps_the_state_and_empties_the_log(tmp_path: Path, monkeypatch: Any) -> None:
    """Once the log has COMPACT_ROWS rows a full snapshot is due; saving it empties the log, state unchanged."""
    monkeypatch.setattr(rules_snapshot, "COMPACT_ROWS", 5)
    path = tmp_path / "rules.sqlite"
    engine = _engine_with_history()
    state = RulesState(path)
    state.save(engine.snapshot())
    engine.mark_saved()
    for step in range(1, 6):
        at = T0 + timedelta(minutes=step)
        assert not state.needs_snapshot
        engine.observe([TemperatureReading("t-001", "fridge-a", "main-pharmacy", at, 9.0 + step)], at)
        state.append(engine.changes())
    assert state.needs_snapshot and _rows(path) == 5
    state.save(engine.snapshot())
    engine.mark_saved()
    assert not state.needs_snapshot and _rows(path) == 0
    loaded = RulesState(path).load()
    assert loaded is not None
    assert _normal(RulesEngine.restore(SETTINGS.frozen_inventory(), loaded).snapshot()) == _normal(engine.snapshot())


def test_a_log_outgrowing_the_snapshot_is_due_for_compaction(tmp_path: Path, monkeypatch: Any) -> None:
    """The log may not grow past the snapshot's size (above the small-site floor): then a full snapshot is due."""
    monkeypatch.setattr(rules_snapshot, "COMPACT_MIN_BYTES", 0)
    state = RulesState(tmp_path / "rules.sqlite")
    written = state.save(_engine_with_history().snapshot())
    padding = {"recent_resolved": [{"note": "x" * 100}]}
    while state.log_bytes <= written:
        assert not state.needs_snapshot
        state.append(padding)
    assert state.needs_snapshot
    state.close()
