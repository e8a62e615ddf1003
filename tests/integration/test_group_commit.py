"""The worker's group commit: many steps in one transaction, each recorded once,
and a batch that fails redone step by step; tasks notify only sleeping workers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, workflow
from hotmesh_sync.store import store as store_module

runs: Counter[str] = Counter()
runs_lock = threading.Lock()


def bump(key: str) -> str:
    with runs_lock:
        runs[key] += 1
    return key


acts = workflow.proxy_activities(activities=[bump])


def three_steps(name: str) -> list[str]:
    return [acts.bump(f"{name}:{i}") for i in range(3)]


def side_by_side(name: str) -> list[Any]:
    """Three activities at once: they finish together, often in one batch."""
    return workflow.all(*[(lambda i=i: acts.bump(f"{name}:{i}")) for i in range(3)])


def counting(name: str) -> int:
    memory = workflow.entity()
    for i in range(3):
        acts.bump(f"{name}:{i}")
        memory.increment("n")
    return int(memory.get("n"))


WORKFLOWS = [three_steps, side_by_side, counting]


@pytest.fixture(autouse=True)
def fresh_counts() -> None:
    runs.clear()


def test_many_workflows_each_step_once(mf: MemFlow, worker: Any) -> None:
    worker("gc", WORKFLOWS, [bump], concurrency=8)
    handles = [mf.workflow.start(three_steps, [f"w{i}"], task_queue="gc") for i in range(40)]
    for i, handle in enumerate(handles):
        assert handle.result(timeout=60) == [f"w{i}:{k}" for k in range(3)]
        assert [s["key"] for s in handle.steps()] == ["0", "1", "2"]
    assert set(runs.values()) == {1} and len(runs) == 120


def test_activities_that_finish_together_are_recorded_once(mf: MemFlow, worker: Any) -> None:
    worker("gc", WORKFLOWS, [bump], concurrency=8)
    handles = [mf.workflow.start(side_by_side, [f"p{i}"], task_queue="gc") for i in range(10)]
    for i, handle in enumerate(handles):
        assert handle.result(timeout=60) == [f"p{i}:{k}" for k in range(3)]
    assert set(runs.values()) == {1} and len(runs) == 30


def test_entity_commands_in_batched_activations_apply_once(mf: MemFlow, worker: Any) -> None:
    worker("gc", WORKFLOWS, [bump], concurrency=8)
    handles = [mf.workflow.start(counting, [f"c{i}"], task_queue="gc") for i in range(20)]
    assert [h.result(timeout=60) for h in handles] == [3] * 20
    assert all(len(h.history()) == 3 for h in handles)


def test_a_failed_batch_is_recorded_again_step_by_step(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch's statement fails (once per worker thread's batch, the first
    few times): its steps are recorded one by one instead, none lost, none
    twice, no activity run again."""
    original = store_module.Tx.record_steps
    failures = {"left": 3}

    def flaky(self: store_module.Tx, items: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise psycopg.errors.DataException("the batch failed (simulated)")
        return original(self, items)

    monkeypatch.setattr(store_module.Tx, "record_steps", flaky)
    worker("gc", WORKFLOWS, [bump], concurrency=8)
    handles = [mf.workflow.start(three_steps, [f"f{i}"], task_queue="gc") for i in range(16)]
    for i, handle in enumerate(handles):
        assert handle.result(timeout=60) == [f"f{i}:{k}" for k in range(3)]
    assert failures["left"] == 0
    assert set(runs.values()) == {1} and len(runs) == 48


def listen(dsn: str, schema: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier("hotmesh_" + schema)))
    return conn


def queue_notices(conn: psycopg.Connection[Any], wait: float, stop_after: int | None = None,
                  ) -> list[str]:
    """The queue notifications that arrive within ``wait`` seconds (or until
    ``stop_after`` of them did)."""
    found: list[str] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and (stop_after is None or len(found) < stop_after):
        for note in conn.notifies(timeout=max(0.01, deadline - time.monotonic()),
                                  stop_after=1):
            if note.payload.startswith("t:"):
                found.append(note.payload)
    return found


def test_tasks_notify_only_a_queue_where_a_worker_sleeps(mf: MemFlow, worker: Any,
                                                         pg_dsn: str) -> None:
    with listen(pg_dsn, mf.schema) as conn:
        mf.workflow.start(three_steps, ["nobody"], task_queue="gc")
        assert queue_notices(conn, 0.5) == []  # no worker: nobody to wake
        worker("gc", WORKFLOWS, [bump], concurrency=2)
        deadline = time.monotonic() + 30
        with psycopg.connect(pg_dsn, autocommit=True) as look:
            query = sql.SQL("SELECT count(*) FROM {}.sleepers WHERE task_queue = 'gc'").format(
                sql.Identifier(mf.schema))
            while look.execute(query).fetchone() != (1,):  # its threads went to sleep
                assert time.monotonic() < deadline, "the idle worker never marked its sleep"
                time.sleep(0.05)
        handle = mf.workflow.start(three_steps, ["somebody"], task_queue="gc")
        assert queue_notices(conn, 30, stop_after=1) == ["t:gc"]
        assert handle.result(timeout=30) == [f"somebody:{k}" for k in range(3)]
