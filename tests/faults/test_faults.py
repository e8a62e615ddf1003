"""Leases, graceful stops, poison activities and duplicate delivery, with real processes."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, errors

from .chaos_workflows import duplicate_flow, long_flow, poison_flow, quick_flow
from .conftest import WorkerProcesses, effect_counts

pytestmark = pytest.mark.slow


def wait_for_effect(mf: MemFlow, key: str, count: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while effect_counts(mf).get((key, 0), 0) < count:
        assert time.monotonic() < deadline, f"activity {key} never ran {count} time(s)"
        time.sleep(0.05)


def test_lease_lapses_after_sigkill_and_the_activity_runs_elsewhere(
        mf: MemFlow, workers: WorkerProcesses) -> None:
    first = workers.start(queue="long", lease=1.0)
    handle = mf.workflow.start(long_flow, [4.0], task_queue="long")
    wait_for_effect(mf, "long")
    first.send_signal(signal.SIGKILL)
    first.wait()
    workers.start(queue="long", lease=1.0)
    assert handle.result(timeout=60) == "finished"
    assert effect_counts(mf)[("long", 0)] == 2


def test_live_worker_heartbeat_prevents_a_second_run(mf: MemFlow,
                                                     workers: WorkerProcesses) -> None:
    workers.start(queue="long", lease=1.0)
    workers.start(queue="long", lease=1.0)
    assert mf.workflow.execute(long_flow, [3.5], task_queue="long", timeout=60) == "finished"
    assert effect_counts(mf)[("long", 0)] == 1


def test_sigterm_stops_gracefully_and_nothing_is_lost(mf: MemFlow,
                                                      workers: WorkerProcesses) -> None:
    env = {"CHAOS_ACTIVITY_SECONDS": "0.2"}
    leaving = workers.start(queue="chaos", extra_env=env)
    workers.start(queue="chaos", extra_env=env)
    handles = [mf.workflow.start(quick_flow, [n], task_queue="chaos") for n in range(40)]
    time.sleep(1.0)
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=45) == 0
    assert sorted(h.result(timeout=60) for h in handles) == list(range(40))
    assert all(effect_counts(mf).get((f"quick-{n}", n), 0) >= 1 for n in range(40))


def test_poison_activity_is_dead_lettered_while_others_complete(
        mf: MemFlow, workers: WorkerProcesses) -> None:
    workers.start(queue="chaos", lease=1.0)
    poison = mf.workflow.start(poison_flow, task_queue="chaos", workflow_id="poison")
    good = [mf.workflow.start(quick_flow, [n], task_queue="chaos") for n in range(10)]
    deadline = time.monotonic() + 90
    restarts = 0
    while poison.status() not in ("failed", "completed"):
        assert time.monotonic() < deadline, "the poison workflow was never dead-lettered"
        if not workers.alive():
            workers.start(queue="chaos", lease=1.0)   # a supervisor restarting the worker
            restarts += 1
        time.sleep(0.1)
    with pytest.raises(errors.WorkflowFailedError) as info:
        poison.result(timeout=5)
    assert info.value.code == 598 and info.value.error_type == "WorkerLost"
    assert "claimed" in info.value.message
    if not workers.alive():
        workers.start(queue="chaos", lease=1.0)
    assert sorted(h.result(timeout=60) for h in good) == list(range(10))
    # Bounded: one first try plus MAX_RECOVERIES (3) recoveries, then dead-lettered.
    assert effect_counts(mf)[("poison", 0)] == 4
    assert restarts >= 3


def test_a_task_claimed_twice_does_not_apply_its_step_twice(
        mf: MemFlow, workers: WorkerProcesses) -> None:
    workers.start(queue="dup", lease=30.0)
    handle = mf.workflow.start(duplicate_flow, ["dup", 5.0], task_queue="dup")
    wait_for_effect(mf, "dup")
    # Expire the lease under the live worker: a second worker claims it too.
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "UPDATE {}.tasks SET lease_until = now() - interval '1 second'"
            " WHERE kind = 'activity'").format(sql.Identifier(mf.schema)))
    workers.start(queue="dup", lease=30.0)
    wait_for_effect(mf, "dup", count=2)
    assert handle.result(timeout=60) == {"applied": 1, "seen": ["dup"]}
    steps: list[Any] = [s for s in handle.steps() if s["kind"] == "activity"]
    assert len(steps) == 1


def test_graceful_stop_hands_back_work_it_cannot_finish(mf: MemFlow,
                                                        workers: WorkerProcesses) -> None:
    proc = workers.start(queue="long", lease=30.0)
    handle = mf.workflow.start(long_flow, [60.0], task_queue="long")
    wait_for_effect(mf, "long")
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0
    with psycopg.connect(mf.dsn) as conn:
        row = conn.execute(sql.SQL(
            "SELECT leased_by FROM {}.tasks WHERE kind = 'activity'").format(
                sql.Identifier(mf.schema))).fetchone()
    assert row == (None,), "the in-flight activity was not handed back"
    handle.interrupt()
