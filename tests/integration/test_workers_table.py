"""Workers you can see (mf.workers()) and work that says why it waits (API.md §13)."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, workflow


def known() -> str:
    return "known"


def other() -> str:
    return "other"


def greet(name: str) -> str:
    return f"hi {name}"


acts = workflow.proxy_activities(activities=[greet])


def _wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def test_live_workers_are_listed_and_leave_when_stopped(mf: MemFlow, worker: Any) -> None:
    w = worker("q1", [known], [greet])
    rows = mf.workers()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == w.worker_id and row["task_queues"] == ["q1"]
    assert row["workflows"] == ["known"] and row["activities"] == ["greet"]
    assert row["pid"] > 0 and row["host"] and row["started_at"] <= row["last_seen"]
    w.stop()
    assert mf.workers() == []


def test_stale_rows_are_not_listed_and_are_removed(mf: MemFlow) -> None:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "INSERT INTO {}.workers (id, host, pid, task_queues, workflows, activities,"
            " last_seen) VALUES ('gone', 'h', 1, '{{q}}', '{{}}', '{{}}',"
            " now() - interval '1 hour')").format(sql.Identifier(mf.schema)))
    assert mf.workers() == []
    assert mf.store.run(lambda tx: tx.drop_stale_workers(60.0)) == 1


def test_unregistered_work_says_why_and_is_adopted_by_a_worker_that_registers_it(
        mf: MemFlow, worker: Any, pg_dsn: str) -> None:
    worker("q2", [other])
    handle = mf.workflow.start("known", task_queue="q2")
    reason = "waiting for a worker that registers 'known' on queue 'q2'"
    _wait_for(lambda: handle.describe()["waiting_for"] == reason)
    assert handle.status() == "pending"
    assert [r["waiting_for"] for r in mf.workflow.list()] == [reason]
    # Set aside, not retried in a loop: its one run task is minutes away.
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(sql.SQL(
            "SELECT extract(epoch FROM run_at - now()) FROM {}.tasks WHERE job_id = %s").format(
                sql.Identifier(mf.schema)), [handle.workflow_id]).fetchall()
    assert len(rows) == 1 and rows[0][0] > 200
    worker("q2", [known])  # registers it: the set-aside work is due at once
    assert handle.result(timeout=10) == "known"
    assert handle.describe()["waiting_for"] is None


def test_a_worker_hands_work_to_a_live_worker_that_registers_it(
        mf: MemFlow, worker: Any) -> None:
    worker("q3", [other], concurrency=2)
    worker("q3", [known], concurrency=2)
    handles = [mf.workflow.start("known", task_queue="q3") for _ in range(6)]
    for handle in handles:
        assert handle.result(timeout=15) == "known"
        assert handle.describe()["waiting_for"] is None


@pytest.mark.parametrize("functions", [[], [known]])
def test_a_worker_announces_what_it_registers(mf: MemFlow, worker: Any,
                                              functions: list[Any]) -> None:
    worker("q4", functions, [greet])
    assert [r["workflows"] for r in mf.workers()] == [[f.__name__ for f in functions]]
