"""Supervision: every role loop survives its exceptions, beats a heartbeat, and readiness reads them.

``Supervisor.spawn(role, loop)`` runs ``loop`` in a thread of its own. When ``loop`` raises, the
exception is logged with its traceback, counted (``coldchain_role_errors_total{role}``), and the
loop is entered again after a backoff (1 s doubling to 30 s); a loop that returns has stopped (the
service is stopping). A role that keeps failing (``fatal_after`` failures in a row, each less than
``settle`` seconds after the restart before it), whose thread died, or whose heartbeat has been silent for its
``dead_after`` cannot recover: ``check`` reports it, and the service ends the process non-zero so
its supervisor (systemd, Docker, Kubernetes) restarts it. Never a live process with a dead role.

Roles beat with ``beat(role)`` (or ``beat_current()`` from code that runs in several roles'
threads, such as the durable writer's retry loop). Readiness (``problems``) names a role whose
heartbeat is later than its ``late_after``, or that failed in the last ``settle`` seconds; liveness
(``dead``) names the roles
that cannot recover.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from coldchain.adapters.metrics import Metrics

log = logging.getLogger("coldchain.supervisor")

_BACKOFF_MIN = 1.0
_BACKOFF_MAX = 30.0

Spawn = Callable[[str, Callable[[], None]], threading.Thread]
"""Runs a role's loop in a thread of its own (``Supervisor.spawn``, or ``plain_thread``)."""


def plain_thread(name: str, loop: Callable[[], None]) -> threading.Thread:
    """``loop`` in a daemon thread, unsupervised (tests that drive one role)."""
    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


@dataclass(slots=True)
class RoleState:
    """What the supervisor knows of one role."""

    name: str
    late_after: float
    dead_after: float
    beat_at: float
    failures: int = 0
    """Failures in a row (each within ``settle`` of the restart before it)."""
    failed_at: float = float("-inf")
    restarted_at: float = float("-inf")
    last_error: str = ""
    thread: threading.Thread | None = None
    alive: Callable[[], bool] | None = None
    stopped: bool = False
    fatal: str = ""
    threads: set[int] = field(default_factory=set)


@dataclass(eq=False)
class Supervisor:
    """Runs role loops, keeps their heartbeats, and says which roles are late, failing or dead."""

    metrics: Metrics
    _: KW_ONLY
    clock: Callable[[], float] = time.monotonic
    fatal_after: int = 5
    settle: float = 60.0
    backoff_min: float = _BACKOFF_MIN
    backoff_max: float = _BACKOFF_MAX
    roles: dict[str, RoleState] = field(default_factory=dict, init=False)
    _by_thread: dict[int, RoleState] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    # -- registering -----------------------------------------------------------------------

    def register(self, role: str, *, late_after: float = 10.0, dead_after: float = 300.0) -> RoleState:
        """Track ``role``'s heartbeat (beaten with ``beat``); a role may also run in ``spawn``ed threads."""
        with self._lock:
            state = self.roles.get(role)
            if state is None:
                state = RoleState(role, late_after, dead_after, self.clock())
                self.roles[role] = state
                self.metrics.role_errors.labels(role)  # the series exists (at 0) from the start
            return state

    def watch(self, role: str, alive: Callable[[], bool]) -> None:
        """A role that cannot beat (a server's own thread): it is dead once ``alive()`` is False."""
        self.register(role).alive = alive

    def spawn(
        self, role: str, loop: Callable[[], None], *, late_after: float = 10.0, dead_after: float = 300.0
    ) -> threading.Thread:
        """Run ``loop`` supervised in a new daemon thread named ``role``."""
        state = self.register(role, late_after=late_after, dead_after=dead_after)
        thread = threading.Thread(target=self._supervise, args=(state, loop), name=role, daemon=True)
        state.thread = thread
        thread.start()
        return thread

    def stop(self) -> None:
        """The service is stopping: loops that return now have not died, and backoffs end."""
        self._stopping.set()

    # -- the loop wrapper ------------------------------------------------------------------

    def _supervise(self, state: RoleState, loop: Callable[[], None]) -> None:
        ident = threading.get_ident()
        with self._lock:
            self._by_thread[ident] = state
            state.threads.add(ident)
        backoff = self.backoff_min
        while True:
            try:
                loop()
            except Exception as exc:  # the loop must go on: logged with its traceback, counted, backed off
                with self._lock:
                    now = self.clock()
                    state.failures = state.failures + 1 if now - state.restarted_at < self.settle else 1
                    state.failed_at = now
                    state.last_error = f"{type(exc).__name__}: {exc}"
                    failures = state.failures
                self.metrics.role_errors.labels(state.name).inc()
                log.exception(
                    "role %s failed (%d in a row); restarting its loop in %.0f s",
                    state.name,
                    failures,
                    backoff,
                    extra={"role": state.name},
                )
                if failures >= self.fatal_after:
                    self._fatal(state, f"failed {failures} times in a row, last: {state.last_error}")
                    return
                if self._stopping.wait(backoff):
                    break
                backoff = min(backoff * 2, self.backoff_max)
                state.restarted_at = self.clock()
                continue
            break
        with self._lock:
            state.stopped = True

    def _fatal(self, state: RoleState, reason: str) -> None:
        with self._lock:
            if state.fatal:
                return
            state.fatal = reason
        log.critical("role %s cannot recover: %s", state.name, reason, extra={"role": state.name})

    # -- heartbeats ------------------------------------------------------------------------

    def beat(self, role: str) -> None:
        """``role`` is making progress."""
        state = self.roles.get(role)
        if state is not None:
            self._beat(state)

    def beat_current(self) -> None:
        """The role whose supervised thread calls this is making progress (no-op in other threads)."""
        state = self._by_thread.get(threading.get_ident())
        if state is not None:
            self._beat(state)

    def _beat(self, state: RoleState) -> None:
        state.beat_at = self.clock()

    # -- what readiness and liveness read --------------------------------------------------

    def check(self) -> list[str]:
        """The roles that cannot recover (each a sentence), marking stalled ones fatal; empty when all live."""
        now = self.clock()
        for state in list(self.roles.values()):
            if state.fatal or state.stopped or self._stopping.is_set():
                continue
            if state.alive is not None and not state.alive():
                self._fatal(state, "its thread is not running")
            elif state.thread is not None and not state.thread.is_alive():
                self._fatal(state, "its thread ended")
            elif state.alive is None and now - state.beat_at > state.dead_after:
                self._fatal(state, f"no heartbeat for {now - state.beat_at:.0f} s")
        return self.dead()

    def dead(self) -> list[str]:
        """``role <name> dead: <why>`` for every role that cannot recover."""
        return [f"role {s.name} dead: {s.fatal}" for s in self.roles.values() if s.fatal]

    def _problems(self) -> dict[str, str]:
        now = self.clock()
        out: dict[str, str] = {}
        for state in self.roles.values():
            if state.fatal:
                out[state.name] = f"role {state.name} dead: {state.fatal}"
            elif state.stopped or state.alive is not None:
                continue
            elif state.failures and now - state.failed_at < self.settle:
                out[state.name] = f"role {state.name} failing ({state.failures} in a row): {state.last_error}"
            elif now - state.beat_at > state.late_after:
                out[state.name] = f"role {state.name}: heartbeat late ({now - state.beat_at:.0f} s)"
        return out

    def problems(self) -> list[str]:
        """Readiness: roles dead, failing, or whose heartbeat is late (each a sentence naming the role)."""
        return list(self._problems().values())

    def health(self) -> dict[str, str | None]:
        """Each role: None when healthy, else why not (the facts behind ``role_failed``)."""
        problems = self._problems()
        return {name: problems.get(name) for name in self.roles}
