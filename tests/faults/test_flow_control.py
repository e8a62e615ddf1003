"""Queue flow control and priorities with real worker processes (API.md §12).

The limits are enforced by the claim query, so they must hold across
processes: two `hotmesh-sync worker` processes serve the limited queue here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow

ROOT = Path(__file__).resolve().parents[2]


class Processes:
    def __init__(self, mf: MemFlow, table: str, log_dir: Path) -> None:
        self.mf, self.table, self.log_dir = mf, table, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, queue: str, concurrency: int = 4) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), FLOW_DSN=self.mf.dsn,
                   FLOW_TABLE=self.table)
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "hotmesh_sync", "worker", "tests.faults.flow_workflows",
             "--task-queue", queue, "--concurrency", str(concurrency), "--dsn", self.mf.dsn,
             "--app-id", self.mf.app_id, "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def tracked(mf: MemFlow, tmp_path: Path) -> Iterator[Processes]:
    table = f"{mf.schema}.tracked"
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE {}.tracked (id serial PRIMARY KEY, name text, pid int,"
            " started_at timestamptz, ended_at timestamptz)").format(sql.Identifier(mf.schema)))
    procs = Processes(mf, table, tmp_path)
    yield procs
    procs.stop()


def intervals(mf: MemFlow) -> list[tuple[str, int, datetime, datetime]]:
    with psycopg.connect(mf.dsn) as conn:
        return list(conn.execute(sql.SQL(
            "SELECT name, pid, started_at, ended_at FROM {}.tracked ORDER BY started_at").format(
                sql.Identifier(mf.schema))).fetchall())


def peak_overlap(rows: list[tuple[str, int, datetime, datetime]]) -> int:
    events = sorted([(r[2], 1) for r in rows] + [(r[3], -1) for r in rows],
                    key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = running = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def run_all(mf: MemFlow, count: int, seconds: float, **options: object) -> None:
    handles = [mf.workflow.start("one_tracked", [f"a{i}", seconds], task_queue="flows",
                                 **options)  # type: ignore[arg-type]
               for i in range(count)]
    for handle in handles:
        handle.result(timeout=60)


def test_concurrency_holds_across_worker_processes(mf: MemFlow, tracked: Processes) -> None:
    assert mf.queues.configure("limited", concurrency=2) == {
        "concurrency": 2, "rate_limit": None, "running": 0, "ready": 0}
    for _ in range(2):
        tracked.start("limited", concurrency=4)
    tracked.start("flows", concurrency=4)
    run_all(mf, 10, 0.3)
    rows = intervals(mf)
    assert len(rows) == 10
    # Either process alone would run four at once: the limit is the queue's.
    assert peak_overlap(rows) == 2  # never more, and the limit was reached
    assert all(proc.poll() is None for proc in tracked.procs)


def test_rate_limit_holds_across_worker_processes(mf: MemFlow, tracked: Processes) -> None:
    mf.queues.configure("limited", rate_limit="4/second")
    for _ in range(2):
        tracked.start("limited", concurrency=4)
    tracked.start("flows", concurrency=4)
    run_all(mf, 12, 0.0)
    starts = [r[2] for r in intervals(mf)]
    assert len(starts) == 12
    # A full bucket of 4, then 4 more per second: in any window of w seconds
    # at most 4 + 4w claims; 12 need at least 2 seconds. The times here are
    # when each activity began, a few milliseconds after its claim: one start
    # of slack for that.
    for i, first in enumerate(starts):
        for j in range(i, len(starts)):
            window = (starts[j] - first).total_seconds()
            assert j - i + 1 <= 4 + 4 * window + 1, (i, j, window)
    assert (starts[-1] - starts[0]).total_seconds() >= 1.9


def test_lifting_the_limits_lets_the_queue_run_freely(mf: MemFlow, tracked: Processes) -> None:
    mf.queues.configure("limited", concurrency=1)
    mf.queues.configure("limited")  # no limits
    assert mf.queues.get("limited")["concurrency"] is None
    tracked.start("limited", concurrency=4)
    tracked.start("flows", concurrency=4)
    run_all(mf, 4, 0.5)
    assert peak_overlap(intervals(mf)) >= 3


def test_priority_orders_the_claims(mf: MemFlow, tracked: Processes) -> None:
    mf.queues.configure("limited", concurrency=1)
    low = [mf.workflow.start("one_tracked", [f"low{i}", 0.05], task_queue="flows")
           for i in range(4)]
    high = [mf.workflow.start("one_tracked", [f"high{i}", 0.05], task_queue="flows",
                              priority=10) for i in range(4)]
    tracked.start("flows", concurrency=1)
    time.sleep(1.0)  # every workflow has queued its activity by now
    tracked.start("limited", concurrency=1)
    for handle in low + high:
        handle.result(timeout=60)
    names = [r[0] for r in intervals(mf)]
    assert sorted(names[:4]) == ["high0", "high1", "high2", "high3"]


def test_queue_state_and_bad_limits(mf: MemFlow) -> None:
    assert mf.queues.get("nothing-set") == {"concurrency": None, "rate_limit": None,
                                            "running": 0, "ready": 0}
    state = mf.queues.configure("q", concurrency=3, rate_limit="100/minute")
    assert state["rate_limit"] == "100/minute" and state["concurrency"] == 3
    assert mf.queues.configure("q", rate_limit=(10, "30s"))["rate_limit"] == "10/30s"
    assert [q["name"] for q in mf.queues.list()] == ["q"]
    for bad in ({"concurrency": 0}, {"concurrency": True}, {"concurrency": 1.5},
                {"rate_limit": "fast"}, {"rate_limit": "0/second"},
                {"rate_limit": "5/0s"}, {"rate_limit": 5}):
        with pytest.raises((ValueError, TypeError)):
            mf.queues.configure("q", **bad)  # type: ignore[arg-type]
    assert mf.queues.get("q")["concurrency"] is None  # the last good one: rate only
    with pytest.raises(ValueError):
        mf.queues.configure("bad\x01name", concurrency=1)
    with pytest.raises((ValueError, TypeError)):
        mf.workflow.start("x", priority=2**40)
