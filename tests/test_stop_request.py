"""Stopping on SIGTERM / SIGINT: a second signal during the first one's handling never hangs coldchain."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.world import Scenario

# The main thread holds the stop event's lock, as it does inside Event.set while handling a first signal,
# when SIGINT and SIGTERM arrive: a handler that took that lock would deadlock right there.
HELD_LOCK = textwrap.dedent(
    """
    import os, signal
    from coldchain.roles.stop_request import StopRequest

    stop = StopRequest()
    stop.install()
    with stop._event._cond:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # bytecodes, at which Python runs the handlers
    assert stop.wait(0.1) and stop.signal in (signal.SIGINT, signal.SIGTERM), stop.signal
    print("stopped")
    """
)


def test_a_signal_arriving_while_the_stop_lock_is_held_does_not_deadlock() -> None:
    """SIGINT then SIGTERM while the main thread holds the stop event's lock: the stop is seen, nothing hangs."""
    done = subprocess.run([sys.executable, "-c", HELD_LOCK], capture_output=True, text=True, timeout=20)
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


def test_stop_asked_by_code_or_by_no_one() -> None:
    """request() is seen by wait(); without a request or a signal, wait() times out False."""
    from coldchain.roles.stop_request import StopRequest

    stop = StopRequest()
    assert stop.wait(0.01) is False
    stop.request()
    assert stop.wait(0.01) is True and stop.signal is None


@pytest.fixture
def scenario(tmp_path: Path, mosquitto: Any, influxd: Any) -> Iterator[Scenario]:
    world = Scenario(tmp_path, mosquitto, influxd, role="run")
    yield world
    world.close()


@pytest.mark.integration
def test_ctrl_c_then_sigterm_stops_coldchain_run_cleanly(scenario: Scenario) -> None:
    """What Ctrl-C in run-local does (SIGINT to coldchain, then the script's SIGTERM): a clean exit 0."""
    scenario.service.start()
    process = scenario.service.process
    assert process is not None
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, scenario.service.log_tail()
    assert "coldchain stopped" in scenario.service.log_path.read_text()
