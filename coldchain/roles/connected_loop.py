"""What ingest and the rules worker share: one loop in a (supervised) thread over one MQTT session."""

from __future__ import annotations

import threading
from typing import ClassVar

from coldchain.adapters.mqtt import MqttConnection
from coldchain.roles.supervision import Spawn, plain_thread


class ConnectedLoop:
    """A role's loop (``_run``) in a thread of its own and its broker connection.

    ``stop`` asks the loop to finish what it holds (it flushes, checkpoints and acks before it returns),
    waits for it, then disconnects keeping the broker session; ``_closed`` then releases the role's files.
    """

    role: ClassVar[str]
    """The thread's name and the supervisor's name for the role."""
    connection: MqttConnection

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, spawn: Spawn | None = None) -> None:
        """Start the loop (in ``spawn``'s supervised thread when given) and connect."""
        self._thread = (spawn or plain_thread)(self.role, self._run)
        self.connection.start()

    def request_stop(self) -> None:
        """Stop taking new messages; what is in hand is still finished and acked."""
        self._stopping.set()

    def stop(self) -> None:
        """Finish what is in hand (acking it), then disconnect, keeping the broker session."""
        self.finish()
        self.disconnect()

    def finish(self) -> None:
        """Stop taking new messages and wait for the loop to finish what it holds; still connected."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def disconnect(self) -> None:
        """After ``finish``: disconnect, keeping the broker session, and close what the role holds open."""
        self.connection.stop()
        self._closed()

    def _run(self) -> None:
        raise NotImplementedError

    def _closed(self) -> None:
        """After the connection stopped: close what the role holds open (nothing by default)."""
