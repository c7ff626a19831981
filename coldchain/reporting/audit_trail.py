"""The audit trail as the store holds it (measurement ``audit``), read back for verification and exports.

``verify_trail`` is ``coldchain audit verify``'s judgement: the store's hash chain, every event's MAC
under the audit key, and every anchored head (the local audit log's, the retained
``<prefix>/audit/head``, the ``audit_chain`` of export manifests) found unchanged in it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coldchain.core.audit_chain import Anchor, check_anchor, event_from_row, verify_chain, verify_macs
from coldchain.core.records import AuditEvent

AUDIT_MEASUREMENT = "audit"


_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)


_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def read_chain(store: Any, until: datetime = _FAR_FUTURE, chain: str = "") -> list[AuditEvent]:
    """Every audit event of ``chain`` (``rules.audit_chain``: "" unless rules are partitioned) in ``store``
    (a ``Store``) before ``until``, sorted by seq (then time)."""
    rows = store.read_range(AUDIT_MEASUREMENT, _FAR_PAST, until)
    events = [event for event in map(event_from_row, rows) if event.chain == chain]
    events.sort(key=lambda e: (e.seq, e.at))
    return events


@dataclass(slots=True)
class TrailReport:
    """What ``verify_trail`` found: problems (exit 1), what could not be checked (exit 2), what held."""

    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.problems:
            return 1
        return 2 if self.unchecked else 0


def verify_trail(events: Sequence[AuditEvent], keys: Sequence[bytes], anchors: Sequence[Anchor]) -> TrailReport:
    """The chain, its MACs under ``keys`` (none: unchecked) and each anchor."""
    report = TrailReport()
    broken = verify_chain(events)
    if broken is not None:
        report.problems.append(f"BROKEN at {broken}")
    elif events:
        head = events[-1]
        report.notes.append(f"hash chain intact: {len(events)} events, seq 1..{head.seq}, head hash {head.hash}")
    if keys:
        bad_mac = verify_macs(events, keys) if broken is None else None
        if bad_mac is not None:
            report.problems.append(f"BROKEN at {bad_mac}")
        elif broken is None and events:
            report.notes.append("every MAC under the audit key holds")
    elif events:
        report.unchecked.append(
            "no audit key to check the MACs with (rules.audit_key_file or the state directory's coldchain-audit.key;"
            " or --key FILE): a chain recomputed by someone with store access alone would look the same"
        )
    for anchor in anchors:
        problem = check_anchor(events, anchor)
        if problem is not None:
            report.problems.append(f"does not hold an anchor: {problem}")
        else:
            report.notes.append(f"{anchor.source}: seq {anchor.seq} found unchanged")
    return report


def manifest_anchor(path: Path) -> Anchor:
    """The audit head an export's manifest (or its directory) anchors. ValueError when it has none."""
    manifest_path = path / "manifest.json" if path.is_dir() else path
    try:
        chain = json.loads(manifest_path.read_text(encoding="utf-8"))["audit_chain"]
        return Anchor(f"export {manifest_path.parent.name}", int(chain["head_seq"]), str(chain["head_hash"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest_path}: no audit_chain head ({exc})") from exc


def retained_anchor(payload: bytes) -> Anchor:
    """The head published retained on ``<prefix>/audit/head``. ValueError when it is not one."""
    try:
        body = json.loads(payload)
        return Anchor("the retained <prefix>/audit/head", int(body["seq"]), str(body["hash"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the retained audit head is not one: {exc}") from exc
