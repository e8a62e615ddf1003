"""A hotmesh_sync worker in a process of its own, as one is deployed.

The process is spawned (a clean interpreter, not a fork of the harness), so
its memory and its threads are only the worker's: psutil reads its RSS and
py-spy can profile it alone. When profiled, it also times its SQL statements
(``sqltrace``) and writes them beside the profile as JSON.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from types import TracebackType

import psutil

from .harness import QUEUE
from .profiling import PySpy

#: Seconds a worker process may take to start, and to stop.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class WorkerProcess:
    """``with WorkerProcess(dsn, app_id) as worker:`` a running worker; stopped on exit."""

    def __init__(self, dsn: str, app_id: str, concurrency: int = 8, task_queue: str = QUEUE,
                 profile_to: Path | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._started_wall = context.Value("d", 0.0)
        self._trace_in, trace_out = context.Pipe(duplex=False)
        self._process = context.Process(
            target=serve, args=(dsn, app_id, task_queue, concurrency, self._ready, self._stop,
                                self._started_wall, trace_out if profile_to else None),
            name=f"hotmesh-bench-worker-{app_id}", daemon=True)
        self._profile_to = profile_to
        self._profiler: PySpy | None = None

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def started_wall(self) -> float:
        """The worker process's ``time.time()`` just before its worker started claiming."""
        return float(self._started_wall.value)

    def start(self) -> WorkerProcess:
        self._process.start()
        if not self._ready.wait(START_TIMEOUT):
            self._process.kill()
            raise RuntimeError("the worker process did not start")
        if self._profile_to is not None:
            self._profiler = PySpy(self.pid, self._profile_to).start()
        return self

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)

    def stop(self) -> None:
        """Stop the worker gracefully (its connections close, so its stats flush)."""
        if self._profiler is not None:
            self._profiler.stop()
            self._profiler = None
        if not self._process.is_alive():
            return
        self._stop.set()
        if self._profile_to is not None and self._trace_in.poll(STOP_TIMEOUT):
            trace = self._trace_in.recv()
            self._profile_to.with_suffix(".sql.json").write_text(json.dumps(trace))
        self._process.join(STOP_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5.0)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(dsn: str, app_id: str, task_queue: str, concurrency: int, ready: Event,
          stop: Event, started_wall: Synchronized[float], trace_to: Connection | None) -> None:
    """The worker process: one MemFlow, one worker, until told to stop."""
    from hotmesh_sync import MemFlow

    from . import workloads
    from .harness import quiet_logging
    from .sqltrace import StatementTrace

    quiet_logging()
    with MemFlow.init(app_id, dsn, pool_size=2) as memflow:
        trace = StatementTrace(memflow.schema) if trace_to is not None else None
        if trace is not None:
            trace.install()
        worker = memflow.worker(task_queue=task_queue, workflows=workloads.WORKFLOWS,
                                activities=workloads.ACTIVITIES, concurrency=concurrency)
        started_wall.value = time.time()
        worker.start()
        ready.set()
        stop.wait()
        worker.stop()
        if trace is not None and trace_to is not None:
            trace_to.send(trace.snapshot())
