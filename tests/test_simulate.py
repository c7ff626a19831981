"""The simulator's pure parts: signal models, the scripted scenario as the rules judge it, the clock, the view."""

from __future__ import annotations

import io
import random
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from coldchain.config import Settings
from coldchain.contract.parser import MessageParser
from coldchain.core.alert import Alert
from coldchain.core.records import BagEvent, ShakeReading, TemperatureReading
from coldchain.core.rules import RulesEngine
from coldchain.demo.run import Snapshot, render
from coldchain.demo.simulate import (
    EXPECTED_ALERTS,
    HOUR,
    MINUTE,
    NOISE_CELSIUS,
    SCENARIO_LENGTH,
    FridgeModel,
    SimClock,
    Window,
    build_scenario,
    compressor,
    door_openings,
)
from tests.samples import DEMO_OPENED

START = datetime(2026, 11, 1, tzinfo=UTC)


def demo_settings() -> Settings:
    return Settings(**tomllib.loads(resources.files("coldchain.demo").joinpath("demo.toml").read_text("utf-8")))


def test_the_compressor_cycle_stays_between_its_bounds() -> None:
    """Without incidents the air swings between 3.8 and 6.2 °C, reaching both ends each cycle."""
    values = [compressor(t, phase=0.3) for t in range(0, 4 * 3600, 10)]
    assert 3.8 <= min(values) < 3.85 and 6.15 < max(values) <= 6.2


def test_a_healthy_fridge_stays_in_range_for_a_day() -> None:
    """Compressor, defrost and noise (no door opened) keep a day of readings within 2 to 8 °C."""
    rng = random.Random(1)
    model = FridgeModel(phase=0.6)
    values = [model.celsius(t, rng.gauss(0, NOISE_CELSIUS)) for t in range(0, 24 * 3600, 60)]
    assert min(values) > 2.0 and max(values) < 8.0


@pytest.mark.parametrize(
    ("doors", "at", "low", "high"),
    [
        ((Window(600, 645),), 645, 0.7, 1.5),  # a 45 s opening adds about 1 °C
        ((Window(600, 645),), 645 + 30 * 60, -0.1, 0.1),  # half an hour later it is gone
        ((Window(600, 600 + 25 * 60),), 600 + 25 * 60, 11.0, 16.0),  # left open 25 min: towards the room
    ],
)
def test_a_door_opening_warms_the_air(doors: tuple[Window, ...], at: float, low: float, high: float) -> None:
    """The warming a door opening adds, relative to the same fridge with its door shut."""
    delta = FridgeModel(doors=doors).celsius(at) - FridgeModel().celsius(at)
    assert low <= delta <= high


def test_a_thermostat_fault_freezes_the_air_and_recovery_follows() -> None:
    """A compressor stuck on drives the air below 0 °C within 20 minutes; 20 minutes after repair it is in range."""
    fault = Window(0, 35 * MINUTE)
    model = FridgeModel(faults=(fault,))
    assert model.celsius(20 * MINUTE) < 0.0
    assert 2.0 <= model.celsius(55 * MINUTE) <= 8.0


def test_door_openings_are_short_and_a_few_an_hour() -> None:
    """A seeded day has about three openings an hour, each 20 to 60 s."""
    openings = door_openings(random.Random(3), 24 * HOUR)
    assert 40 <= len(openings) <= 110
    assert all(20 <= w.end - w.start <= 60 for w in openings)


def test_the_scenario_is_deterministic_and_every_message_is_valid() -> None:
    """The same seed gives the same messages; every one of them parses without rejection, in time order."""
    settings = demo_settings()
    messages = build_scenario(settings, START, seed=11)
    assert messages == build_scenario(settings, START, seed=11)
    assert [m.at for m in messages] == sorted(m.at for m in messages)
    parser = MessageParser(settings)
    for message in messages:
        parsed = parser.parse(message.topic, message.body(), message.at + timedelta(seconds=1))
        assert isinstance(parsed, list), parsed
    assert messages[0].at >= START and messages[-1].at < START + SCENARIO_LENGTH


def test_the_scenario_raises_exactly_the_scripted_alerts() -> None:
    """Judged by the pure engine, clock ticking every 30 s, the scenario opens each scripted alert once, no other."""
    settings = demo_settings()
    messages = build_scenario(settings, START)
    parser = MessageParser(settings)
    engine = RulesEngine(settings.frozen_inventory())
    opened: list[Alert] = []
    now, index = START, 0
    while now <= START + SCENARIO_LENGTH:
        batch: list[TemperatureReading | ShakeReading | BagEvent] = []
        while index < len(messages) and messages[index].at <= now:
            parsed = parser.parse(messages[index].topic, messages[index].body(), now)
            assert isinstance(parsed, list)
            batch += parsed
            index += 1
        for transition in engine.observe(batch, now) + engine.tick(now):
            if transition.change == "opened":
                opened.append(transition.alert)
        now += timedelta(seconds=30)
    assert sorted((a.kind, a.subject) for a in opened) == DEMO_OPENED
    assert {a.kind for a in opened} == EXPECTED_ALERTS
    high = next(a for a in opened if a.kind == "temperature_high")
    assert high.affected_bags == ("B-1001",)  # diluted at 0:20, in fridge A while its door stood open


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_sim_clock_runs_in_the_past_and_stops_at_the_end() -> None:
    """It stands at start until run(), runs speed times the wall clock, ends at start + length, never after wall now."""
    fake = FakeTime()
    wall = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    clock = SimClock(600, length=timedelta(hours=10), monotonic=fake, wall=lambda: wall)
    assert clock.start == wall - timedelta(hours=10) + timedelta(minutes=1)  # 10 h * (1 - 1/600)
    fake.now += 5
    assert clock() == clock.start  # not running yet
    clock.run()
    fake.now += 30
    assert clock() == clock.start + timedelta(hours=5)
    assert clock.wall_seconds_until(clock.start + timedelta(hours=6)) == pytest.approx(6.0)
    fake.now += 30
    assert clock() == clock.end and clock.finished
    assert clock.end <= wall + timedelta(seconds=60)  # wall time by then: 60 s after start
    fake.now += 1000
    assert clock() == clock.end
    with pytest.raises(ValueError, match="speed"):
        SimClock(0.5)


def test_the_live_view_renders_units_alerts_and_bags() -> None:
    """The view of a snapshot names each unit with its state, the open alert and the bag's time left."""
    from rich.console import Console

    now = START + timedelta(hours=7, minutes=30)
    alert = Alert(
        "x1", "freezing", "t-002", "open", "critical", "demo", "fridge-b", "t-002", None,
        START + timedelta(hours=2), START + timedelta(hours=2), None, -1.8, "Fridge B at or below 0.0 °C",
    )  # fmt: skip
    snapshot = Snapshot(
        now=now,
        start=START,
        speed=600,
        units=[("fridge-a", "Infusion fridge A"), ("fridge-b", "Infusion fridge B")],
        sensors=[("t-001", "fridge-a", "temperature"), ("t-002", "fridge-b", "temperature")],
        latest={"t-001": {"time": now, "celsius": 4.25, "battery_pct": 81.0}},
        alerts=[alert],
        bags=[("B-1003", "fridge-b", START + timedelta(minutes=10), START + timedelta(hours=8, minutes=10))],
        notices=["12:00:00 [CRITICAL] Freezing — Infusion fridge B (t-002)"],
        published=1000,
        total=1962,
    )
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(render(snapshot))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Infusion fridge A" in text and "4.2 °C" in text and "81%" in text and " ok " in text
    assert "freezing" in text and "Fridge B at or below 0.0 °C" in text
    assert "B-1003" in text and "0:40" in text  # deadline 8:10, now 7:30
