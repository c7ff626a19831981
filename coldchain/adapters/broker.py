"""The embedded MQTT broker (amqtt), run in-process when ``mqtt.url = "embedded://host:port"``.

For a newcomer's first minute and for a pharmacy with a few fridges that runs no broker of its
own: sensors, ``coldchain bag`` and any MQTT client connect to it as to any broker, with MQTT
3.1.1 (amqtt does not speak MQTT 5). It runs on a thread of its own with its own asyncio loop,
binds only the configured address (127.0.0.1 unless told otherwise) and stops with the service.

What it keeps, and what not (amqtt 0.12, measured in ``tests/test_embedded_broker.py``):

- A client that connects with ``clean_session=False`` keeps its session: QoS-1 messages published
  while it is away are queued and delivered when it comes back (every client counts as
  authenticated, so amqtt's rule that anonymous sessions keep nothing does not apply).
- Everything lives in memory: a restart of coldchain forgets sessions, queues and retained alerts.
- A QoS-1 message delivered to a subscriber that disconnects before acknowledging it is not
  redelivered on reconnect, and the broker acknowledges a sensor's message on receipt. So a crash
  of coldchain loses the messages received but not yet stored (at most one ingest batch, about
  ``influx.linger``): use mosquitto (``mqtt://``) where every reading must survive a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import Future
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger("coldchain.broker")

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


class BrokerError(Exception):
    """The embedded broker could not start (e.g. its port is taken) or stop."""


class OpenAuthPlugin(BaseAuthPlugin):
    """Accept every client as authenticated, so sessions with clean_session=False are kept.

    amqtt's own anonymous plugin marks sessions anonymous, and amqtt keeps nothing for those. The
    embedded broker listens on loopback by default; bind it elsewhere only on a trusted network.
    """

    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = False
        return True


class EmbeddedBroker:
    """An amqtt broker on a background thread; ``start`` returns once it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"embedded broker port must be 1..65535, not {port}")  # amqtt reads 0 as 1883
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"embedded://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Start listening on host:port; raise BrokerError if it cannot within START_TIMEOUT."""
        if self._thread is not None:
            return self
        # amqtt (and its state machines) log every connection at INFO; coldchain logs its own
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        started: Future[None] = Future()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, started), name="mqtt-broker", daemon=True)
        self._thread.start()
        try:
            started.result(START_TIMEOUT)
        except Exception as exc:
            self._join()
            raise BrokerError(f"embedded MQTT broker cannot listen on {self.host}:{self.port}: {exc}") from exc
        log.info("embedded MQTT broker listening (MQTT 3.1.1)", extra={"address": f"{self.host}:{self.port}"})
        return self

    def _run(self, loop: asyncio.AbstractEventLoop, started: Future[None]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start(started))
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it as ours
            if not started.done():
                started.set_exception(exc)
            loop.close()
            return
        loop.run_forever()
        loop.close()

    async def _start(self, started: Future[None]) -> None:
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            # no $SYS publisher, no packet logger: only authentication
            "plugins": {f"{__name__}.OpenAuthPlugin": {}},
        }
        broker = Broker(config)
        await broker.start()
        self._broker = broker
        started.set_result(None)

    def stop(self) -> None:
        """Disconnect every client, close the listener and end the thread."""
        loop, broker = self._loop, self._broker
        if loop is None or self._thread is None:
            return
        if broker is not None and loop.is_running():
            shutdown = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
            try:
                shutdown.result(STOP_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - stopping goes on: the loop and thread end below
                log.warning("embedded MQTT broker did not shut down cleanly: %r", exc)
        self._join()
        log.info("embedded MQTT broker stopped")

    def _join(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # already closed: the thread ended by itself
                loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(STOP_TIMEOUT)
        self._thread = None
        self._loop = None
        self._broker = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
