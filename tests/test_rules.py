"""The rules engine against CONTRACT.md section 4, one table row per behaviour.

Times in the tables are offsets from T0 (02:10:00Z, the contract's example): ``"15:00"`` is
15 minutes after, ``"7:59:59.999"`` almost 8 hours after. A row lists what happens, in order,
and the transitions expected as ``(change, kind, started_at, updated_at)``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from coldchain.config import Settings
from coldchain.core.alert import Alert, Transition, alert_id
from coldchain.core.records import BagEvent, BagEventKind, ShakeReading, TemperatureReading
from coldchain.core.rules import RulesEngine
from coldchain.core.signature import Signer
from coldchain.core.signoff import Acknowledgement

T0 = datetime(2026, 11, 30, 2, 10, tzinfo=UTC)

UNITS: list[dict[str, Any]] = [
    {"id": "fridge-a", "site": "main-pharmacy", "name": "Infusion fridge A"},
    {
        "id": "fridge-b",
        "site": "main-pharmacy",
        "offline_after": "5m",
        "overrides": {"max_celsius": 6.0, "diluted_use_within": "4h", "bag_warning_before": "30m"},
    },
]
SENSORS: list[dict[str, Any]] = [
    {"id": "t-001", "unit": "fridge-a", "kind": "temperature"},
    {"id": "s-001", "unit": "fridge-a", "kind": "shake"},
    {"id": "t-002", "unit": "fridge-b", "kind": "temperature"},
]


def settings_with(*sensors: str) -> Settings:
    """The test inventory (both units) with only the sensors named."""
    chosen = [sensor for sensor in SENSORS if sensor["id"] in sensors]
    return Settings(units=UNITS, sensors=chosen)


def when(offset: str) -> datetime:
    """``"mm:ss"`` or ``"h:mm:ss[.fff]"`` after T0."""
    parts = offset.split(":")
    hours = int(parts[0]) if len(parts) == 3 else 0
    return T0 + timedelta(hours=hours, minutes=int(parts[-2]), seconds=float(parts[-1]))


def label(ts: datetime | None) -> str | None:
    """The offset of ``ts`` from T0, written like the tables write it."""
    if ts is None:
        return None
    millis = (ts - T0) // timedelta(milliseconds=1)
    seconds, ms = divmod(millis, 1000)
    hours, rest = divmod(seconds, 3600)
    text = f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{ms:03d}" if ms else text


@dataclass(frozen=True)
class Step:
    """One call into the engine: records observed at ``now``, or a tick at ``now``."""

    now: datetime
    records: tuple[TemperatureReading | ShakeReading | BagEvent, ...] = ()
    tick: bool = False

    def run(self, engine: RulesEngine) -> list[Transition]:
        return engine.tick(self.now) if self.tick else engine.observe(list(self.records), self.now)


def temp(at: str, celsius: float, sensor: str = "t-001", now: str | None = None) -> Step:
    unit = "fridge-b" if sensor == "t-002" else "fridge-a"
    reading = TemperatureReading(sensor, unit, "main-pharmacy", when(at), celsius)
    return Step(when(now or at), (reading,))


def shake(at: str, peak_g: float, now: str | None = None) -> Step:
    return Step(when(now or at), (ShakeReading("s-001", "fridge-a", "main-pharmacy", when(at), peak_g),))


def bag(at: str, event: BagEventKind, name: str = "B-0042", unit: str = "fridge-a", now: str | None = None) -> Step:
    record = BagEvent(name, event, when(at), unit, "main-pharmacy", "natalizumab", "L123", "j.doe")
    return Step(when(now or at), (record,))


def tick(at: str) -> Step:
    return Step(when(at), tick=True)


def upload(now: str, *steps: Step) -> Step:
    """All the steps' records in one call at ``now`` (a buffered upload)."""
    return Step(when(now), tuple(record for step in steps for record in step.records))


Summary = tuple[str, str, str | None, str | None]


def summary(transition: Transition) -> Summary:
    alert = transition.alert
    if transition.change == "resolved":
        assert alert.state == "resolved" and alert.resolved_at == alert.updated_at
    else:
        assert alert.state == "open" and alert.resolved_at is None
    return (transition.change, alert.kind, label(alert.started_at), label(alert.updated_at))


def play(steps: list[Step], *sensors: str, engine: RulesEngine | None = None) -> list[Transition]:
    engine = engine or RulesEngine(settings_with(*(sensors or ("t-001",))).frozen_inventory())
    return [transition for step in steps for transition in step.run(engine)]


def opened(kind: str, started: str, updated: str) -> Summary:
    return ("opened", kind, started, updated)


def resolved(kind: str, started: str, at: str) -> Summary:
    return ("resolved", kind, started, at)


HIGH, LOW, FREEZING = "temperature_high", "temperature_low", "freezing"

TEMPERATURE_CASES = [
    pytest.param(
        [temp("00:00", 8.0), temp("10:00", 8.0), temp("20:00", 8.0), temp("30:00", 2.0), temp("50:00", 2.0)],
        [],
        id="2.0 and 8.0 are in range",
    ),
    pytest.param(
        [temp("00:00", 8.5), temp("05:00", 9.6), temp("10:00", 9.0), temp("15:00", 8.8)],
        [opened(HIGH, "00:00", "15:00")],
        id="above 8.0 for 15 min opens, started at the first reading",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("14:59", 9.0), temp("15:00", 7.0)],
        [],
        id="blip one second shorter than the delay does not open",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("15:00", 9.0)],
        [opened(HIGH, "00:00", "15:00")],
        id="a reading exactly at the delay opens",
    ),
    pytest.param(
        [temp(f"{m:02d}:{s:02d}", 8.1 if (m * 60 + s) % 300 == 0 else 7.9) for m in range(60) for s in (0, 30)],
        [],
        id="flapping around 8.0 never stays out for the delay",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("20:00", 9.0)],
        [opened(HIGH, "00:00", "20:00")],
        id="a gap without an in-range reading does not break the run",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("10:00", 7.0), temp("16:00", 9.0), temp("30:00", 9.0)],
        [],
        id="one in-range reading ends the run; the next run starts over",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("15:00", 9.0), temp("16:00", 7.0), temp("20:59", 7.0), temp("21:00", 7.0)],
        [opened(HIGH, "00:00", "15:00"), resolved(HIGH, "00:00", "21:00")],
        id="resolves at the first in-range reading clear_after into the clearing",
    ),
    pytest.param(
        [
            temp("00:00", 9.0),
            temp("15:00", 9.0),
            temp("16:00", 7.0),
            temp("18:00", 8.2),
            temp("19:00", 7.0),
            temp("23:00", 7.0),
            temp("24:00", 7.0),
        ],
        [opened(HIGH, "00:00", "15:00"), resolved(HIGH, "00:00", "24:00")],
        id="an out-of-range reading restarts the clearing",
    ),
    pytest.param(
        [temp("00:00", 1.5), temp("15:00", 1.9)],
        [opened(LOW, "00:00", "15:00")],
        id="below 2.0 and above 0.0 for 15 min is low",
    ),
    pytest.param(
        [temp("00:00", 0.0)],
        [opened(FREEZING, "00:00", "00:00")],
        id="0.0 is freezing, at once",
    ),
    pytest.param(
        [temp("00:00", 0.1), temp("15:00", 0.1)],
        [opened(LOW, "00:00", "15:00")],
        id="0.1 is low, not freezing",
    ),
    pytest.param(
        [temp("00:00", -1.0), temp("15:00", -1.0), temp("30:00", -1.0)],
        [opened(FREEZING, "00:00", "00:00")],
        id="freezing readings alone never start temperature_low",
    ),
    pytest.param(
        [temp("00:00", 1.0), temp("05:00", 0.0), temp("15:00", 1.0)],
        [opened(FREEZING, "05:00", "05:00"), opened(LOW, "00:00", "15:00")],
        id="1.0, 0.0, 1.0: a freezing reading keeps the low run going",
    ),
    pytest.param(
        [temp("00:00", 1.0), temp("15:00", -0.5)],
        [opened(FREEZING, "15:00", "15:00"), opened(LOW, "00:00", "15:00")],
        id="a freezing reading inside a low run can confirm it",
    ),
    pytest.param(
        [temp("00:00", 0.0), temp("05:00", 1.0), temp("19:59", 1.0), temp("20:00", 1.0)],
        [opened(FREEZING, "00:00", "00:00"), resolved(FREEZING, "00:00", "19:59"), opened(LOW, "05:00", "20:00")],
        id="low run starts at the first low reading after freezing; low readings clear freezing",
    ),
    pytest.param(
        [temp("00:00", -0.5), temp("01:00", 0.5), temp("05:59", 0.5), temp("06:00", 0.5)],
        [opened(FREEZING, "00:00", "00:00"), resolved(FREEZING, "00:00", "06:00")],
        id="freezing resolves after 5 min above 0.0, not one second earlier",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("15:00", 9.0), temp("16:00", 1.0), temp("31:00", 1.0), temp("40:00", 1.0)],
        [opened(HIGH, "00:00", "15:00"), opened(LOW, "16:00", "31:00")],
        id="a jump from high to low: high needs in-range readings to clear",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("15:00", 9.0), temp("20:00", 7.0), tick("59:00"), temp("1:00:00", 7.0)],
        [
            opened(HIGH, "00:00", "15:00"),
            opened("sensor_offline", "20:00", "35:00"),
            resolved("sensor_offline", "20:00", "1:00:00"),
            resolved(HIGH, "00:00", "1:00:00"),
        ],
        id="temperature never resolves by the clock; silence opens sensor_offline instead",
    ),
]


@pytest.mark.parametrize(("steps", "expected"), TEMPERATURE_CASES)
def test_temperature_rules(steps: list[Step], expected: list[Summary]) -> None:
    """Temperature excursions open and resolve at the readings that prove them."""
    assert [summary(t) for t in play(steps)] == expected


def test_unit_overrides_apply() -> None:
    """A unit's profile overrides (fridge-b: max 6.0 °C) change its sensors' thresholds."""
    steps = [temp("00:00", 6.5, "t-002"), temp("15:00", 6.5, "t-002")]
    assert [summary(t) for t in play(steps, "t-002")] == [opened(HIGH, "00:00", "15:00")]


def test_contract_example_payload() -> None:
    """The contract's example alert comes out field for field."""
    engine = RulesEngine(settings_with("t-001").frozen_inventory())
    engine.observe([BagEvent("B-0042", "diluted", T0, "fridge-a", "main-pharmacy", None, None, None)], T0)
    steps = [temp("00:00", 8.5), temp("05:00", 9.6), temp("10:00", 9.1), temp("15:00", 8.8)]
    (transition,) = play(steps, engine=engine)
    assert transition.alert.to_payload() == {
        "id": alert_id("temperature_high", "t-001", T0),
        "kind": "temperature_high",
        "subject": "t-001",
        "state": "open",
        "severity": "critical",
        "site": "main-pharmacy",
        "unit": "fridge-a",
        "sensor": "t-001",
        "bag": None,
        "started_at": "2026-11-30T02:10:00Z",
        "updated_at": "2026-11-30T02:25:00Z",
        "resolved_at": None,
        "value": 9.6,
        "message": "Infusion fridge A above 8.0 °C for 15 min (peak 9.6 °C)",
        "acknowledged_by": None,
        "note": None,
        "affected_bags": ["B-0042"],
        # additions to the contract's example (backward compatible): the acknowledgement's details
        "disposition": None,
        "acknowledged_at": None,
        # the electronic signature of the disposition (issue 17), and every acknowledgement
        "signed_by": None,
        "signed_by_full_name": None,
        "signed_at": None,
        "signature_meaning": None,
        "signature": None,
        "history": [],
    }
    assert len(transition.alert.id) == 20


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        pytest.param(T0, "2026-11-30T02:10:00Z", id="whole seconds: no fraction"),
        pytest.param(T0 + timedelta(milliseconds=7), "2026-11-30T02:10:00.007Z", id="milliseconds when non-zero"),
        pytest.param(T0.astimezone(timezone(timedelta(hours=1))), "2026-11-30T02:10:00Z", id="rendered in UTC"),
    ],
)
def test_payload_times(ts: datetime, text: str) -> None:
    """Payload times are RFC 3339 UTC with Z, milliseconds only when non-zero."""
    alert = Alert("x", "freezing", "t-001", "open", "critical", "s", "u", "t-001", None, ts, ts, None, -1.0, "m")
    payload = alert.to_payload()
    assert payload["started_at"] == text
    assert Alert.from_payload(json.loads(json.dumps(payload))) == alert


def test_peak_values() -> None:
    """``value`` is the peak so far: at opening, then over the whole episode at resolution."""
    steps = [temp("00:00", 9.0), temp("15:00", 9.5), temp("20:00", 11.2), temp("21:00", 7.0), temp("26:00", 7.0)]
    first, last = play(steps)
    assert (first.alert.value, last.alert.value) == (9.5, 11.2)
    assert (
        last.alert.message == "Infusion fridge A back in range (2.0 to 8.0 °C) after 21 min above 8.0 °C (peak 11.2 °C)"
    )
    lows = play([temp("00:00", 1.5), temp("07:00", -0.4), temp("15:00", 1.0)])
    assert [(t.alert.kind, t.alert.value) for t in lows] == [(FREEZING, -0.4), (LOW, -0.4)]


FAIL_SAFE_CASES = [
    pytest.param(
        [temp("00:00", 9.0), tick("14:59")],
        [],
        id="not before the delay has passed by the clock",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("05:00", 9.0, now="05:00"), tick("20:00")],
        [opened(HIGH, "00:00", "15:00"), opened("sensor_offline", "05:00", "20:00")],
        id="the last reading is out and nothing follows: opens at first + delay, not at the tick",
    ),
    pytest.param(
        [temp("00:00", 1.0), temp("10:00", -0.5), tick("15:00")],
        [opened(FREEZING, "10:00", "10:00"), opened(LOW, "00:00", "15:00")],
        id="low fail-safe, the run kept going by a freezing reading",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("10:00", 7.0), tick("15:00")],
        [],
        id="an in-range reading before the delay ended the run",
    ),
    pytest.param(
        [
            temp("00:00", 9.0),
            tick("15:00"),
            upload("16:00", temp("05:00", 7.0), temp("09:00", 7.0), temp("10:00", 7.0)),
        ],
        [
            opened(HIGH, "00:00", "15:00"),
            opened("sensor_offline", "00:00", "15:00"),
            resolved("sensor_offline", "00:00", "16:00"),
            resolved(HIGH, "00:00", "10:00"),
        ],
        id="opened by the clock, then a buffered upload shows it back in range: resolved at the true time",
    ),
]


@pytest.mark.parametrize(("steps", "expected"), FAIL_SAFE_CASES)
def test_fail_safe(steps: list[Step], expected: list[Summary]) -> None:
    """An excursion whose last reading is out of range opens by the clock after the delay."""
    transitions = play(steps)
    assert [summary(t) for t in transitions] == expected
    for t in transitions:
        if t.alert.kind == HIGH and t.change == "opened":
            assert "no reading since" in t.alert.message


AGITATION = "agitation"

AGITATION_CASES = [
    pytest.param([shake("00:00", 0.5)], [opened(AGITATION, "00:00", "00:00")], id="peak_g exactly 0.5 opens"),
    pytest.param([shake("00:00", 0.49), shake("01:00", 0.1)], [], id="below 0.5 never opens"),
    pytest.param(
        [shake("00:00", 0.6), shake("04:59", 0.1), shake("05:00", 0.1)],
        [opened(AGITATION, "00:00", "00:00"), resolved(AGITATION, "00:00", "05:00")],
        id="quiet for 5 min resolves, decided by a later reading",
    ),
    pytest.param(
        [shake("00:00", 0.6), shake("02:00", 0.9), shake("30:00", 0.0)],
        [opened(AGITATION, "00:00", "00:00"), resolved(AGITATION, "00:00", "07:00")],
        id="resolved_at is the last hit + 5 min, not the late reading's ts",
    ),
    pytest.param(
        [shake("00:00", 0.6), shake("04:59", 0.6), shake("09:58", 0.1)],
        [opened(AGITATION, "00:00", "00:00")],
        id="a hit within 5 min extends the episode",
    ),
    pytest.param(
        [shake("00:00", 0.6), shake("05:00", 0.7)],
        [
            opened(AGITATION, "00:00", "00:00"),
            resolved(AGITATION, "00:00", "05:00"),
            opened(AGITATION, "05:00", "05:00"),
        ],
        id="a hit exactly 5 min after the last starts a new episode",
    ),
    pytest.param(
        [shake("00:00", 0.6), tick("04:59"), tick("05:00")],
        [opened(AGITATION, "00:00", "00:00"), resolved(AGITATION, "00:00", "05:00")],
        id="resolves by the clock",
    ),
    pytest.param(
        [shake("00:00", 0.6), tick("05:00"), upload("06:00", shake("03:00", 0.8))],
        [
            opened(AGITATION, "00:00", "00:00"),
            resolved(AGITATION, "00:00", "05:00"),
            opened(AGITATION, "03:00", "03:00"),
        ],
        id="a buffered hit after a clock resolve is a new episode with its true start",
    ),
]


@pytest.mark.parametrize(("steps", "expected"), AGITATION_CASES)
def test_agitation(steps: list[Step], expected: list[Summary]) -> None:
    """Agitation opens at once at >= 0.5 g and resolves after 5 min without such a reading."""
    assert [summary(t) for t in play(steps, "s-001")] == expected


OFFLINE = "sensor_offline"

OFFLINE_CASES = [
    pytest.param(
        [tick("00:00"), tick("14:59"), tick("15:00")],
        [opened(OFFLINE, "00:00", "15:00")],
        id="never heard from: offline 15 min after the engine's first now",
    ),
    pytest.param(
        [temp("00:00", 5.0), tick("14:59"), tick("15:00"), tick("40:00")],
        [opened(OFFLINE, "00:00", "15:00")],
        id="15 min after the last reading, once",
    ),
    pytest.param(
        [temp("00:00", 5.0), tick("15:00"), temp("20:00", 5.0), tick("34:59"), tick("35:00")],
        [opened(OFFLINE, "00:00", "15:00"), resolved(OFFLINE, "00:00", "20:00"), opened(OFFLINE, "20:00", "35:00")],
        id="recovery: the next reading resolves it; silence again opens a new episode",
    ),
    pytest.param(
        [temp("00:00", 5.0), tick("20:00"), temp("05:00", 5.0, now="30:00"), tick("44:59"), tick("45:00")],
        [opened(OFFLINE, "00:00", "15:00"), resolved(OFFLINE, "00:00", "30:00"), opened(OFFLINE, "30:00", "45:00")],
        id="a buffered reading resolves at arrival; silence counts from the arrival",
    ),
    pytest.param(
        [temp("00:00", 5.0, now="00:00"), temp("00:00", 5.0, now="12:00"), tick("26:59")],
        [],
        id="a duplicate is still a message received",
    ),
]


@pytest.mark.parametrize(("steps", "expected"), OFFLINE_CASES)
def test_sensor_offline(steps: list[Step], expected: list[Summary]) -> None:
    """sensor_offline opens by the clock after offline_after of silence and resolves on the next reading."""
    transitions = play(steps)
    assert [summary(t) for t in transitions] == expected
    assert all(t.alert.severity == "warning" for t in transitions)


def test_offline_after_per_unit() -> None:
    """The unit's offline_after (fridge-b: 5m) is the silence that counts."""
    steps = [temp("00:00", 5.0, "t-002"), tick("04:59"), tick("05:00")]
    assert [summary(t) for t in play(steps, "t-002")] == [opened(OFFLINE, "00:00", "05:00")]


EXPIRING, EXPIRED, USED = "bag_expiring", "bag_expired", "bag_used_after_expiry"

BAG_CASES = [
    pytest.param(
        [bag("00:00", "diluted"), tick("6:59:59.999"), tick("7:00:00"), tick("7:59:59.999"), tick("8:00:00")],
        [opened(EXPIRING, "7:00:00", "7:00:00"), opened(EXPIRED, "8:00:00", "8:00:00")],
        id="expiring exactly at deadline - 1 h, expired exactly at the deadline, nothing a ms before",
    ),
    pytest.param(
        [
            bag("00:00", "diluted"),
            bag("6:30:00", "infusion_started"),
            bag("6:59:00", "infusion_completed"),
            tick("9:00:00"),
        ],
        [],
        id="completion before the warning stops the timer",
    ),
    pytest.param(
        [bag("00:00", "diluted"), tick("7:00:00"), bag("7:30:00", "discarded"), tick("9:00:00")],
        [opened(EXPIRING, "7:00:00", "7:00:00"), resolved(EXPIRING, "7:00:00", "7:30:00")],
        id="discard resolves expiring and stops the timer",
    ),
    pytest.param(
        [bag("00:00", "diluted"), tick("8:00:00"), bag("8:10:00", "discarded")],
        [
            opened(EXPIRING, "7:00:00", "7:00:00"),
            opened(EXPIRED, "8:00:00", "8:00:00"),
            resolved(EXPIRING, "7:00:00", "8:10:00"),
            resolved(EXPIRED, "8:00:00", "8:10:00"),
        ],
        id="expiring stays open after expired; discard resolves both",
    ),
    pytest.param(
        [bag("00:00", "diluted"), bag("7:00:00", "infusion_completed")],
        [],
        id="completed exactly at the warning time: no warning",
    ),
    pytest.param(
        [bag("00:00", "diluted"), bag("8:00:00", "infusion_started")],
        [opened(EXPIRING, "7:00:00", "7:00:00"), opened(EXPIRED, "8:00:00", "8:00:00")],
        id="started exactly at the deadline is within 8 h: not used after expiry",
    ),
    pytest.param(
        [bag("00:00", "diluted"), tick("8:00:00"), bag("8:00:00.001", "infusion_started")],
        [
            opened(EXPIRING, "7:00:00", "7:00:00"),
            opened(EXPIRED, "8:00:00", "8:00:00"),
            opened(USED, "8:00:00.001", "8:00:00.001"),
        ],
        id="started a millisecond after the deadline",
    ),
    pytest.param(
        [bag("00:00", "diluted"), bag("8:30:00", "infusion_started"), bag("9:00:00", "infusion_completed")],
        [
            opened(EXPIRING, "7:00:00", "7:00:00"),
            opened(EXPIRED, "8:00:00", "8:00:00"),
            opened(USED, "8:30:00", "8:30:00"),
            resolved(EXPIRING, "7:00:00", "9:00:00"),
            resolved(EXPIRED, "8:00:00", "9:00:00"),
        ],
        id="events past the deadline reveal it with true times; used_after_expiry is not resolved by completion",
    ),
    pytest.param(
        [bag("00:00", "diluted"), tick("7:00:00"), bag("6:50:00", "infusion_completed", now="7:05:00")],
        [opened(EXPIRING, "7:00:00", "7:00:00"), resolved(EXPIRING, "7:00:00", "7:00:00")],
        id="a late completion predating the warning resolves it at its start",
    ),
    pytest.param(
        [upload("9:00:00", bag("8:00:00", "discarded"), bag("00:00", "diluted"))],
        [opened(EXPIRING, "7:00:00", "7:00:00"), resolved(EXPIRING, "7:00:00", "8:00:00")],
        id="an upload in any order is judged by ts; discarded exactly at the deadline",
    ),
    pytest.param(
        [bag("00:00", "diluted", unit="fridge-b"), tick("3:29:59.999"), tick("3:30:00"), tick("4:00:00")],
        [opened(EXPIRING, "3:30:00", "3:30:00"), opened(EXPIRED, "4:00:00", "4:00:00")],
        id="the unit's overrides set the deadline (4 h, warn 30 min before)",
    ),
]


@pytest.mark.parametrize(("steps", "expected"), BAG_CASES)
def test_bag_timers(steps: list[Step], expected: list[Summary]) -> None:
    """Bag timers run from dilution to completion or discard, by the clock and by event ts."""
    transitions = play(steps, engine=RulesEngine(settings_with().frozen_inventory()))
    assert [summary(t) for t in transitions] == expected
    severities = {t.alert.kind: t.alert.severity for t in transitions}
    assert severities.get(EXPIRING, "warning") == "warning"
    assert severities.get(EXPIRED, "critical") == severities.get(USED, "critical") == "critical"


def test_bag_event_counters() -> None:
    """Events of unknown bags, unknown units, repeats and impossible events change nothing and are counted."""
    engine = RulesEngine(settings_with().frozen_inventory())
    steps = [
        bag("00:00", "infusion_started", name="B-9"),
        bag("00:00", "diluted", unit="fridge-z"),
        bag("00:00", "diluted"),
        bag("00:00", "diluted"),
        bag("01:00", "discarded"),
        bag("02:00", "infusion_completed"),
    ]
    assert play(steps, engine=engine) == []
    assert (engine.stats.unknown_bag_events, engine.stats.unknown_unit_bag_events) == (1, 1)
    assert engine.stats.duplicate_bag_events == 1  # the same dilution again
    assert engine.stats.invalid_bag_events == 1  # a second end at another time
    assert engine.tick(when("9:00:00")) == []


def test_used_after_expiry_stays_open() -> None:
    """Only an acknowledgement resolves bag_used_after_expiry: the engine keeps it open."""
    engine = RulesEngine(settings_with().frozen_inventory())
    play([bag("00:00", "diluted"), bag("8:30:00", "infusion_started"), bag("9:00:00", "discarded")], engine=engine)
    engine.tick(when("30:00:00"))
    assert [alert.kind for alert in engine.open_alerts()] == [USED]


def test_affected_bags() -> None:
    """Sensor alerts list the unit's running bags at the transition's time, sorted; bag alerts list none."""
    engine = RulesEngine(settings_with("t-001", "t-002").frozen_inventory())
    steps = [
        bag("00:00", "diluted", name="B-2"),
        bag("00:00", "diluted", name="B-1"),
        bag("00:00", "diluted", name="B-3"),
        bag("00:00", "diluted", name="B-other", unit="fridge-b"),
        bag("10:00", "infusion_completed", name="B-3"),
        temp("00:00", 9.0),
        temp("15:00", 9.0),
        bag("18:00", "diluted", name="B-4"),
        bag("19:00", "discarded", name="B-1"),
        temp("20:00", 7.0),
        temp("25:00", 7.0),
    ]
    transitions = play(steps, engine=engine)
    assert [(t.change, t.alert.affected_bags) for t in transitions] == [
        ("opened", ("B-1", "B-2")),
        ("resolved", ("B-2", "B-4")),
    ]
    later = engine.tick(when("7:00:00"))
    assert [(t.alert.kind, t.alert.subject, t.alert.affected_bags) for t in later] == [
        (OFFLINE, "t-002", ("B-other",)),  # fridge-b's bag only
        (OFFLINE, "t-001", ("B-2", "B-4")),
        (EXPIRING, "B-other", ()),  # bag alerts list no bags
        (EXPIRED, "B-other", ()),
        (EXPIRING, "B-2", ()),
    ]


def test_buffered_upload_reveals_past_excursion() -> None:
    """An upload in any order that holds a whole past excursion opens and resolves it with its true times."""
    readings = [temp(f"{m:02d}:00", 9.0 if m <= 20 else 7.0) for m in range(31)]
    random.Random(4).shuffle(readings)
    transitions = play([upload("45:00", *readings)])
    assert [summary(t) for t in transitions] == [opened(HIGH, "00:00", "15:00"), resolved(HIGH, "00:00", "26:00")]
    assert transitions[0].alert.id == transitions[1].alert.id
    assert label(transitions[1].alert.resolved_at) == "26:00"


def test_out_of_order_within_a_call() -> None:
    """Readings of one call are judged in ts order, whatever order they come in."""
    assert [summary(t) for t in play([upload("15:00", temp("15:00", 9.0), temp("00:00", 9.0))])] == [
        opened(HIGH, "00:00", "15:00")
    ]


def test_late_readings_do_not_change_decided_episodes() -> None:
    """Readings older than the newest judged are counted, not judged: they cannot reopen an episode."""
    engine = RulesEngine(settings_with("t-001").frozen_inventory())
    steps = [temp("00:00", 9.0), temp("15:00", 9.0), temp("16:00", 7.0), temp("21:00", 7.0)]
    assert len(play(steps, engine=engine)) == 2
    late = [temp(f"{m:02d}:30", 12.0, now="22:00") for m in range(0, 21, 2)]
    assert play([*late, temp("21:00", 12.0, now="22:00")], engine=engine) == []
    assert (engine.stats.late_readings, engine.stats.duplicate_readings) == (11, 1)
    assert engine.open_alerts() == []


def test_unknown_sensor_is_counted() -> None:
    """Readings of sensors not in the inventory are ignored and counted."""
    engine = RulesEngine(settings_with("t-001").frozen_inventory())
    assert play([temp("00:00", 20.0, sensor="t-002"), shake("00:00", 3.0)], engine=engine) == []
    assert engine.stats.unknown_sensor_readings == 2


def test_ids_are_deterministic() -> None:
    """Two engines fed the same input mint the same ids; each id is kind + subject + start."""
    steps = [temp("00:00", 9.0), temp("15:00", 9.0), temp("16:00", 7.0), temp("21:00", 7.0)]
    steps += [temp("30:00", 9.0), temp("45:00", 9.0)]
    first, second = play(steps), play(steps)
    assert [t.alert.id for t in first] == [t.alert.id for t in second]
    assert [t.alert.id for t in first] == [
        alert_id(HIGH, "t-001", when("00:00")),
        alert_id(HIGH, "t-001", when("00:00")),
        alert_id(HIGH, "t-001", when("30:00")),
    ]
    assert first[0].alert.id != first[2].alert.id


def _roundtrip(engine: RulesEngine) -> RulesEngine:
    return RulesEngine.restore(engine.inventory, json.loads(json.dumps(engine.snapshot())))


SNAPSHOT_CASES = [
    pytest.param(
        [temp("00:00", 9.0), temp("10:00", 9.5)],
        [temp("15:00", 9.2), temp("16:00", 7.0), temp("21:00", 7.0)],
        id="mid pending excursion: the run continues",
    ),
    pytest.param(
        [temp("00:00", 9.0), temp("15:00", 9.5), temp("16:00", 7.0)],
        [temp("21:00", 7.0)],
        id="mid clearing: the same id resolves",
    ),
    pytest.param(
        [temp("00:00", 9.0)],
        [tick("15:00")],
        id="fail-safe survives a restart",
    ),
    pytest.param(
        [bag("00:00", "diluted"), tick("7:00:00")],
        [tick("8:00:00"), bag("8:30:00", "discarded")],
        id="mid bag timer: expired opens, both resolve with their ids",
    ),
    pytest.param(
        [shake("00:00", 0.7), tick("01:00")],
        [tick("05:00")],
        id="agitation calms down after a restart",
    ),
    pytest.param(
        [],
        [tick("00:00"), tick("15:00")],
        id="before any call: the silence starts at the first now after restore",
    ),
]


@pytest.mark.parametrize(("before", "after"), SNAPSHOT_CASES)
def test_snapshot_restore(before: list[Step], after: list[Step]) -> None:
    """A restored engine continues exactly like the one that was never stopped."""
    settings = settings_with("t-001", "s-001")
    straight, stopped = RulesEngine(settings.frozen_inventory()), RulesEngine(settings.frozen_inventory())
    play(before, engine=straight)
    play(before, engine=stopped)
    restored = _roundtrip(stopped)
    assert restored.snapshot() == stopped.snapshot()
    expected = play(after, engine=straight)
    assert expected, "the case must cause transitions after the restart"
    assert play(after, engine=restored) == expected
    assert restored.open_alerts() == straight.open_alerts()
    assert restored.snapshot() == straight.snapshot()


def test_restore_drops_sensors_no_longer_in_inventory() -> None:
    """State and open alerts of a removed sensor are dropped; the rest survives."""
    engine = RulesEngine(settings_with("t-001", "s-001").frozen_inventory())
    play([temp("00:00", -1.0), shake("00:00", 0.9)], engine=engine)
    restored = RulesEngine.restore(settings_with("s-001").frozen_inventory(), json.loads(json.dumps(engine.snapshot())))
    assert [alert.kind for alert in restored.open_alerts()] == [AGITATION]


def test_snapshot_version_is_checked() -> None:
    """A snapshot of another format is refused rather than misread."""
    with pytest.raises(ValueError, match="version"):
        RulesEngine.restore(settings_with().frozen_inventory(), {"version": 99})


def test_now_must_be_aware() -> None:
    """A naive now is a caller bug and is refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        RulesEngine(settings_with().frozen_inventory()).tick(datetime(2026, 11, 30))


def test_acknowledgement_keeps_the_alert_active_until_it_clears() -> None:
    """An acknowledged excursion stays acknowledged, and its resolve keeps who acknowledged it."""
    engine = RulesEngine(settings_with("t-001").frozen_inventory())
    (opened_t,) = engine.observe([reading("t-001", T0, -1.0)], T0)
    signer = Signer("j.doe", "Jane Doe, PharmD")
    acked = engine.acknowledge(
        Acknowledgement(opened_t.alert.id, "j.doe", "moved stock", "quarantined", signer), T0 + timedelta(minutes=1)
    )
    assert acked is not None and acked.change == "updated"
    assert (acked.alert.state, acked.alert.acknowledged_by, acked.alert.disposition) == (
        "acknowledged",
        "j.doe",
        "quarantined",
    )
    assert engine.open_alerts()[0].state == "acknowledged"
    later = [reading("t-001", T0 + timedelta(minutes=m), 4.0) for m in (2, 8)]
    (resolved_t,) = engine.observe(later, T0 + timedelta(minutes=8))
    assert resolved_t.alert.state == "resolved" and resolved_t.alert.acknowledged_by == "j.doe"
    assert engine.acknowledge(Acknowledgement(opened_t.alert.id, "j.doe"), T0 + timedelta(hours=1)) is None


def test_acknowledgement_resolves_use_after_expiry() -> None:
    """bag_used_after_expiry resolves only when acknowledged."""
    engine = RulesEngine(settings_with("t-001").frozen_inventory())
    events = [
        BagEvent("B-1", "diluted", T0, "fridge-a", "main-pharmacy", None, None, None),
        BagEvent("B-1", "infusion_started", T0 + timedelta(hours=9), None, None, None, None, None),
    ]
    transitions = engine.observe(events, T0 + timedelta(hours=9))
    used = next(t.alert for t in transitions if t.alert.kind == "bag_used_after_expiry")
    done = engine.acknowledge(Acknowledgement(used.id, "a.smith", "patient informed"), T0 + timedelta(hours=10))
    assert done is not None and done.change == "resolved"
    assert done.alert.resolved_at == T0 + timedelta(hours=10) and done.alert.acknowledged_by == "a.smith"
    assert all(alert.kind != "bag_used_after_expiry" for alert in engine.open_alerts())


def reading(sensor: str, ts: datetime, celsius: float) -> TemperatureReading:
    return TemperatureReading(sensor, "fridge-a", "main-pharmacy", ts, celsius)
