"""Stored facts are never rewritten: the decision over "what is stored for this (series, ts)"; pure.

A fact is a reading or a bag event, identified by its series (measurement and sensor, or the
bag) and its time in ms; its *values* are what the store would keep for it. A new fact whose
identity is already stored with the same values is a redelivery (written again: it changes
nothing); with other values it is a conflict (reason ``conflicting_reading``), never written.

``RecentFacts`` keeps, per series, every fact at or after its ``complete_from`` (the window):
for those the decision needs no store. A fact older than that (a late upload, or any fact after a
restart) needs what the store holds, which the caller reads once per batch (``missing``) and hands
over (``load``) before ``screen``; ``keyed`` computes each fact's series and time once for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeAlias

from coldchain.core.records import BagEvent, ShakeReading, TemperatureReading
from coldchain.core.times import format_time, from_millis, to_millis

Fact: TypeAlias = TemperatureReading | ShakeReading | BagEvent
Series: TypeAlias = tuple[str, str]
"""(measurement, identity): ("temperature", sensor), ("shake", sensor), ("bag_event", bag)."""
Values: TypeAlias = Any
"""A fact's values: a tuple, or for a reading without its optional fields the bare number."""
Keyed: TypeAlias = tuple[Series, int, Fact]
"""A fact with its series and time in ms."""

WINDOW = timedelta(hours=2)
"""How far behind a series' newest fact the in-memory window reaches by default."""


def series_of(fact: Fact) -> Series:
    if type(fact) is TemperatureReading:
        return ("temperature", fact.sensor)
    if type(fact) is ShakeReading:
        return ("shake", fact.sensor)
    return ("bag_event", fact.bag)  # type: ignore[union-attr]


def _compact(values: tuple[Any, ...]) -> Values:
    """A reading's values as kept in the window: the bare number when the optional fields are absent (the
    common case, and an object the garbage collector need not track), else the tuple."""
    return values[0] if all(v is None for v in values[1:]) else values


def values_of(fact: Fact) -> Values:
    """What the store keeps of ``fact`` besides its identity."""
    if type(fact) is TemperatureReading:
        if fact.seq is None and fact.battery_pct is None:
            return float(fact.celsius)
        return (float(fact.celsius), fact.seq, None if fact.battery_pct is None else float(fact.battery_pct))
    if type(fact) is ShakeReading:
        return float(fact.peak_g) if fact.seq is None else (float(fact.peak_g), fact.seq)
    assert isinstance(fact, BagEvent)
    return (fact.event, fact.unit, fact.product, fact.lot, fact.by, fact.source)


def _opt_float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def values_of_row(measurement: str, row: Mapping[str, Any]) -> Values:
    """The values of a stored row (as ``Store.read_range`` gives it), comparable with ``values_of``."""
    if measurement == "temperature":
        return _compact((float(row["celsius"]), _opt_int(row.get("seq")), _opt_float(row.get("battery_pct"))))
    if measurement == "shake":
        return _compact((float(row["peak_g"]), _opt_int(row.get("seq"))))
    return tuple(_opt_str(row.get(key)) for key in ("event", "unit", "product", "lot", "by", "source"))


_NAMES = {
    "temperature": ("celsius", "seq", "battery_pct"),
    "shake": ("peak_g", "seq"),
    "bag_event": ("event", "unit", "product", "lot", "by", "source"),
}


def describe(measurement: str, values: Values) -> str:
    """Values in words, the names that are set: ``celsius=4.7, seq=12``."""
    names = _NAMES[measurement]
    full = values if isinstance(values, tuple) else (values, *([None] * (len(names) - 1)))
    return ", ".join(f"{n}={v}" for n, v in zip(names, full, strict=True) if v is not None)


def conflict_detail(fact: Fact, stored: Values) -> str:
    """The rejection's detail: both versions of the fact."""
    measurement, ident = series_of(fact)
    return (
        f"{measurement} of {ident} at {format_time(fact.ts)} is already stored with"
        f" {describe(measurement, stored)}; refused {describe(measurement, values_of(fact))}"
    )


@dataclass(frozen=True, slots=True)
class Need:
    """What the store must be asked for one series: its facts with ``start_ms`` <= time < ``end_ms``
    (``end_ms`` None: up to the newest)."""

    series: Series
    start_ms: int
    end_ms: int | None


class RecentFacts:
    """The window of recent facts per series, and the decision over each new fact."""

    __slots__ = ("_complete_from", "_facts", "_newest", "window_ms")

    def __init__(self, window: timedelta = WINDOW) -> None:
        self.window_ms = int(window.total_seconds() * 1000)
        self._facts: dict[Series, dict[int, Values]] = {}
        self._complete_from: dict[Series, int] = {}
        """Per series: every stored fact at or after this time (ms) is in ``_facts``."""
        self._newest: dict[Series, int] = {}

    @staticmethod
    def keyed(records: Iterable[Any]) -> list[Keyed]:
        """The facts among ``records`` (readings and bag events; others are skipped) with their series and ms,
        computed once for ``missing`` and ``screen``."""
        out: list[Keyed] = []
        append = out.append
        for record in records:
            cls = type(record)
            if cls is TemperatureReading:
                append((("temperature", record.sensor), to_millis(record.ts), record))
            elif cls is ShakeReading:
                append((("shake", record.sensor), to_millis(record.ts), record))
            elif cls is BagEvent:
                append((("bag_event", record.bag), to_millis(record.ts), record))
        return out

    def missing(self, keyed: Iterable[Keyed]) -> list[Need]:
        """What the store must be asked before ``screen`` can judge ``keyed``: one range per series."""
        oldest: dict[Series, int] = {}
        complete = self._complete_from
        for series, ms, _ in keyed:
            known = complete.get(series)
            if known is not None and ms >= known:
                continue
            if ms < oldest.get(series, ms + 1):
                oldest[series] = ms
        return [Need(series, start, complete.get(series)) for series, start in oldest.items()]

    def load(self, need: Need, rows: Iterable[tuple[int, Values]]) -> None:
        """What the store holds for ``need`` (time ms, values); the window then covers from its start."""
        facts = self._facts.setdefault(need.series, {})
        for ms, values in rows:
            if ms >= need.start_ms and (need.end_ms is None or ms < need.end_ms):
                facts.setdefault(ms, values)
                if ms > self._newest.get(need.series, ms - 1):
                    self._newest[need.series] = ms
        self._complete_from[need.series] = need.start_ms

    def screen(self, keyed: Sequence[Keyed]) -> list[tuple[Fact, str]]:
        """The facts that conflict with a stored one, each with why (do not write them); every other fact is
        new (now in the window) or the same again (harmless to write).

        Every series of ``keyed`` should be covered (``missing`` answered); an uncovered one (the store
        could not be asked) is judged on what the window holds, and asked for again next time."""
        conflicts: list[tuple[Fact, str]] = []
        window = self._facts
        newest = self._newest
        for series, ms, fact in keyed:
            values = values_of(fact)
            facts_of = window.get(series)
            if facts_of is None:
                facts_of = window[series] = {}
            stored = facts_of.get(ms)
            if stored is None:
                facts_of[ms] = values
                if ms > newest.get(series, -1 << 62):
                    newest[series] = ms
            elif stored != values:
                conflicts.append((fact, conflict_detail(fact, stored)))
        return conflicts

    def trim(self, series_of: Iterable[Series] | None = None) -> None:
        """Forget facts older than the window behind each series' newest (the store keeps them).

        ``series_of``: only these series (those a batch touched: no other series' newest moved, so
        only theirs can have facts to forget); every series when None. A fleet has 100,000 series:
        trimming them all after every batch cost more than the rest of ingest.
        """
        window = self.window_ms
        newest_of = self._newest
        chosen = newest_of.items() if series_of is None else ((s, newest_of[s]) for s in series_of if s in newest_of)
        for series, newest in chosen:
            horizon = newest - window
            complete = self._complete_from.get(series)
            if complete is not None and complete >= horizon:
                continue
            facts = self._facts[series]
            for ms in [ms for ms in facts if ms < horizon]:
                del facts[ms]
            if complete is not None:
                self._complete_from[series] = horizon

    def size(self) -> int:
        """How many facts the window holds."""
        return sum(len(facts) for facts in self._facts.values())


def rows_to_values(measurement: str, rows: Iterable[Mapping[str, Any]]) -> list[tuple[int, Values]]:
    """Store rows -> (time ms, values), rows without the measurement's main field skipped."""
    main = _NAMES[measurement][0]
    return [(to_millis(row["time"]), values_of_row(measurement, row)) for row in rows if row.get(main) is not None]


def need_range(need: Need, latest_ms: int) -> tuple[Any, Any]:
    """The (start, end) datetimes to read for ``need``; ``latest_ms`` bounds an open end."""
    end = need.end_ms if need.end_ms is not None else latest_ms
    return from_millis(need.start_ms), from_millis(max(end, need.start_ms + 1))
