"""How long the store keeps records, against ``store.keep_for``: what ``check-config`` says about retention.

InfluxDB 1.x drops points older than the retention policy they are written to (``influx.retention_policy``,
or the database's default); ``SHOW RETENTION POLICIES ON <db>`` says how long each keeps them (``0s``:
forever). InfluxDB 2.x/3.x keep a bucket's retention instead, which the v1 API may not show: then the
answer is that it could not be checked. SQLite deletes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from coldchain.adapters.store.port import StoreError
from coldchain.config import Settings
from coldchain.core.durations import format_duration

CHECK_TIMEOUT = timedelta(seconds=3)
"""check-config waits at most this long for InfluxDB (an unreachable server must not hold it up)."""

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> timedelta:
    """InfluxDB's durations (Go's ``26280h0m0s``) as a timedelta; ValueError for anything else."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a duration InfluxDB writes")
    return timedelta(seconds=sum(float(number) * _GO_UNITS[unit] for number, unit in parts))


@dataclass(frozen=True, slots=True)
class Retention:
    """What the store keeps: ``duration`` None means forever."""

    where: str
    """The retention policy (or the store) it was read from, in words."""
    duration: timedelta | None


def influx_retention(settings: Settings) -> Retention:
    """The retention policy coldchain writes to; StoreError when InfluxDB cannot tell (unreachable, 2.x, no db)."""
    from coldchain.adapters.store.influx import InfluxStore, quote_ident

    config = settings.influx
    quick = config.model_copy(update={"timeout": min(config.timeout, CHECK_TIMEOUT)})
    store = InfluxStore(quick)
    try:
        series = store.query(f"SHOW RETENTION POLICIES ON {quote_ident(config.database)}")
    finally:
        store.close()
    for item in series:
        columns = item.get("columns", [])
        for values in item.get("values", []):
            row = dict(zip(columns, values, strict=False))
            chosen = row.get("name") == config.retention_policy if config.retention_policy else row.get("default")
            if chosen:
                duration = go_duration(str(row.get("duration", "")))
                where = f"retention policy {row.get('name')!r} of database {config.database!r}"
                return Retention(where, duration if duration > timedelta(0) else None)
    wanted = repr(config.retention_policy) if config.retention_policy else "no default retention policy"
    raise StoreError(f"database {config.database!r} has {wanted} (SHOW RETENTION POLICIES lists none)")


def retention_lines(settings: Settings) -> tuple[str, str | None]:
    """(what check-config prints about retention, the warning if the store keeps records for less than keep_for)."""
    keep_for = settings.store.keep_for
    want = format_duration(keep_for)
    if settings.store.sqlite_path is not None:
        return f"SQLite deletes nothing: records are kept for good (store.keep_for {want})", None
    if keep_for <= timedelta(0):
        return "not checked (store.keep_for = 0s)", None
    try:
        retention = influx_retention(settings)
    except (StoreError, ValueError) as exc:
        return (
            f"could not check InfluxDB's retention ({exc}); make sure it keeps records for at least {want} "
            "(README: Keeping three years)",
            None,
        )
    if retention.duration is None:
        return f"{retention.where} keeps records forever (store.keep_for {want})", None
    kept = format_duration(retention.duration)
    if retention.duration < keep_for:
        return (
            f"{retention.where} keeps records for {kept}",
            f"store.keep_for: InfluxDB's {retention.where} keeps records for only {kept}, less than {want}: older "
            f"readings and alerts will be deleted (ALTER RETENTION POLICY ... DURATION {keep_for.days}d; README: "
            "Keeping three years)",
        )
    return f"{retention.where} keeps records for {kept} (store.keep_for {want})", None
