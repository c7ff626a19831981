"""The rules' wall clock, steadied by the monotonic one: an NTP step backwards cannot blind them.

Silence (``sensor_offline``) and bag deadlines are measured from the ``now`` the worker passes
the engine. Were that the raw wall clock, a step back by an hour would keep every sensor
"heard" for an extra hour. ``SteadyClock`` advances with ``time.monotonic`` from the wall time
it started at, follows the wall clock when it steps *forward* (a late NTP sync, a resumed
virtual machine), and ignores steps *back* (logged once per step), so time as the rules see it
never runs backwards and never stands still.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger("coldchain.clock")

STEP = 2.0
"""Seconds the wall clock must jump, against the monotonic one, to count as a step."""


class SteadyClock:
    """Callable like ``lambda: datetime.now(UTC)``; see the module docstring."""

    def __init__(self, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self._anchor_wall = wall()
        self._anchor_mono = monotonic()
        self._behind = False

    def __call__(self) -> datetime:
        steady = self._anchor_wall + (self.monotonic() - self._anchor_mono)
        wall = self.wall()
        if wall > steady + STEP:  # stepped forward: follow it
            self._anchor_wall, self._anchor_mono, steady = wall, self.monotonic(), wall
            self._behind = False
        elif wall < steady - STEP:
            if not self._behind:
                log.warning(
                    "the wall clock stepped back by %.0f s; the rules keep counting on the monotonic clock",
                    steady - wall,
                )
                self._behind = True
        else:
            self._behind = False
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=steady)
