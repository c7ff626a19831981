"""Supervised roles: a loop survives its exceptions, heartbeats feed readiness, a role that cannot recover is dead."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from coldchain.adapters.metrics import Metrics
from coldchain.roles.steady_clock import SteadyClock
from coldchain.roles.supervision import Supervisor


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def errors(metrics: Metrics, role: str) -> float:
    value = metrics.registry.get_sample_value("coldchain_role_errors_total", {"role": role})
    return value or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_loop_is_logged_counted_and_run_again(caplog: object) -> None:
    """Two exceptions: each logged with its traceback and counted; the loop runs a third time and stays up."""
    metrics = Metrics()
    supervisor = Supervisor(metrics, backoff_min=0.01)
    runs: list[int] = []
    stop = threading.Event()
    supervisor.settle = 0.05  # the loop that finally works stops counting as failing soon

    def loop() -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise RuntimeError(f"boom {len(runs)}")
        while not stop.is_set():
            supervisor.beat("ingest")
            stop.wait(0.01)

    supervisor.spawn("ingest", loop)
    until(lambda: len(runs) == 3)
    until(lambda: supervisor.problems() == [])
    assert errors(metrics, "ingest") == 2
    assert supervisor.check() == []
    assert "boom 2" in caplog.text and "Traceback" in caplog.text  # type: ignore[attr-defined]
    stop.set()


def test_a_failing_role_is_named_by_readiness_until_it_settles() -> None:
    """After a failure readiness names the role and the error, until it ran ``settle`` seconds without one."""
    clock = Clock()
    supervisor = Supervisor(Metrics(), clock=clock, backoff_min=30.0, settle=60)
    supervisor.spawn("rules", lambda: (_ for _ in ()).throw(ValueError("bad snapshot")))
    until(lambda: supervisor.problems() != [])
    [problem] = supervisor.problems()
    assert problem.startswith("role rules failing") and "bad snapshot" in problem
    clock.now += 61
    supervisor.beat("rules")
    assert supervisor.problems() == []
    supervisor.stop()


def test_a_late_heartbeat_fails_readiness_and_a_long_silence_is_death() -> None:
    """Heartbeat older than late_after: 503 naming the role; older than dead_after: the role is dead (exit)."""
    clock = Clock()
    supervisor = Supervisor(Metrics(), clock=clock)
    supervisor.register("ingest", late_after=10, dead_after=60)
    stop = threading.Event()
    supervisor.spawn("ingest", lambda: stop.wait(), late_after=10, dead_after=60)
    assert supervisor.problems() == []
    clock.now += 11
    assert supervisor.problems() == ["role ingest: heartbeat late (11 s)"]
    assert supervisor.check() == []
    clock.now += 50
    [dead] = supervisor.check()
    assert dead.startswith("role ingest dead: no heartbeat for 61 s")
    assert supervisor.dead() == [dead]
    stop.set()


def test_a_role_failing_every_time_cannot_recover() -> None:
    """fatal_after failures in a row without a heartbeat: the role is dead, so the service exits non-zero."""
    metrics = Metrics()
    supervisor = Supervisor(metrics, fatal_after=3, backoff_min=0.01)

    def loop() -> None:
        raise OSError("disk on fire")

    thread = supervisor.spawn("notify:pager", loop)
    thread.join(5)
    assert not thread.is_alive()
    [dead] = supervisor.check()
    assert "notify:pager" in dead and "failed 3 times in a row" in dead and "disk on fire" in dead
    assert errors(metrics, "notify:pager") == 3


def test_a_watched_thread_that_stops_is_dead() -> None:
    """A role watched by a liveness probe (the HTTP server) is dead once the probe says so."""
    supervisor = Supervisor(Metrics())
    alive = [True]
    supervisor.watch("api", lambda: alive[0])
    assert supervisor.check() == []
    alive[0] = False
    assert supervisor.check() == ["role api dead: its thread is not running"]


def test_a_loop_that_returns_because_the_service_stops_is_not_dead() -> None:
    """Stopping is not dying: a loop that returns after stop() leaves liveness clean."""
    supervisor = Supervisor(Metrics())
    thread = supervisor.spawn("rules", lambda: None)
    thread.join(5)
    supervisor.stop()
    assert supervisor.check() == []


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 50.0


def test_the_steady_clock_ignores_a_step_back_and_follows_a_step_forward() -> None:
    """An NTP step back does not stop the rules' time (silence still grows); a step forward is followed."""
    clocks = Clocks()
    clock = SteadyClock(wall=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    start = clock()
    clocks.wall -= 3600  # NTP steps the wall clock back an hour
    clocks.mono += 30
    clocks.wall += 30
    assert (clock() - start).total_seconds() == 30
    clocks.wall += 7200  # and forward again, past where we are
    clocks.mono += 1
    assert clock() == datetime.fromtimestamp(clocks.wall, UTC)


@given(st.lists(st.tuples(st.floats(0, 120), st.floats(-7200, 7200)), max_size=40))
def test_the_steady_clock_never_runs_backwards_nor_slower_than_the_monotonic_clock(
    steps: list[tuple[float, float]],
) -> None:
    """Whatever the wall clock does, the rules' time advances at least as much as the monotonic clock."""
    clocks = Clocks()
    clock = SteadyClock(wall=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    last = clock()
    for elapsed, step in steps:
        clocks.mono += elapsed
        clocks.wall += elapsed + step
        now = clock()
        assert (now - last).total_seconds() >= elapsed - 1e-3
        last = now
