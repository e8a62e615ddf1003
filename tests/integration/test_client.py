"""The client API against a real database: start options, signals, handles, listing."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, RetryPolicy, errors, workflow
from hotmesh_sync import client as client_module


def echo(*args: Any) -> list[Any]:
    return list(args)


def waits_once() -> Any:
    return workflow.wait_for("go")


def waits_with_timeout() -> dict[str, Any]:
    return {"got": workflow.wait_for("never-sent", timeout="300ms")}


def reads_info() -> dict[str, Any]:
    info = workflow.info()
    first_uuid = workflow.uuid4()
    workflow.sleep_for(0)
    return {
        "workflow_id": info.workflow_id, "workflow_name": info.workflow_name,
        "task_queue": info.task_queue, "entity": info.entity, "hook": info.hook,
        "attempt": info.attempt, "uuid": first_uuid, "uuid_again": workflow.uuid4(),
        "replaying_at_end": workflow.info().is_replaying,
    }


def swallows_everything() -> str:
    try:
        workflow.wait_for("go")
    except Exception:  # must not catch the suspension
        return "swallowed"
    return "waited properly"


def interrupts_other(target: str) -> str:
    workflow.interrupt(target, reason="from a workflow")
    return "done"


WORKFLOWS = [echo, waits_once, waits_with_timeout, reads_info, swallows_everything,
             interrupts_other]


@pytest.fixture
def running(mf: MemFlow, worker: Any) -> MemFlow:
    worker("q1", workflows=WORKFLOWS)
    return mf


def count_jobs(mf: MemFlow) -> int:
    with mf.pool.connection() as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.jobs").format(
            sql.Identifier(mf.schema))).fetchone()
        assert row is not None
        return int(row[0])


def test_start_with_every_option(running: MemFlow) -> None:
    handle = running.workflow.start(
        workflow_name="echo", args=["a", 1, {"b": [True, None]}], task_queue="q1",
        workflow_id="opt-1", entity="echoes", search={"tier": "gold"},
        retry=RetryPolicy(maximum_attempts=2), expire="1 hour")
    assert handle.workflow_id == "opt-1"
    assert handle.result(timeout=30) == ["a", 1, {"b": [True, None]}]
    assert handle.state() == {"tier": "gold"}
    row = running.workflow.list(entity="echoes")[0]
    assert row["id"] == "opt-1" and row["workflow_name"] == "echo"
    assert row["task_queue"] == "q1" and row["status"] == "completed"
    with running.pool.connection() as conn:
        expire = conn.execute(sql.SQL("SELECT expire_seconds, entity FROM {}.jobs").format(
            sql.Identifier(running.schema))).fetchone()
    assert expire == (3600.0, "echoes")


def test_task_queue_defaults_to_entity_then_default(mf: MemFlow) -> None:
    mf.workflow.start("echo", entity="q1", workflow_id="by-entity")
    mf.workflow.start("echo", workflow_id="by-default")
    queues = {r["id"]: r["task_queue"] for r in mf.workflow.list()}
    assert queues == {"by-entity": "q1", "by-default": "default"}


def test_duplicate_id_errors_and_attach_returns_the_existing(running: MemFlow) -> None:
    first = running.workflow.start(echo, ["x"], task_queue="q1", workflow_id="dup")
    with pytest.raises(errors.DuplicateWorkflowError):
        running.workflow.start(echo, ["y"], task_queue="q1", workflow_id="dup")
    attached = running.workflow.start(echo, ["z"], task_queue="q1", workflow_id="dup",
                                      if_exists="attach")
    assert attached.workflow_id == first.workflow_id
    assert attached.result(timeout=30) == ["x"]


def test_duplicate_start_race_among_eight_threads(mf: MemFlow) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait()
        try:
            mf.workflow.start("echo", [1], workflow_id="raced")
            outcomes.append("started")
        except errors.DuplicateWorkflowError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["started"]
    assert count_jobs(mf) == 1


def test_non_json_input_is_refused_before_anything_is_written(mf: MemFlow) -> None:
    with pytest.raises(TypeError):
        mf.workflow.start("echo", [object()], workflow_id="bad-args")
    with pytest.raises(TypeError):
        mf.workflow.start("echo", [1], search={"when": time}, workflow_id="bad-search")
    with pytest.raises(TypeError):
        mf.workflow.start("echo", [float("nan")])
    assert count_jobs(mf) == 0
    mf.workflow.start("echo", workflow_id="ok")
    with pytest.raises(TypeError):
        mf.workflow.signal("s", {1, 2}, workflow_id="ok")


def test_bad_app_ids_are_configuration_errors(pg_dsn: str) -> None:
    for bad in ["", "has space", "semi;colon", "x" * 49, "quote'", "dot.ted"]:
        with pytest.raises(errors.ConfigurationError):
            MemFlow.init(app_id=bad, dsn=pg_dsn)


def test_app_id_maps_to_schema(pg_dsn: str) -> None:
    with MemFlow.init(app_id="My-App-t1", dsn=pg_dsn) as memflow:
        assert memflow.schema == "my_app_t1"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA my_app_t1 CASCADE")


def test_get_handle_and_signal_unknown_workflow(mf: MemFlow) -> None:
    with pytest.raises(errors.WorkflowNotFoundError):
        mf.workflow.get_handle("nope")
    with pytest.raises(errors.WorkflowNotFoundError):
        mf.workflow.signal("s", 1, workflow_id="nope")


def test_result_waits_on_notification_not_polling(running: MemFlow,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # With the safety poll pushed out of reach, only a notification can end the wait.
    monkeypatch.setattr(client_module, "SAFETY_POLL", 120.0)
    handle = running.workflow.start(waits_once, task_queue="q1")
    threading.Timer(0.5, lambda: handle.signal("go", "now")).start()
    assert handle.result(timeout=30) == "now"


def test_result_timeout_raises_builtin_timeout(running: MemFlow) -> None:
    handle = running.workflow.start(waits_once, task_queue="q1")
    with pytest.raises(TimeoutError):
        handle.result(timeout=0.3)
    assert handle.status() == "waiting"


def test_wait_for_timeout_returns_none(running: MemFlow) -> None:
    assert running.workflow.execute(waits_with_timeout, task_queue="q1", timeout=30) == {
        "got": None}


def test_info_and_deterministic_uuid(running: MemFlow) -> None:
    result = running.workflow.execute(reads_info, task_queue="q1", workflow_id="info-1",
                                      entity="infos", timeout=30)
    assert result["workflow_id"] == "info-1" and result["workflow_name"] == "reads_info"
    assert result["task_queue"] == "q1" and result["entity"] == "infos"
    assert result["hook"] is False and result["attempt"] == 1
    assert result["replaying_at_end"] is False
    assert result["uuid"] != result["uuid_again"]
    assert len(result["uuid"]) == 36 and result["uuid"][14] == "4"


def test_except_exception_cannot_swallow_a_suspension(running: MemFlow) -> None:
    handle = running.workflow.start(swallows_everything, task_queue="q1")
    time.sleep(0.3)
    assert handle.status() == "waiting"
    handle.signal("go")
    assert handle.result(timeout=30) == "waited properly"


def test_workflow_interrupts_another(running: MemFlow) -> None:
    target = running.workflow.start(waits_once, task_queue="q1", workflow_id="victim")
    running.workflow.execute(interrupts_other, ["victim"], task_queue="q1", timeout=30)
    with pytest.raises(errors.WorkflowInterruptedError):
        target.result(timeout=5)


def test_list_filters_and_orders_newest_first(mf: MemFlow) -> None:
    for i in range(3):
        mf.workflow.start("echo", [i], workflow_id=f"l{i}", entity="e1" if i else "e0")
    assert [r["id"] for r in mf.workflow.list()] == ["l2", "l1", "l0"]
    assert [r["id"] for r in mf.workflow.list(entity="e1", limit=1)] == ["l2"]
    assert mf.workflow.list(status="completed") == []
    row = mf.workflow.list()[0]
    assert set(row) >= {"id", "entity", "workflow_name", "task_queue", "status",
                        "created_at", "updated_at"}


def test_signal_kept_until_consumed_even_if_sent_first(running: MemFlow) -> None:
    running.workflow.start(echo, task_queue="nobody-listens", workflow_id="pre")
    assert running.workflow.signal("go", "early", workflow_id="pre") == 1
    # A second workflow that waits later still gets its own signal only.
    handle = running.workflow.start(waits_once, task_queue="q1", workflow_id="later")
    handle.signal("go", "mine")
    assert handle.result(timeout=30) == "mine"
