"""Realistic sensor traffic for an inventory: signal models, a scripted scenario, and a publisher.

Pure core (no I/O, no clock): the signal models are functions of simulated time (seconds since
the scenario began) and a seeded RNG, and ``build_scenario`` turns an inventory into the whole
list of MQTT messages it will publish, each with its simulated time, so the same seed always
gives the same traffic:

- **Compressor cycling**: the air temperature falls while the compressor runs and rises while it
  rests, between about 3.8 and 6.2 °C every 30 minutes, plus sensor noise (standard deviation 0.05 °C).
- **Door openings**: a few short ones an hour; the air heads for the room's 21 °C (time constant 10 min)
  while the door is open and settles back (5 min) after, so a 45-second opening adds about 1 °C.
  Closing the door shows on the shake sensor as a small jolt.
- **Defrost**: every 6 hours for 20 minutes, a bump of up to 1.2 °C.

Scripted incidents, at fixed offsets (``INCIDENTS``), each producing the alert named:

====== ================================================================ =========================
offset incident                                                         alert
====== ================================================================ =========================
0:10   bag B-1003 diluted in the second unit and then forgotten         ``bag_expiring`` (7:10),
                                                                        ``bag_expired`` (8:10)
0:20   bag B-1001 diluted in the first unit; started 1:00, done 2:40    none (used in time)
0:45   bag B-1002 diluted in the second unit; started 5:00, done 6:30   none (used in time)
1:10   the first unit's door left open for 25 minutes                   ``temperature_high``
2:00   the second unit's thermostat fails: compressor stuck on, 35 min  ``temperature_low``,
                                                                        ``freezing``
3:30   a cart bumps the first unit (1.3 g, then 0.6 g)                  ``agitation``
4:00   the second unit's temperature probe battery dies; replaced 4:45  ``sensor_offline``
====== ================================================================ =========================

The scenario lasts ``SCENARIO_LENGTH`` (8 h 20 min). ``SimClock`` runs it ``speed`` times faster
than the wall clock and *in the past*: it starts ``SCENARIO_LENGTH * (1 - 1/speed)`` before now,
so the last message's ``ts`` is now and none is ever in the future (ingest rejects ``ts`` more than
5 minutes ahead). A service that shares the ``SimClock`` (``coldchain demo``) sees event time and
its own clock advance together; the clock stops at the scenario's end.

The publisher edge (``Publisher``) sends the contract's payloads over MQTT, QoS 1, on time.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho

from coldchain.adapters.mqtt import PublishError, new_client
from coldchain.config import MqttConfig, Settings
from coldchain.contract.topics import Topics
from coldchain.core.times import format_time

log = logging.getLogger("coldchain.simulate")

SCENARIO_LENGTH = timedelta(hours=8, minutes=20)
SAMPLE_EVERY = 60.0
"""Seconds of simulated time between two readings of a sensor."""

ROOM_CELSIUS = 21.0
FAULT_CELSIUS = -2.0
"""Where a fridge whose compressor never stops heads for."""
OPEN_TAU = 600.0
CLOSE_TAU = 300.0
NOISE_CELSIUS = 0.05

MINUTE = 60.0
HOUR = 3600.0


# -- the signal models (pure) -------------------------------------------------------------------


def compressor(t: float, period: float = 30 * MINUTE, low: float = 3.8, high: float = 6.2, phase: float = 0.0) -> float:
    """Air temperature of a healthy fridge from its compressor cycle: on 40% of the period (falling), then off."""
    x = (t / period + phase) % 1.0
    duty = 0.4
    if x < duty:
        return high - (high - low) * x / duty
    return low + (high - low) * (x - duty) / (1 - duty)


def defrost(t: float, every: float = 6 * HOUR, length: float = 20 * MINUTE, bump: float = 1.2) -> float:
    """Extra warmth of a defrost cycle: a half-sine bump of ``length`` every ``every`` seconds."""
    x = t % every
    if x >= length:
        return 0.0
    return bump * math.sin(math.pi * x / length)


@dataclass(frozen=True, slots=True)
class Window:
    """Something that pulls the air towards a temperature from ``start`` to ``end`` (seconds)."""

    start: float
    end: float


def pull(t: float, windows: Iterable[Window], tau_on: float, tau_off: float) -> float:
    """How far (0..1) the windows have pulled the air towards their temperature at ``t``.

    While a window is on, the pull approaches 1 with time constant ``tau_on``; after it ends, what
    was reached fades with ``tau_off``. Overlapping effects add up, capped at 1.
    """
    total = 0.0
    for window in windows:
        if t < window.start:
            continue
        if t <= window.end:
            total += 1 - math.exp(-(t - window.start) / tau_on)
        else:
            reached = 1 - math.exp(-(window.end - window.start) / tau_on)
            total += reached * math.exp(-(t - window.end) / tau_off)
    return min(total, 1.0)


@dataclass(frozen=True, slots=True)
class FridgeModel:
    """One fridge's air: compressor phase, door openings, thermostat faults; ``celsius(t)`` is pure."""

    phase: float = 0.0
    doors: tuple[Window, ...] = ()
    faults: tuple[Window, ...] = ()

    def celsius(self, t: float, noise: float = 0.0) -> float:
        """The air temperature at ``t`` plus ``noise`` (the caller's seeded draw)."""
        value = compressor(t, phase=self.phase) + defrost(t + self.phase * HOUR)
        value += (ROOM_CELSIUS - value) * pull(t, self.doors, OPEN_TAU, CLOSE_TAU)
        value += (FAULT_CELSIUS - value) * pull(t, self.faults, OPEN_TAU, CLOSE_TAU)
        return value + noise


def door_openings(rng: random.Random, length: float, per_hour: float = 3.0) -> list[Window]:
    """Short openings (20 to 60 s) at random times, ``per_hour`` on average."""
    openings: list[Window] = []
    t = rng.expovariate(per_hour / HOUR)
    while t < length:
        openings.append(Window(t, t + rng.uniform(20, 60)))
        t += rng.expovariate(per_hour / HOUR)
    return openings


# -- the scenario (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message of the scenario, due at simulated time ``at``."""

    at: datetime
    topic: str
    payload: dict[str, Any]

    def body(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Incident:
    """A scripted incident: when (seconds from the start), what, and the alert kinds it should raise."""

    at: float
    what: str
    alerts: tuple[str, ...] = ()


INCIDENTS: tuple[Incident, ...] = (
    Incident(10 * MINUTE, "bag B-1003 diluted in unit 2, then forgotten", ("bag_expiring", "bag_expired")),
    Incident(20 * MINUTE, "bag B-1001 diluted in unit 1, used in time"),
    Incident(45 * MINUTE, "bag B-1002 diluted in unit 2, used in time"),
    Incident(1 * HOUR + 10 * MINUTE, "unit 1: door left open for 25 minutes", ("temperature_high",)),
    Incident(2 * HOUR, "unit 2: thermostat fault, compressor stuck on for 35 minutes", ("temperature_low", "freezing")),
    Incident(3 * HOUR + 30 * MINUTE, "unit 1: a cart bumps the fridge", ("agitation",)),
    Incident(4 * HOUR, "unit 2: temperature probe battery dead until 4:45", ("sensor_offline",)),
)
EXPECTED_ALERTS: frozenset[str] = frozenset(kind for incident in INCIDENTS for kind in incident.alerts)
"""Every alert kind the scenario raises (given at least two units, each with a temperature and a shake sensor)."""

DOOR_LEFT_OPEN = Window(1 * HOUR + 10 * MINUTE, 1 * HOUR + 35 * MINUTE)
THERMOSTAT_FAULT = Window(2 * HOUR, 2 * HOUR + 35 * MINUTE)
CART_BUMP = (3 * HOUR + 30 * MINUTE, (1.3, 0.6))
DEAD_BATTERY = Window(4 * HOUR, 4 * HOUR + 45 * MINUTE)
BAGS: tuple[tuple[str, int, tuple[tuple[float, str], ...]], ...] = (
    # bag, unit index, its events (seconds from the start)
    ("B-1003", 1, ((10 * MINUTE, "diluted"),)),
    (
        "B-1001",
        0,
        ((20 * MINUTE, "diluted"), (HOUR, "infusion_started"), (160 * MINUTE, "infusion_completed")),
    ),
    ("B-1002", 1, ((45 * MINUTE, "diluted"), (5 * HOUR, "infusion_started"), (6.5 * HOUR, "infusion_completed"))),
)


@dataclass(slots=True)
class _Unit:
    id: str
    temperature: list[str] = field(default_factory=list)
    shake: list[str] = field(default_factory=list)


def _units(settings: Settings) -> list[_Unit]:
    units = {unit.id: _Unit(unit.id) for unit in settings.units}
    for sensor in settings.sensors:
        getattr(units[sensor.unit], sensor.kind).append(sensor.id)
    return list(units.values())


def build_scenario(settings: Settings, start: datetime, seed: int = 7) -> list[Message]:
    """Every message of the scenario for ``settings``' inventory, in time order, from ``start``.

    Incidents of "unit 1" happen in the first unit, those of "unit 2" in the second (the first when
    there is only one); an incident needing a sensor the unit lacks is left out.
    """
    rng = random.Random(seed)
    length = SCENARIO_LENGTH.total_seconds()
    topics = Topics(settings.mqtt.topic_prefix)
    units = _units(settings)
    if not units:
        return []
    first, second = units[0], units[1] if len(units) > 1 else units[0]
    messages: list[Message] = []

    def at(t: float) -> datetime:
        return start + timedelta(seconds=t)

    for unit in units:
        doors = door_openings(rng, length)
        if unit is first:
            doors.append(DOOR_LEFT_OPEN)
        model = FridgeModel(
            phase=rng.random(),
            doors=tuple(doors),
            faults=(THERMOSTAT_FAULT,) if unit is second else (),
        )
        for number, sensor in enumerate(unit.temperature):
            dead = DEAD_BATTERY if unit is second and number == 0 else None
            battery = rng.uniform(70, 95)
            offset = rng.uniform(0, SAMPLE_EVERY)
            for seq, t in enumerate(_ticks(offset, length)):
                if dead is not None and dead.start <= t < dead.end:
                    continue
                if dead is not None:
                    pct = 100.0 if t >= dead.end else max(1.0, 30.0 - 28.0 * t / dead.start)
                else:
                    pct = battery - 5.0 * t / length
                celsius = round(model.celsius(t, rng.gauss(0.0, NOISE_CELSIUS)), 2)
                payload = {"ts": format_time(at(t)), "celsius": celsius, "seq": seq, "battery_pct": round(pct, 1)}
                messages.append(Message(at(t), topics.sensor(sensor, "temperature"), payload))
        for number, sensor in enumerate(unit.shake):
            offset = rng.uniform(0, SAMPLE_EVERY)
            for seq, t in enumerate(_ticks(offset, length)):
                peak = 0.01 + abs(rng.gauss(0.0, 0.005))
                if any(door.end <= t < door.end + SAMPLE_EVERY for door in model.doors):
                    peak += rng.uniform(0.05, 0.15)  # the door closing
                if unit is first and number == 0:
                    bump_at, peaks = CART_BUMP
                    for step, bump in enumerate(peaks):
                        if bump_at + step * SAMPLE_EVERY <= t < bump_at + (step + 1) * SAMPLE_EVERY:
                            peak = bump
                payload = {"ts": format_time(at(t)), "peak_g": round(peak, 3), "seq": seq}
                messages.append(Message(at(t), topics.sensor(sensor, "shake"), payload))
    for bag, unit_index, events in BAGS:
        unit = second if unit_index else first
        for t, event in events:
            payload = {"ts": format_time(at(t)), "event": event, "by": "demo.nurse"}
            if event == "diluted":
                payload.update(unit=unit.id, lot="L2026-11")
            messages.append(Message(at(t), topics.bag_events(bag), payload))
    messages.sort(key=lambda message: message.at)
    return messages


def _ticks(offset: float, length: float) -> Iterable[float]:
    t = offset
    while t < length:
        yield t
        t += SAMPLE_EVERY


# -- the simulated clock --------------------------------------------------------------------------


class SimClock:
    """Simulated time: ``speed`` times the wall clock from ``start``, stopping at ``start + length``.

    ``start`` defaults to ``length * (1 - 1/speed)`` before now, so simulated time reaches the wall
    clock no earlier than when the scenario ends and never runs ahead of it. The clock stands at
    ``start`` until ``run()`` is called (so a service can connect first), and at ``end`` once there.
    """

    def __init__(
        self,
        speed: float,
        length: timedelta = SCENARIO_LENGTH,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if speed < 1:
            raise ValueError("speed must be at least 1")
        self.speed = speed
        self.length = length
        # whole seconds, so scripted events fall on round times; flooring keeps every ts before the wall clock
        self.start = start if start is not None else (wall() - length * (1 - 1 / speed)).replace(microsecond=0)
        self.end = self.start + length
        self._monotonic = monotonic
        self._origin: float | None = None

    def run(self) -> None:
        """Let simulated time pass from now on (again a no-op once running)."""
        if self._origin is None:
            self._origin = self._monotonic()

    def __call__(self) -> datetime:
        """The simulated now (aware UTC), between ``start`` and ``end``."""
        if self._origin is None:
            return self.start
        elapsed = (self._monotonic() - self._origin) * self.speed
        return min(self.start + timedelta(seconds=elapsed), self.end)

    def elapsed(self) -> timedelta:
        """Simulated time since ``start``."""
        return self() - self.start

    def wall_seconds_until(self, at: datetime) -> float:
        """Wall seconds until simulated time reaches ``at`` once running (0 if it has)."""
        return max(0.0, (at - self()).total_seconds() / self.speed)

    @property
    def finished(self) -> bool:
        return self() >= self.end


# -- the publisher edge ---------------------------------------------------------------------------


class Publisher:
    """Publishes messages on time by a ``SimClock``, QoS 1, like a fleet of sensors behind one gateway."""

    def __init__(self, config: MqttConfig, client_id: str | None = None) -> None:
        self._client = new_client(config, client_id or f"coldchain-sim-{uuid.uuid4().hex[:8]}")
        self._client.max_inflight_messages_set(1000)
        self._config = config
        self.sent = 0
        self._pending: list[paho.MQTTMessageInfo] = []

    def connect(self, timeout: float = 15.0) -> None:
        """Connect (retrying until ``timeout``: the broker may be starting) and start the network loop."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._client.connect(self._config.host, self._config.port, keepalive=30)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise PublishError(f"cannot reach the broker at {self._config.url}: {exc}") from exc
                time.sleep(0.2)
        self._client.loop_start()

    def run(self, messages: Sequence[Message], clock: SimClock, stop: threading.Event) -> int:
        """Publish each message once the clock reaches its time; the number sent (fewer if stopped)."""
        for message in messages:
            wait = clock.wall_seconds_until(message.at)
            if wait > 0 and stop.wait(wait):
                break
            if stop.is_set():
                break
            self._pending.append(self._client.publish(message.topic, message.body(), qos=1))
            self.sent += 1
            self._pending = [info for info in self._pending if not info.is_published()]
        return self.sent

    def flush(self, timeout: float = 15.0) -> None:
        """Wait until the broker acknowledged everything sent; PublishError after ``timeout``."""
        deadline = time.monotonic() + timeout
        for info in self._pending:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise PublishError(f"broker did not acknowledge {info.mid} within {timeout}s")
        self._pending = []

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


# -- command line ---------------------------------------------------------------------------------
