"""The pytest plugin: a fresh app per test, in-process workers, time skipping.

Installed with the package and active in any project that has pytest (the
``pytest11`` entry point), it adds two fixtures::

    def test_order(memflow, run_worker):            # memflow: a fresh app schema per test
        with run_worker(task_queue="q", workflows=[order_flow]) as w:
            h = memflow.workflow.start(order_flow, task_queue="q")
            w.skip_time("2 days")                   # timers and timeouts due within it fire now
            assert h.result(timeout=10) == ...

The database is ``$HOTMESH_TEST_DSN``, else the embedded default (API.md §8);
never ``$HOTMESH_DSN``, which may name a database that matters. Each test
gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .durations import Duration, to_seconds
from .embedded import default_dsn
from .memflow import MemFlow
from .store.schedules import database_now, get_schedule, list_schedules
from .store.store import Tx
from .worker import Worker
from .worker.schedule_ticks import fire_due

__all__ = ["TestWorker", "memflow", "run_worker", "skip_time"]


def test_dsn() -> str:
    """``$HOTMESH_TEST_DSN``, else the embedded default."""
    return os.environ.get("HOTMESH_TEST_DSN") or default_dsn()


test_dsn.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever its name


def skip_time(mf: MemFlow, span: Duration) -> int:
    """Make everything that falls due within ``span`` from now due at once:
    durable sleeps, ``wait_for`` timeouts, ``run_timeout`` deadlines, delayed
    retries of workflows (activity retries keep their backoff), and schedule
    ticks, each tick fired as if its time had come (its workflow id names the
    tick). Returns how many timers and ticks that was; workers are woken.

    Time inside workflows is not changed: ``workflow.now()`` still reads the
    clock, so a workflow that compares dates sees the real time.
    """
    seconds = to_seconds(span)
    ticks = mf.store.run(lambda tx: _fire_ticks(tx, seconds))
    return ticks + mf.store.run(lambda tx: tx.skip_time(seconds))


def _fire_ticks(tx: Tx, seconds: float) -> int:
    """Fire every tick of every unpaused schedule due within ``seconds``, in
    order, each at its own time: overlap policies judge them as they would
    have then (a workflow started by one tick has not ended by the next)."""
    horizon = database_now(tx) + timedelta(seconds=seconds)
    fired = 0
    for listed in list_schedules(tx):
        row = get_schedule(tx, listed.id, lock=True)
        while (row is not None and not row.paused and row.next_run_at is not None
               and row.next_run_at <= horizon):
            fire_due(tx, row, row.next_run_at)
            fired += 1
            row = get_schedule(tx, listed.id, lock=True)
    return fired


class TestWorker:
    """An in-process worker started by ``run_worker``; a context manager too."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, mf: MemFlow, worker: Worker) -> None:
        self.memflow = mf
        self.worker = worker

    def skip_time(self, span: Duration) -> int:
        """See ``hotmesh_sync.testing.skip_time``."""
        return skip_time(self.memflow, span)

    def stop(self) -> None:
        self.worker.stop(timeout=10)

    def __enter__(self) -> TestWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def memflow() -> Iterator[MemFlow]:
    """A MemFlow on a fresh app schema, closed and dropped after the test."""
    dsn = test_dsn()
    app_id = f"test_{uuid.uuid4().hex[:12]}"
    mf = MemFlow.init(app_id=app_id, dsn=dsn, pool_size=4)
    try:
        yield mf
    finally:
        mf.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(mf.schema)))


@pytest.fixture
def run_worker(memflow: MemFlow) -> Iterator[Callable[..., TestWorker]]:
    """``run_worker(task_queue="default", workflows=..., activities=..., concurrency=4)``
    starts an in-process worker on ``memflow``; every one is stopped at teardown."""
    started: list[TestWorker] = []

    def start(task_queue: str = "default", workflows: Any = None, activities: Any = None,
              concurrency: int = 4, **options: Any) -> TestWorker:
        options.setdefault("poll_interval", 1.0)
        worker = memflow.worker(task_queue, workflows, activities, concurrency, **options)
        handle = TestWorker(memflow, worker.start())
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
