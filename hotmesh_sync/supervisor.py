"""Several worker processes under one supervisor (``--processes N``, ``Worker(processes=N)``).

A worker's threads share one interpreter lock, so one process runs workflow
code on about one core; N processes use N. The supervisor starts N children,
starts again one that dies, and drains them all on SIGTERM/SIGINT.

- Children are *spawned* (a fresh interpreter: multiprocessing's 'spawn'),
  never forked: the parent may hold a connection pool and its threads, which
  a fork copies in a broken state. A child receives its target by reference
  (module and name) and imports the workflows again by module path.
- Each child leaves the supervisor's process group, so a Ctrl-C at a terminal
  (SIGINT to the whole foreground group) reaches the supervisor alone, which
  forwards exactly one signal: a worker that got two would stop at once
  instead of draining.
- A child watches its supervisor: if the supervisor dies (SIGKILL), the
  child drains and exits as if signalled rather than run on unsupervised.
- A child that exits nonzero or is killed starts again after a backoff
  (``Backoff``: 0.5 s doubling to 30 s, from 0.5 s again once a child lived
  60 s). One that exits 0 has finished (``--max-tasks``, ``--until-empty``,
  ``--max-runtime``, or it was stopped on its own) and is not replaced.
- The first SIGTERM/SIGINT is forwarded to every child; those still running
  after ``drain_timeout`` are killed (status 1). A second signal kills them
  at once (status 128 + signal), as a second signal stops a single worker.

This module knows nothing of workflows: it sits beside the worker, which
imports it, and below ``memflow``; a child rebuilds its MemFlow through the
class of the parent's (``worker_processes``).
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from .errors import ConfigurationError
from .log import get_logger

__all__ = ["DRAIN_MARGIN", "Backoff", "Supervisor", "check_processes", "worker_processes"]

_log = get_logger("hotmesh_sync.supervisor")

#: Seconds the supervisor waits beyond a child's own grace (for it to hand
#: back what it holds and close its pools) before it kills the child.
DRAIN_MARGIN = 15.0
#: A child's grace when it runs ``Worker.run()`` (that of ``Worker.stop()``).
WORKER_GRACE = 30.0

Target = Callable[..., "int | None"]


@dataclass(frozen=True)
class Backoff:
    """Seconds before a child that died starts again: ``first``, doubled for
    each death in a row, at most ``cap``; a child that lived ``stable``
    seconds counts as healthy, and its next death waits ``first`` again."""

    first: float = 0.5
    cap: float = 30.0
    stable: float = 60.0

    def delay(self, deaths: int) -> float:
        return float(min(self.cap, self.first * 2 ** max(0, deaths - 1)))


def check_processes(processes: object, option: str = "processes") -> int:
    """``processes`` when it is a whole number of at least 1, else ValueError."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"{option} must be a whole number of at least 1, not {processes!r}")
    return processes


@dataclass
class _Slot:
    """One of the N places a child runs in: its process, or when to start one."""

    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    deaths: int = 0            # deaths in a row, for the backoff
    due: float | None = 0.0    # when to start a child here; None: none any more


class Supervisor:
    """Runs ``target(*args)`` in ``processes`` spawned children (see the module doc).

    ``target`` and ``args`` must pickle (a module-level function; values).
    The target's return value (an int) is the child's exit status.
    """

    def __init__(self, target: Target, args: tuple[Any, ...], processes: int, *,
                 name: str = "hotmesh-worker", drain_timeout: float = WORKER_GRACE + DRAIN_MARGIN,
                 backoff: Backoff | None = None) -> None:
        self.processes = check_processes(processes)
        self.name = name
        self.drain_timeout = drain_timeout
        self.backoff = backoff or Backoff()
        self._target, self._args = target, args
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(self.processes)]
        self._signals: list[int] = []    # stop requests in order (signal numbers)
        self._wake: tuple[int, int] | None = None  # a self-pipe that interrupts the wait
        self._thread: threading.Thread | None = None
        #: The exit status once supervision ended (see ``run``).
        self.status: int | None = None
        #: Names of children killed because they did not drain in time.
        self.killed: list[str] = []

    @property
    def pids(self) -> list[int]:
        """The pids of the children running now."""
        return [s.process.pid for s in self._slots
                if s.process is not None and s.process.pid is not None]

    # --- lifecycle -----------------------------------------------------
    def run(self) -> int:
        """Supervise until every child has finished, or a SIGTERM/SIGINT has
        drained them; the exit status: 0 drained (or all finished), 1 some child
        had to be killed or failed while draining, 128 + signal after a second one.

        Only the main thread can trap signals; elsewhere ``request_stop`` ends it.
        """
        restore = self._trap_signals()
        try:
            self._open()
            try:
                status = self._supervise()
            finally:
                self._close()
        finally:
            restore()
        self.status = status
        return status

    def start(self) -> Supervisor:
        """Supervise in a background thread and return at once (``stop`` ends it)."""
        if self._thread is None:
            self._open()
            self._thread = threading.Thread(target=self._background, daemon=True,
                                            name=f"{self.name}-supervisor")
            self._thread.start()
            # A program that ends without stop() drains them first (multiprocessing's
            # own exit hook, which runs after this one, would wait on them forever).
            atexit.register(self.stop)
        return self

    def stop(self, timeout: float | None = None) -> list[str]:
        """Drain the children started by ``start`` (kill those still running after
        ``timeout`` seconds, default ``drain_timeout``); the names of those killed."""
        thread = self._thread
        if thread is None:
            return []
        if timeout is not None:
            self.drain_timeout = timeout
        self.request_stop(signal.SIGTERM)
        thread.join()
        self._close()
        atexit.unregister(self.stop)
        return list(self.killed)

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a drain (a second request: kill now). Safe in a signal handler."""
        self._signals.append(signum)
        if self._wake is not None:
            with contextlib.suppress(OSError):  # full or closed: a wake-up is pending anyway
                os.write(self._wake[1], b"\0")

    def _background(self) -> None:
        try:
            self.status = self._supervise()
        except BaseException as exc:  # the children are killed by _supervise's finally
            self.status = 1
            _log.error("supervisor_failed", error=f"{type(exc).__name__}: {exc}")

    def _open(self) -> None:
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._wake = (read, write)

    def _close(self) -> None:
        wake, self._wake = self._wake, None
        for fd in wake or ():
            with contextlib.suppress(OSError):
                os.close(fd)

    def _trap_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        trapped = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.getsignal(sig) for sig in trapped}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request_stop(signum)

        for sig in trapped:
            signal.signal(sig, on_signal)

        def restore() -> None:
            for sig, handler in previous.items():
                if handler is not None:  # None: set outside Python, cannot be put back
                    signal.signal(sig, handler)

        return restore

    # --- supervising ---------------------------------------------------
    def _supervise(self) -> int:
        try:
            while not self._signals:
                now = time.monotonic()
                for slot in self._slots:
                    if slot.process is None and slot.due is not None and slot.due <= now:
                        self._launch(slot)
                live = [s for s in self._slots if s.process is not None]
                pending = [s.due for s in self._slots if s.process is None and s.due is not None]
                if not live and not pending:
                    _log.info("worker_processes_finished", processes=self.processes)
                    return 0
                timeout = max(0.0, min(pending) - time.monotonic()) if pending else None
                self._wait(live, timeout, draining=False)
            return self._drain()
        finally:
            # After an error (or a drain that gave up): nothing outlives its supervisor.
            self._kill([s for s in self._slots if s.process is not None], "supervisor_exit")

    def _launch(self, slot: _Slot) -> None:
        process = self._context.Process(target=_child_main, args=(self._target, self._args),
                                        name=f"{self.name}-{slot.index}")
        try:
            process.start()
        except OSError as exc:  # out of memory or processes: try again after the backoff
            slot.deaths += 1
            slot.due = time.monotonic() + self.backoff.delay(slot.deaths)
            _log.error("worker_process_not_started", slot=slot.index,
                       error=f"{type(exc).__name__}: {exc}")
            return
        slot.process, slot.started = process, time.monotonic()
        _log.info("worker_process_started", slot=slot.index, pid=process.pid,
                  supervisor_pid=os.getpid())

    def _wait(self, live: list[_Slot], timeout: float | None, draining: bool) -> list[int]:
        """Wait for a child to end (or a stop request, or ``timeout``); reap the
        ended ones and return their exit codes."""
        assert self._wake is not None
        by_sentinel = {s.process.sentinel: s for s in live if s.process is not None}
        ready = wait([*by_sentinel, self._wake[0]], timeout)
        if self._wake[0] in ready:
            with contextlib.suppress(OSError):
                os.read(self._wake[0], 512)
        return [self._reap(by_sentinel[r], draining) for r in ready if r in by_sentinel]

    def _reap(self, slot: _Slot, draining: bool) -> int:
        process = slot.process
        assert process is not None
        process.join()
        code = process.exitcode if process.exitcode is not None else 1
        slot.process = None
        lived = time.monotonic() - slot.started
        how = _how(code)
        if code == 0 or draining:
            slot.due = None
            _log.info("worker_process_exited", slot=slot.index, pid=process.pid, exit=how)
            return code
        slot.deaths = 1 if lived >= self.backoff.stable else slot.deaths + 1
        delay = self.backoff.delay(slot.deaths)
        slot.due = time.monotonic() + delay
        _log.warning("worker_process_died", slot=slot.index, pid=process.pid, exit=how,
                     lived_s=round(lived, 1), restart_in_s=delay)
        return code

    def _drain(self) -> int:
        first = self._signals[0]
        live = [s for s in self._slots if s.process is not None]
        for slot in self._slots:
            slot.due = None  # no restarts from now on
        _log.info("worker_processes_draining", signal=signal.Signals(first).name,
                  processes=len(live), timeout_s=self.drain_timeout)
        for slot in live:
            _send(slot, first)
        deadline = time.monotonic() + self.drain_timeout
        failed = False
        while live:
            if len(self._signals) > 1:
                self._kill(live, "second_signal")
                return 128 + self._signals[1]
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill(live, "drain_timeout")
                return 1
            failed |= any(code != 0 for code in self._wait(live, left, draining=True))
            live = [s for s in self._slots if s.process is not None]
        _log.info("worker_processes_drained", failed=failed)
        return 1 if failed else 0

    def _kill(self, slots: list[_Slot], reason: str) -> None:
        for slot in slots:
            process = slot.process
            if process is None:
                continue
            process.kill()
            process.join(10.0)
            slot.process, slot.due = None, None
            self.killed.append(f"{process.name} (pid {process.pid})")
            _log.warning("worker_process_killed", slot=slot.index, pid=process.pid,
                         reason=reason)


def _send(slot: _Slot, signum: int) -> None:
    if slot.process is not None and slot.process.pid is not None:
        with contextlib.suppress(ProcessLookupError):  # it has just ended: reaped next
            os.kill(slot.process.pid, signum)


def _how(code: int) -> str:
    """An exit code as people read it: ``0``, ``1``, ``SIGKILL``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
    return str(code)


# --- in the child ------------------------------------------------------------

def _child_main(target: Target, args: tuple[Any, ...]) -> None:
    """What a spawned child runs: ``target(*args)``, its return value the exit status."""
    with contextlib.suppress(OSError):  # already a group leader: nothing to leave
        os.setpgid(0, 0)
    _follow_supervisor()
    code = target(*args)
    sys.exit(code if isinstance(code, int) else 0)


def _follow_supervisor() -> None:
    """Drain and exit, as on SIGTERM, once the supervisor has gone (killed)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the supervisor's end of a pipe closes: it has exited
        _log.warning("supervisor_gone", pid=os.getpid(), supervisor_pid=parent.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="hotmesh-supervisor-watch", daemon=True).start()


# --- Worker(processes=N) -----------------------------------------------------------

@dataclass(frozen=True)
class WorkerSpec:
    """What a child needs to build the parent's worker again: the MemFlow's class
    (rebuilt with its ``init``), app id and DSN, and the worker's arguments."""

    host_type: Any
    app_id: str
    dsn: str
    task_queue: str
    workflows: Mapping[str, Callable[..., Any]]
    activities: Mapping[str, Callable[..., Any]]
    concurrency: int
    options: Mapping[str, Any]


def worker_processes(host: Any, task_queue: str, workflows: Mapping[str, Callable[..., Any]],
                     activities: Mapping[str, Callable[..., Any]], concurrency: int,
                     processes: int, options: Mapping[str, Any]) -> Supervisor:
    """The supervisor of ``Worker(processes=N)``: N children, each with a MemFlow
    of its own (same DSN, app id, environment) and a worker like the parent's.

    Refused at once (not in every child, over and over): a host that is not a
    MemFlow, and functions a new process cannot import (lambdas, nested
    functions, those of ``python -c`` or an interactive session).
    """
    host_type = type(host)
    if not callable(getattr(host_type, "init", None)) or not isinstance(
            getattr(host, "app_id", None), str):
        raise ConfigurationError("processes > 1 needs a worker made by a MemFlow "
                                 "(mf.worker(..., processes=N))")
    check_processes(processes)
    for kind, table in (("workflow", workflows), ("activity", activities)):
        for name, fn in table.items():
            _check_importable(kind, name, fn)
    spec = WorkerSpec(host_type, host.app_id, host.dsn, task_queue, dict(workflows),
                      dict(activities), concurrency, dict(options))
    try:
        pickle.dumps(spec)
    except Exception as exc:
        raise ConfigurationError(f"with processes > 1 the worker's options must be plain "
                                 f"values a new process can receive: {exc}") from exc
    return Supervisor(_worker_child, (spec,), processes,
                      drain_timeout=WORKER_GRACE + DRAIN_MARGIN)


def _check_importable(kind: str, name: str, fn: Callable[..., Any]) -> None:
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        problem = "it is defined in __main__ with no file to import it from"
    else:
        try:
            pickle.dumps(fn)
            return
        except Exception as exc:
            problem = str(exc)
    raise ConfigurationError(
        f"with processes > 1 each process imports the {kind}s again by module path, and "
        f"{kind} {name!r} cannot be ({problem}): define it at the top level of a module")


def _worker_child(spec: WorkerSpec) -> int:
    """A child of ``Worker(processes=N)``: its own MemFlow and worker, run until signalled."""
    memflow = spec.host_type.init(spec.app_id, spec.dsn, pool_size=2)
    try:
        memflow.worker(spec.task_queue, dict(spec.workflows), dict(spec.activities),
                       spec.concurrency, **spec.options).run()
    finally:
        memflow.close()
    return 0
