"""Every failure ends: bounded task failures, activation limits, interrupts that
never wait behind a runaway activation, and a worker that says what it could not stop."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, RetryPolicy, errors, workflow
from hotmesh_sync.worker import worker as worker_module


def noted(tag: str) -> str:
    return f"noted {tag}"


acts = workflow.proxy_activities(activities=[noted], retry=RetryPolicy(maximum_attempts=1))


def sets_entity() -> str:
    workflow.entity().set({"ready": True})
    return "done"


def calls_activity() -> str:
    return str(acts.noted("x"))


def refuse_steps_of(pg_dsn: str, schema: str, job_id: str) -> None:
    """A trigger that makes every step write of one workflow fail in PostgreSQL."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.job_id = {job} THEN RAISE EXCEPTION 'refused by test'; END IF; "
            "RETURN NEW; END $$").format(s=sql.Identifier(schema), job=sql.Literal(job_id)))
        conn.execute(sql.SQL(
            "CREATE TRIGGER refuse BEFORE INSERT ON {s}.steps "
            "FOR EACH ROW EXECUTE FUNCTION {s}.refuse()").format(s=sql.Identifier(schema)))


@pytest.mark.parametrize("flow", [sets_entity, calls_activity])
def test_a_task_that_keeps_failing_in_postgres_fails_its_workflow(
        mf: MemFlow, worker: Any, pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
        flow: Any) -> None:
    """It used to be set aside every 5 s forever; now it ends as 598 StoreError."""
    monkeypatch.setenv("HOTMESH_MAX_TASK_FAILURES", "3")
    monkeypatch.setattr(worker_module, "TASK_RETRY_DELAY", 0.05)
    refuse_steps_of(pg_dsn, mf.schema, "doomed")
    worker("default", [flow], activities=[noted])
    handle = mf.workflow.start(flow, workflow_id="doomed")
    with pytest.raises(errors.WorkflowFailedError) as failed:
        handle.result(timeout=30)
    assert failed.value.code == errors.CODE_FATAL
    assert failed.value.error_type == "StoreError"
    assert "refused by test" in failed.value.message
    assert "3 times" in failed.value.message


def appends_too_much() -> Any:
    entity = workflow.entity()
    try:  # noqa: SIM105 - as a user would write it
        entity.append("items", "y" * 300)
    except errors.PayloadTooLargeError:
        pass  # the document is now above the ceiling: its step cannot be recorded
    return entity.get("items")


def test_a_command_whose_step_cannot_be_recorded_is_rolled_back(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The UPDATE, its step and its history commit together or not at all,
    even when the workflow catches the error."""
    monkeypatch.setenv("HOTMESH_MAX_TASK_FAILURES", "2")
    monkeypatch.setattr(worker_module, "TASK_RETRY_DELAY", 0.05)
    monkeypatch.setenv("HOTMESH_MAX_PAYLOAD_BYTES", "1000")
    worker("default", [appends_too_much])
    items = ["x" * 300] * 3  # 918 bytes of JSON: one more item is above the ceiling
    handle = mf.workflow.start(appends_too_much, search={"items": items})
    with pytest.raises(errors.WorkflowFailedError) as failed:
        handle.result(timeout=30)
    assert failed.value.error_type == "StoreError"
    assert handle.state() == {"items": items}
    assert [h["version"] for h in handle.history()] == [1]
    assert handle.steps() == []


def runaway_increments() -> None:
    while True:
        workflow.entity().increment("n")


runaway_started = threading.Event()


def slow_runaway(pause: float) -> None:
    while True:
        workflow.entity().increment("n")
        runaway_started.set()
        time.sleep(pause)


def test_too_many_calls_in_one_activation_fail_the_workflow(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTMESH_MAX_ACTIVATION_STEPS", "50")
    worker("default", [runaway_increments])
    handle = mf.workflow.start(runaway_increments)
    with pytest.raises(errors.WorkflowFailedError) as failed:
        handle.result(timeout=30)
    assert failed.value.code == errors.CODE_FATAL
    assert failed.value.error_type == "ActivationLimitError"
    assert "HOTMESH_MAX_ACTIVATION_STEPS" in failed.value.message
    assert handle.state() == {"n": 50}


def test_an_activation_that_runs_too_long_fails_and_interrupt_never_waits_for_it(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from hotmesh_sync.store import entity_ops, store

    monkeypatch.setenv("HOTMESH_MAX_ACTIVATION_SECONDS", "5")
    monkeypatch.setattr(store, "INTERRUPT_LOCK_WAIT", 0.5)
    monkeypatch.setattr(entity_ops, "OUTSIDE_LOCK_WAIT", 0.5)
    worker("default", [slow_runaway])
    runaway_started.clear()
    handle = mf.workflow.start(slow_runaway, [0.02])
    assert runaway_started.wait(10)
    # The activation's first increment took the entity's lock (and its run's
    # lock is held): the interrupt must not wait for either.
    assert handle.interrupt("enough") is True
    assert handle.status() in ("pending", "running")  # takes effect when the activation ends
    # A command from outside does not queue behind the activation either.
    with pytest.raises(TimeoutError, match="held by a running activation"):
        mf.entity(handle.workflow_id).increment("outside")
    with pytest.raises(errors.WorkflowFailedError) as failed:
        handle.result(timeout=30)
    assert failed.value.error_type in ("ActivationLimitError", "WorkflowInterruptedError")
    assert handle.status() in ("failed", "interrupted")


spinning = threading.Event()


def spins(seconds: float) -> str:
    spinning.set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)  # no durable call: nothing inside the library can stop it
    return "spun"


def test_stop_reports_the_threads_it_could_not_stop(mf: MemFlow) -> None:
    w = mf.worker("default", [spins], concurrency=1, poll_interval=0.2).start()
    spinning.clear()
    mf.workflow.start(spins, [2.0])
    assert spinning.wait(10)
    stuck = w.stop(timeout=0.3)
    assert stuck == ["hotmesh-worker-0"]


def test_a_claim_retried_after_a_transient_fault_reports_only_its_own_task(
        mf: MemFlow, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first attempt claims a task and hits a transient fault; before the
    retry, the task is gone. The claim must say it did nothing."""
    from hotmesh_sync.store import store as store_module

    w = mf.worker("default", [sets_entity], concurrency=1)
    w._pool.open(wait=True, timeout=10)
    mf.workflow.start(sets_entity, workflow_id="vanishing")
    original = w._do_task
    calls: list[int] = []

    def faulty(tx: Any, task: Any) -> Any:
        calls.append(task.id)
        if len(calls) == 1:
            raise psycopg.OperationalError("connection lost (simulated)")
        return original(tx, task)

    def retry_after_theft(fn: Any) -> Any:
        # The store's retry, with the task taken away between the attempts
        # (the first attempt's transaction has rolled back by then).
        try:
            return fn()
        except psycopg.OperationalError:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DELETE FROM {}.tasks").format(
                    sql.Identifier(mf.schema)))
            return fn()

    monkeypatch.setattr(w, "_do_task", faulty)
    monkeypatch.setattr(store_module, "call_with_retry", retry_after_theft)
    try:
        did_work, _ = w._claim_once()
        assert did_work is False
        assert len(calls) == 1
    finally:
        w._pool.close()
