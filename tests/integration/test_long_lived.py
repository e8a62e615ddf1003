"""Long-lived workflows (API.md §11): versioning with patches, continue-as-new
and the runs of a workflow id, restarts, run timeouts and wait_for_any."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, errors, workflow


def _wait_status(handle: Any, status: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != status:
        assert time.monotonic() < deadline, f"{handle.workflow_id} never became {status}"
        time.sleep(0.05)


# --- versioning: one workflow name, four deploys ------------------------------------------

def price_v1(order: str) -> str:
    return f"v1:{order}"


def price_v2(order: str) -> str:
    return f"v2:{order}"


pricing_acts = workflow.proxy_activities(activities=[price_v1, price_v2])


def pricing_v1(order: str) -> dict[str, Any]:
    price = pricing_acts.price_v1(order)
    workflow.wait_for("go")
    return {"price": price}


def pricing_v2(order: str) -> dict[str, Any]:
    if workflow.patched("new-pricing"):
        price = pricing_acts.price_v2(order)
    else:
        price = pricing_acts.price_v1(order)
    workflow.wait_for("go")
    return {"price": price}


def pricing_v3(order: str) -> dict[str, Any]:
    workflow.deprecate_patch("new-pricing")
    price = pricing_acts.price_v2(order)
    workflow.wait_for("go")
    return {"price": price}


def pricing_v4(order: str) -> dict[str, Any]:
    price = pricing_acts.price_v2(order)
    workflow.wait_for("go")
    return {"price": price}


def _deploy(worker: Any, code: Any) -> Any:
    return worker("pricing", {"pricing": code}, [price_v1, price_v2])


def test_deploy_simulation_old_and_new_runs_take_their_own_branch(
        mf: MemFlow, worker: Any) -> None:
    v1 = _deploy(worker, pricing_v1)
    old = mf.workflow.start("pricing", ["a"], task_queue="pricing", workflow_id="old")
    _wait_status(old, "waiting")
    assert v1.stop() == []

    _deploy(worker, pricing_v2)
    new = mf.workflow.start("pricing", ["b"], task_queue="pricing", workflow_id="new")
    _wait_status(new, "waiting")
    old.signal("go")
    new.signal("go")
    assert old.result(timeout=15) == {"price": "v1:a"}
    assert new.result(timeout=15) == {"price": "v2:b"}
    # The old run recorded no marker; the new one recorded it before its activity.
    assert [s["kind"] for s in old.steps()] == ["activity", "wait"]
    assert [(s["kind"], s["name"]) for s in new.steps()][:2] == [
        ("patch", "new-pricing"), ("activity", "price_v2")]


def test_deprecated_patch_replays_runs_with_the_marker_and_records_nothing_new(
        mf: MemFlow, worker: Any) -> None:
    v2 = _deploy(worker, pricing_v2)
    marked = mf.workflow.start("pricing", ["m"], task_queue="pricing", workflow_id="marked")
    _wait_status(marked, "waiting")
    v2.stop()

    _deploy(worker, pricing_v3)
    fresh = mf.workflow.start("pricing", ["f"], task_queue="pricing", workflow_id="fresh")
    _wait_status(fresh, "waiting")
    marked.signal("go")
    fresh.signal("go")
    assert marked.result(timeout=15) == {"price": "v2:m"}
    assert fresh.result(timeout=15) == {"price": "v2:f"}
    assert [s["kind"] for s in fresh.steps()] == ["activity", "wait"]


def test_removing_the_patch_too_early_names_the_patch_in_the_error(
        mf: MemFlow, worker: Any) -> None:
    v2 = _deploy(worker, pricing_v2)
    marked = mf.workflow.start("pricing", ["m"], task_queue="pricing")
    _wait_status(marked, "waiting")
    v2.stop()
    _deploy(worker, pricing_v4)
    marked.signal("go")
    with pytest.raises(errors.WorkflowFailedError) as info:
        marked.result(timeout=15)
    assert info.value.error_type == "NonDeterminismError"
    assert "deprecate_patch('new-pricing')" in info.value.message


def waiter_v1() -> str:
    return str(workflow.wait_for("go"))


def waiter_v2() -> str:
    if workflow.patched("greet-first"):
        pricing_acts.price_v2("greeting")
    return str(workflow.wait_for("go"))


def test_a_run_waiting_exactly_where_the_patch_goes_keeps_the_old_branch(
        mf: MemFlow, worker: Any) -> None:
    w = worker("waiter", {"waiter": waiter_v1}, [price_v2])
    old = mf.workflow.start("waiter", task_queue="waiter")
    _wait_status(old, "waiting")
    w.stop()
    worker("waiter", {"waiter": waiter_v2}, [price_v2])
    new = mf.workflow.start("waiter", task_queue="waiter")
    _wait_status(new, "waiting")
    old.signal("go", "old")
    new.signal("go", "new")
    assert old.result(timeout=15) == "old"
    assert new.result(timeout=15) == "new"
    assert [s["kind"] for s in old.steps()] == ["wait"]
    assert [s["kind"] for s in new.steps()] == ["patch", "activity", "wait"]


# --- continue_as_new and runs -----------------------------------------------------------

def tick(n: int) -> int:
    return n * 10


tick_acts = workflow.proxy_activities(activities=[tick])


def poller(n: int, limit: int) -> dict[str, Any]:
    counted = workflow.entity().increment("polls")
    tick_acts.tick(n)
    if n < limit:
        workflow.continue_as_new(n + 1, limit)
    return {"n": n, "polls": counted, "run": workflow.info().run_number}


def test_continue_as_new_starts_fresh_runs_and_keeps_the_entity(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [poller], [tick])
    handle = mf.workflow.start(poller, [1, 4], workflow_id="poller")
    assert handle.result(timeout=20) == {"n": 4, "polls": 4, "run": 4}
    assert handle.state() == {"polls": 4}
    runs = handle.runs()
    assert [r["status"] for r in runs] == ["continued"] * 3 + ["completed"]
    assert [r["run_number"] for r in runs] == [1, 2, 3, 4]
    assert len({r["run_id"] for r in runs}) == 4
    assert all(r["ended_at"] is not None for r in runs)
    assert runs[0]["reason"] == "continue_as_new"
    # The current run's history starts empty: two steps, not eight.
    assert [s["kind"] for s in handle.steps()] == ["entity", "activity"]
    first = handle.steps(run_id=runs[0]["run_id"])
    assert [(s["kind"], s["result"]) for s in first] == [("entity", 1), ("activity", 10)]
    assert handle.steps(run_id=runs[-1]["run_id"]) == handle.steps()
    with pytest.raises(ValueError):
        handle.steps(run_id="no-such-run")


def chat_session(turns: int) -> Any:
    message = workflow.wait_for("message")
    workflow.entity().append("transcript", message)
    if message == "bye":
        return workflow.entity().get("transcript")
    workflow.continue_as_new(turns + 1)


def test_signals_sent_between_runs_reach_the_next_run(mf: MemFlow, worker: Any) -> None:
    worker("default", [chat_session])
    handle = mf.workflow.start(chat_session, [0])
    for text in ["hi", "how are you", "bye"]:
        handle.signal("message", text)  # kept until a wait_for of any run takes it
    assert handle.result(timeout=20) == ["hi", "how are you", "bye"]
    assert len(handle.runs()) == 3


def test_a_new_run_gets_its_own_child_ids_and_randomness(mf: MemFlow, worker: Any) -> None:
    worker("default", [child_ids, tiny_child])
    handle = mf.workflow.start(child_ids, [[]])
    ids, randoms = handle.result(timeout=20)
    assert len(set(ids)) == 3 and len(set(randoms)) == 3


def tiny_child() -> str:
    return "ok"


def child_ids(seen: list[list[Any]]) -> Any:
    kid = workflow.start_child(tiny_child)
    seen = [*seen, [kid, workflow.random()]]
    if len(seen) < 3:
        workflow.continue_as_new(seen)
    return [s[0] for s in seen], [s[1] for s in seen]


def test_continue_as_new_in_a_hook_is_refused(mf: MemFlow, worker: Any) -> None:
    worker("default", [hook_parent, continuing_hook])
    handle = mf.workflow.start(hook_parent)
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=15)
    assert "coordinator, not in a hook" in info.value.message


def continuing_hook() -> None:
    workflow.continue_as_new()


def hook_parent() -> Any:
    return workflow.exec_hook(continuing_hook)


# --- if_exists="restart" ---------------------------------------------------------------

def greet(name: str) -> str:
    workflow.entity().increment("greetings")
    return f"hello {name}"


def gate() -> str:
    return str(workflow.wait_for("open"))


def test_restart_begins_a_new_run_of_an_ended_id(mf: MemFlow, worker: Any) -> None:
    worker("default", [greet, gate])
    first = mf.workflow.start(greet, ["a"], workflow_id="fixed")
    assert first.result(timeout=10) == "hello a"
    with pytest.raises(errors.DuplicateWorkflowError):
        mf.workflow.start(greet, ["b"], workflow_id="fixed")
    again = mf.workflow.start(greet, ["b"], workflow_id="fixed", if_exists="restart",
                              search={"tag": "second"})
    assert again.result(timeout=10) == "hello b"
    assert again.state() == {"greetings": 2, "tag": "second"}
    runs = again.runs()
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert [s["result"] for s in again.steps(run_id=runs[0]["run_id"])] == [1]
    # Another workflow under the same id, once the first has ended.
    third = mf.workflow.start(gate, workflow_id="fixed", if_exists="restart")
    _wait_status(third, "waiting")
    with pytest.raises(errors.DuplicateWorkflowError):
        mf.workflow.start(greet, ["c"], workflow_id="fixed", if_exists="restart")
    third.signal("open", "done")
    assert third.result(timeout=10) == "done"
    assert len(third.runs()) == 3


def test_restart_of_a_failed_run_keeps_its_error_as_the_reason(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [failing_once])
    handle = mf.workflow.start(failing_once, [True], workflow_id="f")
    with pytest.raises(errors.WorkflowFailedError):
        handle.result(timeout=10)
    again = mf.workflow.start(failing_once, [False], workflow_id="f", if_exists="restart")
    assert again.result(timeout=10) == "fine"
    first = again.runs()[0]
    assert first["status"] == "failed" and "asked to fail" in first["reason"]


def failing_once(fail: bool) -> str:
    if fail:
        raise errors.FatalError("asked to fail")
    return "fine"


def test_concurrent_restarts_begin_exactly_one_run(mf: MemFlow, worker: Any) -> None:
    worker("default", [gate])
    first = mf.workflow.start(gate, workflow_id="race")
    first.signal("open", 1)
    first.result(timeout=10)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def restart() -> None:
        barrier.wait()
        try:
            mf.workflow.start(gate, workflow_id="race", if_exists="restart")
            outcomes.append("restarted")
        except errors.DuplicateWorkflowError:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=restart) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate"] * 7 + ["restarted"]
    assert len(first.runs()) == 2


# --- run_timeout -----------------------------------------------------------------------

def sleepy(seconds: float) -> str:
    workflow.sleep_for(seconds)
    return "woke"


def test_run_timeout_fails_a_run_that_lasts_longer_with_596(
        mf: MemFlow, worker: Any, pg_dsn: str) -> None:
    worker("default", [sleepy])
    slow = mf.workflow.start(sleepy, [30], run_timeout="1s")
    with pytest.raises(errors.WorkflowFailedError) as info:
        slow.result(timeout=15)
    assert info.value.code == 596 and info.value.error_type == "TimeoutError"
    quick = mf.workflow.start(sleepy, [0], run_timeout="30s")
    assert quick.result(timeout=10) == "woke"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        left = conn.execute(sql.SQL("SELECT count(*) FROM {}.tasks").format(
            sql.Identifier(mf.schema))).fetchone()
    assert left == (0,)  # the quick run's deadline went with it


def test_run_timeout_applies_to_each_run(mf: MemFlow, worker: Any) -> None:
    worker("default", [slow_runs])
    handle = mf.workflow.start(slow_runs, [0], run_timeout="2s")
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=20)
    assert info.value.code == 596
    # Three runs of one second each lived; the fourth slept past its own deadline.
    assert [r["status"] for r in handle.runs()] == ["continued"] * 3 + ["failed"]


def slow_runs(n: int) -> None:
    workflow.sleep_for(1 if n < 3 else 30)
    workflow.continue_as_new(n + 1)


def test_bad_run_timeout_is_refused_before_anything_is_written(mf: MemFlow) -> None:
    for bad in (-1, float("nan"), "soon"):
        with pytest.raises((ValueError, TypeError)):
            mf.workflow.start(sleepy, [1], workflow_id="never", run_timeout=bad)
    with pytest.raises(errors.WorkflowNotFoundError):
        mf.workflow.get_handle("never")


# --- wait_for_any ----------------------------------------------------------------------

def approval(timeout: float | None) -> list[Any]:
    signal_id, data = workflow.wait_for_any(["approve", "reject"], timeout=timeout)
    return [signal_id, data]


def test_wait_for_any_returns_which_signal_came(mf: MemFlow, worker: Any) -> None:
    worker("default", [approval])
    handle = mf.workflow.start(approval, [None])
    _wait_status(handle, "waiting")
    handle.signal("reject", {"why": "too dear"})
    assert handle.result(timeout=10) == ["reject", {"why": "too dear"}]


def test_wait_for_any_tells_a_timeout_from_a_null_signal(mf: MemFlow, worker: Any) -> None:
    worker("default", [approval])
    timed_out = mf.workflow.start(approval, [0.5])
    assert timed_out.result(timeout=10) == [None, None]
    nulled = mf.workflow.start(approval, [30])
    nulled.signal("approve", None)  # sent before the wait: kept for it
    assert nulled.result(timeout=10) == ["approve", None]


def test_wait_for_any_takes_the_oldest_kept_signal(mf: MemFlow, worker: Any) -> None:
    handle = mf.workflow.start(approval, [None])
    handle.signal("reject", 1)
    handle.signal("approve", 2)
    worker("default", [approval])
    assert handle.result(timeout=10) == ["reject", 1]


def test_wait_for_any_refuses_bad_ids(mf: MemFlow, worker: Any) -> None:
    worker("default", [bad_any])
    for ids in ([], "approve", ["ok", "bad\x01id"]):
        with pytest.raises(errors.WorkflowFailedError) as info:
            mf.workflow.execute(bad_any, [ids], timeout=10)
        assert info.value.error_type in ("ValueError", "TypeError")


def bad_any(ids: Any) -> Any:
    return workflow.wait_for_any(ids)


def noting_hook(n: int) -> int:
    workflow.entity().append("notes", n)
    return n


def hooked_rounds(n: int) -> int:
    workflow.exec_hook(noting_hook, [n])
    if n < 2:
        workflow.continue_as_new(n + 1)
    return n


def test_an_ended_runs_hook_steps_go_with_that_run(mf: MemFlow, worker: Any) -> None:
    worker("default", [hooked_rounds, noting_hook])
    handle = mf.workflow.start(hooked_rounds, [1])
    assert handle.result(timeout=15) == 2
    first, current = handle.runs()
    old_steps = handle.steps(run_id=first["run_id"])
    assert sorted({s["run_id"] == "" for s in old_steps}) == [False, True]
    assert [s["result"] for s in old_steps if s["run_id"] != ""] == [[1]]
    new_steps = handle.steps()
    assert [s["result"] for s in new_steps if s["kind"] == "entity"] == [[1, 2]]
    assert handle.state() == {"notes": [1, 2]}


def test_restart_takes_the_new_entity_label_and_runs_show_failures(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [failing_once])
    handle = mf.workflow.start(failing_once, [True], workflow_id="lbl", entity="first",
                               task_queue="default")
    with pytest.raises(errors.WorkflowFailedError):
        handle.result(timeout=10)
    assert "asked to fail" in (handle.runs()[-1]["reason"] or "")
    again = mf.workflow.start(failing_once, [False], workflow_id="lbl", entity="second",
                              task_queue="default", if_exists="restart")
    again.result(timeout=10)
    assert again.describe()["entity"] == "second"
