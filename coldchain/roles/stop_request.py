"""What asks the service to stop: ``request()`` from code, or SIGTERM / SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopRequest:
    """A stop asked for by code (``request``) or by a signal (``install``), waited for by the main loop.

    The signal handler takes no lock. Python runs a handler in the main thread between two bytecodes,
    possibly in the middle of the handler of the signal before (Ctrl-C in ``scripts/run-local.sh``
    sends SIGINT, then the script's trap SIGTERM); had it called ``Event.set``, whose lock is not
    reentrant, the second signal would deadlock the main thread, and coldchain would never stop.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal: int | None = None
        """The signal that asked us to stop; None if none did."""

    def install(self) -> None:
        """Make SIGTERM and SIGINT ask for the stop (call from the main thread)."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum

    def request(self) -> None:
        """Ask for the stop (any thread)."""
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; whether a stop was asked for (a signal is seen within ``timeout``)."""
        return self._event.wait(timeout) or self.signal is not None
