"""Change records: the part of the rules engine's state that changed since the last checkpoint.

A checkpoint that rewrites the whole engine costs what the fleet is (18.8 MB of JSON at 100,000
sensors); a change record costs what changed. ``RulesEngine.changes`` gives one, ``apply_changes``
folds records in order onto a full snapshot (``RulesEngine.snapshot``'s shape), and the result
restores exactly what the engine held when the last record was taken. Records are plain
JSON-ready dicts:

* ``sensors``: ``{id: sensor state}`` of every sensor whose episode state changed (a reading that
  started, continued or ended an excursion, an offline or agitation alert, an acknowledgement);
  always exact, so what decides an episode is never judged twice after a restart.
* ``seen``: ``{id: [last, heard]}`` (epoch milliseconds or null): only the last-seen of a quiet
  sensor, whose in-range readings change nothing else. It is written *coarsely*: once ``heard``
  or ``last`` moved ``grain`` (``offline_after / SEEN_GRAIN_DIVISOR``) past the value persisted
  last, and once a sensor has been silent a whole grain (so a sensor that stopped reporting has its
  exact last-seen persisted; ``changes`` looks for those every half of the smallest grain). So the
  persisted last-seen never runs ahead of the true one and lags it by less than a grain. After a
  ``kill -9`` (a clean stop writes everything exactly) this can make two differences, both bounded
  and both on the safe side: a sensor that fell silent less than a grain before the crash goes
  ``sensor_offline`` up to a grain early (its ``started_at`` up to a grain early); and a reading
  whose ts lies in that lag, arriving again from a device's buffer, is judged rather than counted
  late (it can only start an excursion if it is out of range, which a copy of a reading judged in
  range is not).
* ``bags``: ``{id: bag timer or null}`` (null: forgotten); ``alerts``: ``{id: alert payload or
  null}`` (null: no longer open).
* ``stats`` and ``system``: replaced whole when present (``stats`` rides along with any other
  change and is never a reason to write on its own).
* Any other key (the worker's ``recent_resolved``, ``signing_locks``): replaced whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from coldchain.core.times import format_time, from_millis

KEYED = ("sensors", "seen", "bags", "alerts")
"""The sections keyed by id; every other section is replaced whole."""


def is_empty(record: dict[str, Any]) -> bool:
    """Whether ``record`` carries nothing to persist (``stats`` alone does not count)."""
    return not any(value for key, value in record.items() if key != "stats")


def merge_changes(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """One record equivalent to applying ``older`` then ``newer`` (for a checkpoint that could not be saved)."""
    merged = dict(older)
    for key, value in newer.items():
        if key in KEYED:
            section = {**merged.get(key, {}), **value}
            if key == "sensors":  # a full state supersedes an older last-seen of the same sensor
                seen = {s: v for s, v in merged.get("seen", {}).items() if s not in value}
                merged["seen"] = seen
            if key == "seen":  # a newer last-seen applies on top of an older full state
                states = merged["sensors"] = dict(merged.get("sensors", {}))
                for sensor in [s for s in value if s in states]:
                    states[sensor] = _with_seen(states[sensor], value[sensor])
                    del section[sensor]
            merged[key] = section
        else:
            merged[key] = value
    return merged


def _ms_time(millis: int | None) -> str | None:
    return None if millis is None else format_time(from_millis(millis))


def _with_seen(state: dict[str, Any], seen: list[int | None]) -> dict[str, Any]:
    return {**state, "last": _ms_time(seen[0]), "heard": _ms_time(seen[1])}


def apply_changes(snapshot: dict[str, Any], records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``snapshot`` (a full one, current version) with ``records`` applied in order; ``snapshot`` is not changed."""
    out = dict(snapshot)
    sensors: dict[str, Any] | None = None
    bags: dict[str, Any] | None = None
    alerts: dict[str, Any] | None = None
    for record in records:
        for key, value in record.items():
            if key == "sensors":
                if sensors is None:
                    sensors = dict(out["sensors"])
                sensors.update(value)
            elif key == "seen":
                if sensors is None:
                    sensors = dict(out["sensors"])
                for sensor, seen in value.items():
                    state = sensors.get(sensor)
                    if state is not None:
                        sensors[sensor] = _with_seen(state, seen)
            elif key == "bags":
                if bags is None:
                    bags = {item["bag"]: item for item in out["bags"]}
                bags.update(value)
            elif key == "alerts":
                if alerts is None:
                    alerts = {item["id"]: item for item in out["alerts"]}
                alerts.update(value)
            else:
                out[key] = value
    if sensors is not None:
        out["sensors"] = sensors
    if bags is not None:
        out["bags"] = [item for item in bags.values() if item is not None]
    if alerts is not None:
        out["alerts"] = [item for item in alerts.values() if item is not None]
    return out
