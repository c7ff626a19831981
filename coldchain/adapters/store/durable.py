"""The durable writer: records reach the store, or the on-disk spool, before ``write`` returns.

- The store is reachable and nothing is spooled: write straight to it.
- The store fails transiently (or is misconfigured): spool the batch; a replay thread drains the
  spool in order once the store answers again, with backoff that honours ``Retry-After``.
- While anything is spooled, new batches are spooled behind it, so the store sees them in order.
- Records the store refuses for good are dead-lettered to measurement ``rejected`` with the
  server's message, and counted.
- The spool is full, or its disk is (``DiskFull``: log ``DISK FULL`` with the path): log loudly,
  count, and keep retrying (store first, then spool) without returning, so the caller holds its
  MQTT acks and the broker keeps the messages; ``problem`` says why for readiness. It resumes by
  itself once the store or the disk takes data again.
- A spooled batch that fails to replay for another reason than an unreachable store (a damaged
  batch, a bug) ``max_attempts`` times is dead-lettered whole (``Spool.dead_letter``), so the
  batches behind it go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime

from coldchain.adapters.metrics import Metrics
from coldchain.adapters.sqlite_files import DiskFull
from coldchain.adapters.store import codec as record_codec
from coldchain.adapters.store.port import Refused, Store, StoreError, StoreMisconfigured, StoreUnavailable
from coldchain.adapters.store.spool import Spool, SpoolFull
from coldchain.core.records import Record, Rejection, RejectReason, measurement_of

log = logging.getLogger("coldchain.store")

_BACKOFF_MIN = 0.5
_BACKOFF_MAX = 30.0


class WriterStopped(Exception):
    """The writer was stopped before the batch became durable; the caller must not ack it."""


@dataclass(eq=False)
class DurableWriter:
    """Write batches durably; owns the spool replay thread."""

    store: Store
    spool: Spool
    metrics: Metrics
    _: KW_ONLY
    max_attempts: int = 5
    heartbeat: Callable[[], None] = lambda: None
    """Called while a write waits for room (the waiting role is alive, only held up)."""
    problem: str | None = field(default=None, init=False)
    """Why writes are held (spool or disk full), for readiness; None while they go through."""
    store_down_since: float | None = field(default=None, init=False)
    """Monotonic time of the first failure of the current store outage; None while it answers."""
    _attempts: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _wake: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _replayer: threading.Thread | None = field(default=None, init=False, repr=False)
    _backoff: float = field(default=_BACKOFF_MIN, init=False, repr=False)
    _prepared: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        spool = self.spool
        self.metrics.bind_spool(lambda: spool.depth, spool.oldest_age, lambda: spool.size_bytes)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the store if it answers, and start replaying whatever the spool holds."""
        self._prepare()
        if self.spool.depth:
            log.warning("spool holds records from before; replaying", extra={"records": self.spool.depth})
        self._replayer = threading.Thread(target=self._replay_loop, name="spool-replay", daemon=True)
        self._replayer.start()

    def stop(self) -> None:
        """Stop retrying; spooled data stays on disk for the next run."""
        self._stopping.set()
        self._wake.set()
        if self._replayer is not None:
            self._replayer.join(timeout=30)

    @property
    def healthy(self) -> bool:
        """False while the spool is at its cap."""
        return not self.spool.full

    def _prepare(self) -> bool:
        """Make the store ready (e.g. create the database); False if it cannot yet."""
        if self._prepared:
            return True
        try:
            self.store.prepare()
        except StoreError as exc:
            log.warning("store not ready yet (will retry): %s", exc)
            self._store_down()
            return False
        self._prepared = True
        self._store_up()
        return True

    # -- writing ---------------------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> None:
        """Return once every record is in the store or the spool. Raises WriterStopped."""
        if not records:
            return
        batch = list(records)
        if self.spool.batches == 0 and self._try_store(batch):
            return
        self._spool_until_room(batch)

    def _try_store(self, batch: list[Record]) -> bool:
        """Write to the store; True when it took the batch (refusals dead-lettered)."""
        try:
            result = self.store.write(batch)
        except StoreMisconfigured as exc:
            self.metrics.write_errors.labels("config").inc()
            self._store_down()
            log.error("store refuses our credentials or database; spooling: %s", exc)
            return False
        except StoreUnavailable as exc:
            self.metrics.write_errors.labels("transient").inc()
            self._store_down()
            log.warning("store unavailable; spooling: %s", exc)
            return False
        self._store_up()
        self._count_stored(batch, result.refused)
        if result.refused:
            self._dead_letter(result.refused)
        return True

    def _store_down(self) -> None:
        self.metrics.store_reachable.set(0)
        if self.store_down_since is None:
            self.store_down_since = time.monotonic()

    def _store_up(self) -> None:
        self.metrics.store_reachable.set(1)
        self.store_down_since = None

    def _count_stored(self, batch: list[Record], refused: list[Refused]) -> None:
        refused_ids = {id(r.record) for r in refused}
        tally = Tally(measurement_of(r) for r in batch if id(r) not in refused_ids)
        for measurement, count in tally.items():
            self.metrics.records_stored.labels(measurement).inc(count)

    def _dead_letter(self, refused: list[Refused]) -> None:
        now = datetime.now(UTC)
        letters: list[Record] = []
        for item in refused:
            self.metrics.write_errors.labels("refused").inc()
            if isinstance(item.record, Rejection):
                # a rejection the store refuses cannot be dead-lettered again: log it whole
                self.metrics.dropped.inc()
                log.error(
                    "store refused a rejection record; logged here instead",
                    extra={"reason": item.reason, "record": record_codec.record_to_dict(item.record)},
                )
                continue
            self.metrics.rejections.labels(RejectReason.STORE_REJECTED.value).inc()
            body = record_codec.dumps([item.record])
            log.warning("store refused a record; dead-lettered", extra={"reason": item.reason})
            letters.append(Rejection(RejectReason.STORE_REJECTED, "", item.reason[:1000], body, now))
        if letters:
            self.write(letters)

    def _spool_until_room(self, batch: list[Record]) -> None:
        warned = False
        while True:
            try:
                self.spool.append(batch)
                self._wake.set()
                self._resumed(warned)
                return
            except SpoolFull as exc:
                self.metrics.spool_full.inc()
                if not warned:
                    log.error("SPOOL FULL: holding MQTT acks until the store takes data again: %s", exc)
                    warned = True
                self.problem = f"spool full ({self.spool.size_bytes} of {self.spool.max_bytes} bytes)"
            except DiskFull as exc:
                self.metrics.disk_full.labels(str(exc.path)).inc()
                if not warned:
                    log.error("%s; holding MQTT acks (the broker keeps the messages) until space returns", exc)
                    warned = True
                self.problem = str(exc)
            self.heartbeat()
            # the store may be back: try it directly (order within the backlog is by event time anyway)
            if self._try_store(batch):
                self._resumed(warned)
                return
            if self._stopping.wait(min(self._next_backoff(None), 5.0)):
                raise WriterStopped("stopped while the spool was full")

    def _resumed(self, warned: bool) -> None:
        if warned:
            log.warning("writes go through again, after: %s", self.problem)
        self.problem = None

    # -- replay ----------------------------------------------------------------------------

    def _next_backoff(self, retry_after: float | None) -> float:
        delay = retry_after if retry_after is not None else self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
        return min(max(delay, 0.0), 300.0)

    def replay_once(self) -> bool:
        """Move the oldest spooled batch into the store. True if it did; raises StoreUnavailable.

        Any other failure counts against the batch; at ``max_attempts`` it is dead-lettered whole.
        """
        batch_id = self.spool.oldest_id()
        if batch_id is None:
            return False
        try:
            batch = self.spool.oldest()
            if batch is None:
                return False
            result = self.store.write(batch.records)
        except (StoreUnavailable, StoreMisconfigured):
            raise
        except Exception as exc:
            attempts = self._attempts.get(batch_id, 0) + 1
            self._attempts[batch_id] = attempts
            if attempts < self.max_attempts:
                raise
            records = self.spool.dead_letter(batch_id, attempts, f"{type(exc).__name__}: {exc}")
            self._attempts.pop(batch_id, None)
            self.metrics.spool_dead_letters.inc(records)
            log.error(
                "spooled batch %d failed to replay %d times; dead-lettered whole (%d records) in %s: %s",
                batch_id,
                attempts,
                records,
                self.spool.path,
                exc,
            )
            return True
        self._store_up()
        self._count_stored(batch.records, result.refused)
        if result.refused:
            self._dead_letter(result.refused)
        self.spool.remove(batch.id)
        self._attempts.pop(batch.id, None)
        return True

    def _replay_loop(self) -> None:
        while not self._stopping.is_set():
            if not self._prepare():
                self._stopping.wait(self._next_backoff(None))
                continue
            try:
                if self.replay_once():
                    self._backoff = _BACKOFF_MIN
                    if self.spool.batches == 0:
                        log.info("spool drained; writing straight to the store again")
                    continue
            except StoreUnavailable as exc:
                self.metrics.write_errors.labels("transient").inc()
                self._store_down()
                delay = self._next_backoff(exc.retry_after)
                log.info("store still unavailable; retrying spool in %.1fs: %s", delay, exc)
                self._stopping.wait(delay)
                continue
            except StoreMisconfigured as exc:
                self.metrics.write_errors.labels("config").inc()
                self._store_down()
                delay = self._next_backoff(None)
                log.error("store refuses our credentials or database; retrying spool in %.1fs: %s", delay, exc)
                self._stopping.wait(delay)
                continue
            except DiskFull as exc:  # removing a replayed batch: it is stored, and replayed again (idempotent)
                self.metrics.disk_full.labels(str(exc.path)).inc()
                log.error("%s; the spool is replayed again once space returns", exc)
                self._stopping.wait(self._next_backoff(None))
                continue
            except Exception:
                log.exception("unexpected error replaying the spool")
                self._stopping.wait(self._next_backoff(None))
                continue
            self._wake.wait(1.0)
            self._wake.clear()
