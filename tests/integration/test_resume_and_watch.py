"""handle.retry() (resume from the failed step) and handle.wait_until()."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, RetryPolicy, client, errors, workflow

RUNS: dict[str, int] = {}
BROKEN: set[str] = set()


def counted(name: str) -> str:
    RUNS[name] = RUNS.get(name, 0) + 1
    if name in BROKEN:
        raise ConnectionError(f"{name} is down")
    return f"{name} ok"


acts = workflow.proxy_activities(activities=[counted], retry=RetryPolicy(maximum_attempts=1))


def two_steps(tag: str) -> list[str]:
    return [acts.counted(f"{tag}-first"), acts.counted(f"{tag}-second")]


def test_a_failed_workflow_runs_again_without_repeating_done_steps(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [two_steps], [counted])
    BROKEN.add("r2-second")
    handle = mf.workflow.start(two_steps, ["r2"])
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=10)
    assert info.value.code == 597
    BROKEN.discard("r2-second")
    assert handle.retry() is True
    assert handle.result(timeout=10) == ["r2-first ok", "r2-second ok"]
    assert RUNS["r2-first"] == 1 and RUNS["r2-second"] == 2
    assert handle.retry() is False  # completed: nothing to resume
    assert [s["kind"] for s in handle.steps()] == ["activity", "activity"]


def flaky_child(tag: str) -> str:
    return str(acts.counted(f"{tag}-child"))


def parent(tag: str) -> str:
    return "parent got " + str(workflow.exec_child(flaky_child, [tag]))


def test_retry_resumes_the_failed_child_too(mf: MemFlow, worker: Any) -> None:
    worker("default", [parent, flaky_child], [counted])
    BROKEN.add("r3-child")
    handle = mf.workflow.start(parent, ["r3"])
    with pytest.raises(errors.WorkflowFailedError):
        handle.result(timeout=10)
    BROKEN.discard("r3-child")
    assert handle.retry() is True
    assert handle.result(timeout=10) == "parent got r3-child ok"
    assert RUNS["r3-child"] == 2


def waits() -> str:
    return str(workflow.wait_for("go"))


def test_retry_resumes_an_interrupted_workflow_and_refuses_others(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [waits])
    handle = mf.workflow.start(waits)
    assert handle.retry() is False  # still going
    handle.interrupt("oops", force=True)
    assert handle.retry() is True
    handle.signal("go", "resumed")
    assert handle.result(timeout=10) == "resumed"
    with pytest.raises(errors.WorkflowNotFoundError):
        mf.workflow.get_handle("nope")
    with pytest.raises(errors.WorkflowNotFoundError):
        client.WorkflowHandle(mf, "nope").retry()


def progress(steps: int) -> str:
    entity = workflow.entity()
    for _ in range(steps):
        workflow.sleep_for(0.2)
        entity.increment("progress")
    return "done"


def _watchers(mf: MemFlow) -> int:
    with psycopg.connect(mf.dsn) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.watchers").format(
            sql.Identifier(mf.schema))).fetchone()
    assert row is not None
    return int(row[0])


def test_wait_until_is_woken_by_the_entity_change(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # With the safety re-read an hour away, only the notification can wake it.
    monkeypatch.setattr(client, "SAFETY_POLL", 3600.0)
    worker("default", [progress])
    handle = mf.workflow.start(progress, [3])
    seen: list[int] = []

    def check() -> None:
        seen.append(_watchers(mf))

    timer = threading.Timer(0.1, check)
    timer.start()
    document = handle.wait_until(lambda doc: doc.get("progress", 0) >= 3, timeout=20)
    timer.join()
    assert document == {"progress": 3}
    assert seen == [1] and _watchers(mf) == 0  # watched while waiting, not after


def test_wait_until_times_out_and_checks_its_input(mf: MemFlow) -> None:
    handle = mf.workflow.start(progress, [1])  # no worker: nothing changes
    with pytest.raises(TimeoutError):
        handle.wait_until(lambda doc: "progress" in doc, timeout=0.3)
    assert _watchers(mf) == 0
    assert handle.wait_until(lambda doc: doc == {}, timeout=1) == {}
    with pytest.raises(TypeError):
        handle.wait_until("not callable", timeout=1)  # type: ignore[arg-type]
    with pytest.raises(errors.WorkflowNotFoundError):
        client.WorkflowHandle(mf, "nope").wait_until(lambda doc: True, timeout=1)


def test_wait_until_sees_changes_made_from_outside(mf: MemFlow) -> None:
    handle = mf.workflow.start(progress, [1], workflow_id="outside")
    timer = threading.Timer(0.3, lambda: mf.entity("outside").set({"ready": True}))
    timer.start()
    assert handle.wait_until(lambda doc: doc.get("ready") is True, timeout=10) == {
        "ready": True}
    timer.join()
