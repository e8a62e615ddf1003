"""Serving a project's workflows: what the command line and the framework integrations share.

- ``load_functions``: workflow and activity functions named the way a command
  line or a settings file names them (``"pkg.module"`` or ``"pkg.module:func"``).
- ``wrap_activities``: run every activity inside a context (a Flask app
  context, Django's connection housekeeping).
- ``migrate_schema``: create or migrate an app's schema.
- ``serve``: run a worker in the foreground until SIGTERM/SIGINT, a number of
  tasks, or a run time, then stop it gracefully. This is what
  ``hotmesh-sync worker``, ``manage.py hotmesh_worker`` and
  ``flask hotmesh worker`` run.
- ``MemFlowHolder``: one MemFlow per process, made on first use (what
  ``hotmesh_sync.contrib.django.memflow`` and the Flask extension hold).

Core code: ``cli.py`` and ``contrib/`` import it, never the other way round.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from types import FrameType
from typing import Any

from .embedded import resolve_dsn
from .errors import ConfigurationError
from .log import get_logger
from .memflow import MemFlow, schema_for
from .store.connect import provision_schema
from .store.store import TransactionRunner
from .workflow.registry import as_table

__all__ = ["MemFlowHolder", "load_functions", "migrate_schema", "serve", "wrap_activities"]

Fn = Callable[..., Any]
_log = get_logger("hotmesh_sync.serve")


def load_functions(specs: Iterable[str]) -> dict[str, Fn]:
    """Import ``"module"`` (its public functions) or ``"module:func"`` (one) for each spec.

    A bare module contributes every public function *defined* in it (not the
    ones it imports), under its own name; ``module:func`` registers ``func``
    under the name written. ConfigurationError says what could not be found.
    """
    table: dict[str, Fn] = {}
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        if not module_name or (":" in spec and not attr):
            raise ConfigurationError(f"{spec!r} is not MODULE or MODULE:FUNCTION")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
        if attr:
            fn = getattr(module, attr, None)
            if not callable(fn):
                raise ConfigurationError(f"{module_name!r} has no function {attr!r}")
            found = {attr: fn}
        else:
            found = as_table(module)
            if not found:
                raise ConfigurationError(f"{module_name!r} defines no public functions")
        for name, fn in found.items():
            if table.get(name, fn) is not fn:
                raise ConfigurationError(f"two different functions are named {name!r}")
            table[name] = fn
    return table


def migrate_schema(dsn: str | None, app_id: str) -> tuple[str, int]:
    """Create or migrate the schema of ``app_id``; (schema, its version now).

    ConfigurationError (the password masked) when the DSN is malformed, the
    server cannot be reached, or the schema cannot be set up.
    """
    schema = schema_for(app_id)
    return schema, provision_schema(resolve_dsn(dsn), schema)


def wrap_activities(table: Mapping[str, Fn],
                    around: Callable[[], AbstractContextManager[Any]]) -> dict[str, Fn]:
    """The same activities, each call run inside ``with around():``."""

    def wrap(fn: Fn) -> Fn:
        @functools.wraps(fn)  # keeps the signature the worker inspects
        def call(*args: Any, **kwargs: Any) -> Any:
            with around():
                return fn(*args, **kwargs)

        return call

    return {name: wrap(fn) for name, fn in table.items()}


def serve(
    memflow: MemFlow,
    task_queue: str,
    workflows: Mapping[str, Fn],
    activities: Mapping[str, Fn] | None = None,
    *,
    concurrency: int = 8,
    max_tasks: int | None = None,
    max_runtime: float | None = None,
    grace: float = 30.0,
    transactions: TransactionRunner | None = None,
    until_empty: bool = False,
) -> int:
    """Run a worker until SIGTERM/SIGINT, ``max_tasks`` or ``max_runtime``; the tasks done.

    With ``until_empty`` it also stops once nothing of its queue is due or
    running and no thread is busy, twice in a row a moment apart (cron-style
    runs: drain what is due, then exit); work that falls due later (a timer
    an hour away) waits for the next run.

    Then it stops claiming and lets in-flight tasks finish for up to ``grace``
    seconds (what is still running after that is handed back to the queue).
    It never takes more than ``max_tasks`` tasks. A second signal while
    draining stops the process at once (unfinished tasks are retried
    elsewhere once their lease runs out).
    """
    if max_tasks is not None and max_tasks < 1:
        raise ValueError("max_tasks must be at least 1")
    finish = threading.Event()
    why: list[str] = []

    def stop_for(reason: str) -> None:
        if not finish.is_set():
            why.append(reason)
            finish.set()

    def on_task(count: int) -> None:
        if max_tasks is not None and count >= max_tasks:
            stop_for("max_tasks")

    worker = memflow.worker(task_queue, workflows, activities, concurrency,
                            max_tasks=max_tasks, on_task=on_task, transactions=transactions)
    restore = _trap_signals(stop_for)
    try:
        worker.start()
    except BaseException:
        restore()
        raise
    deadline = None if max_runtime is None else time.monotonic() + max_runtime
    try:
        _log.info("worker_ready", app_id=memflow.app_id, task_queue=task_queue,
                  concurrency=concurrency, functions=sorted(set(workflows) | set(activities or {})),
                  max_tasks=max_tasks, max_runtime=max_runtime)
        calm = 0
        while not finish.is_set():
            step = EMPTY_CHECK if until_empty else None
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                step = left if step is None else min(step, left)
            if finish.wait(step):
                break
            if deadline is not None and time.monotonic() >= deadline:
                stop_for("max_runtime")
            elif until_empty:
                calm = calm + 1 if worker.drained() else 0
                if calm >= 2:
                    stop_for("until_empty")
    finally:
        _log.info("worker_draining", reason=why[0] if why else "error",
                  tasks_done=worker.tasks_done, grace=grace)
        try:
            worker.stop(timeout=grace)
        finally:
            restore()
    _log.info("worker_exited", tasks_done=worker.tasks_done)
    return worker.tasks_done


#: Seconds between two looks at the queue by ``serve(until_empty=True)``.
EMPTY_CHECK = 0.5


def _trap_signals(stop_for: Callable[[str], None]) -> Callable[[], None]:
    """Make the first SIGTERM/SIGINT ask for a graceful stop; return the undo.

    Only the main thread may install handlers; elsewhere (a framework's test
    runner, a thread) the worker stops on its limits alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    trapped = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in trapped}

    def restore() -> None:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(sig, handler)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        restore()  # so that a second signal stops the process at once
        stop_for(signal.Signals(signum).name)

    for sig in trapped:
        signal.signal(sig, on_signal)
    return restore


class MemFlowHolder:
    """The MemFlow that ``factory`` makes, made on first ``get()``: one per process.

    Thread-safe. A process forked after first use (a pre-forking server) makes
    its own instead of sharing the parent's pooled connections (the parent's
    pool is not the child's to close: it is dropped). Closed at interpreter exit.
    """

    def __init__(self, factory: Callable[[], MemFlow]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._instance: MemFlow | None = None
        self._pid = 0
        atexit.register(self.close)

    def get(self) -> MemFlow:
        """This process's MemFlow (connecting now if this is its first use)."""
        with self._lock:
            if self._instance is None or self._pid != os.getpid():
                self._instance = self._factory()
                self._pid = os.getpid()
            return self._instance

    @property
    def created(self) -> bool:
        """Whether this process has made its MemFlow yet (it has connected)."""
        return self._instance is not None and self._pid == os.getpid()

    def close(self) -> None:
        """Close the MemFlow if this process made one; the next use makes a new one."""
        with self._lock:
            instance, self._instance = self._instance, None
            if instance is not None and self._pid == os.getpid():
                instance.close()
