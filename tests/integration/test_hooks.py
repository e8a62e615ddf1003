"""Hooks: re-entrant functions run against an existing workflow, with signals."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hotmesh_sync import MemFlow, errors, workflow

# The package's pytest plugin (hotmesh_sync.testing) gives each test a fresh app
# (`memflow`) and in-process workers (`run_worker`); pg_dsn points the plugin at
# the suite's database when HOTMESH_TEST_DSN is not set.
pytestmark = pytest.mark.usefixtures("pg_dsn")


def shout(text: str) -> str:
    return text.upper()


acts = workflow.proxy_activities(activities=[shout])


def returns_value(text: str) -> dict[str, Any]:
    """A hook that never signals: its return value becomes the signal."""
    return {"shouted": acts.shout(text), "hook": workflow.info().hook}


def signals_itself(text: str, signal: str) -> str:
    """A hook that sends its own signal, then returns something else."""
    workflow.signal(signal, {"explicit": text})
    return "ignored"


def sleeps_then_signals(seconds: float, signal: str) -> None:
    workflow.sleep_for(seconds)
    workflow.signal(signal, "slept")


def fails_hard(text: str) -> None:
    raise RuntimeError(f"hook broke on {text}")


def waits_for_coordinator(**kwargs: Any) -> str:
    got = workflow.wait_for("from-coordinator")
    workflow.signal("hook-replied", got + "!")
    return "bye"


def coordinator(text: str) -> dict[str, Any]:
    a = workflow.exec_hook(returns_value, [text])
    b = workflow.exec_hook("signals_itself", [text], signal_id="custom-signal")
    c = workflow.exec_hook(sleeps_then_signals, [0.2])
    return {"a": a, "b": b, "c": c}


def batch_coordinator() -> dict[str, Any]:
    return workflow.exec_hook_batch([
        {"key": "x", "workflow_name": "returns_value", "args": ["x"]},
        {"key": "y", "workflow_name": "returns_value", "args": ["y"]},
        {"key": "z", "workflow_name": "signals_itself", "args": ["z"], "signal_id": "zz"},
    ])


def failing_hook_coordinator() -> str:
    try:
        workflow.exec_hook(fails_hard, ["boom"])
    except errors.WorkflowFailedError as exc:
        return f"hook failed: {exc.error_type}: {exc.message}"
    return "no error"


def talks_to_hook() -> str:
    workflow.hook(waits_for_coordinator)  # fire and forget
    workflow.signal("from-coordinator", "hello")
    return workflow.wait_for("hook-replied")


def idle_coordinator() -> Any:
    return workflow.wait_for("external-hook-done")


def external_hook(value: int) -> None:
    workflow.signal("external-hook-done", value * 2)


HOOKS_AND_WORKFLOWS = [
    returns_value, signals_itself, sleeps_then_signals, fails_hard, waits_for_coordinator,
    coordinator, batch_coordinator, failing_hook_coordinator, talks_to_hook,
    idle_coordinator, external_hook,
]


@pytest.fixture
def running(memflow: MemFlow, run_worker: Any) -> MemFlow:
    run_worker("hooks", workflows=HOOKS_AND_WORKFLOWS, concurrency=4)
    return memflow


def test_exec_hook_signal_conventions(running: MemFlow) -> None:
    result = running.workflow.execute(coordinator, ["hi"], task_queue="hooks", timeout=30)
    assert result == {
        "a": {"shouted": "HI", "hook": True},
        "b": {"explicit": "hi"},
        "c": "slept",
    }


def test_exec_hook_batch(running: MemFlow) -> None:
    result = running.workflow.execute(batch_coordinator, task_queue="hooks", timeout=30)
    assert result == {
        "x": {"shouted": "X", "hook": True},
        "y": {"shouted": "Y", "hook": True},
        "z": {"explicit": "z"},
    }


def test_a_failing_hook_fails_its_exec_hook(running: MemFlow) -> None:
    result = running.workflow.execute(failing_hook_coordinator, task_queue="hooks", timeout=30)
    assert result == "hook failed: RuntimeError: hook broke on boom"


def test_signals_between_hook_and_coordinator_whichever_comes_first(running: MemFlow) -> None:
    assert running.workflow.execute(talks_to_hook, task_queue="hooks", timeout=30) == "hello!"


def test_client_hook_runs_against_an_existing_workflow(running: MemFlow) -> None:
    handle = running.workflow.start(idle_coordinator, task_queue="hooks", workflow_id="idle")
    deadline = time.monotonic() + 10
    while handle.status() != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    run_id = running.workflow.hook(workflow_id="idle", workflow_name="external_hook", args=[21])
    assert run_id.startswith("hook-")
    assert handle.result(timeout=30) == 42
    hook_steps = [s for s in handle.steps() if s["run_id"] == run_id]
    assert [(s["kind"], s["name"]) for s in hook_steps] == [("signal", "external-hook-done")]


def test_client_hook_on_unknown_workflow(running: MemFlow) -> None:
    with pytest.raises(errors.WorkflowNotFoundError):
        running.workflow.hook(workflow_id="missing", workflow_name="external_hook", args=[1])


def counting_hook(n: int) -> int:
    entity = workflow.entity()
    entity.increment("counter")
    entity.append("items", n)
    return n


def fan_out(count: int) -> dict[str, Any]:
    results = workflow.exec_hook_batch(
        [{"key": str(n), "workflow_name": "counting_hook", "args": [n]} for n in range(count)])
    document = workflow.entity().get()
    return {"signals": sorted(results.values()), "document": document}


def child_of_hook(x: int) -> int:
    return x * 10


def hook_with_everything(x: int, signal: str) -> None:
    got = acts.shout("hook")
    workflow.sleep_for("50ms")
    child = workflow.exec_child(child_of_hook, args=[x])
    workflow.entity().merge({"hook": {"activity": got, "child": child}})
    workflow.signal(signal, child)


def runs_rich_hook() -> dict[str, Any]:
    child = workflow.exec_hook(hook_with_everything, [4])
    return {"child": child, "document": workflow.entity().get()}


def test_fifty_parallel_hooks_never_lose_an_update(memflow: MemFlow, run_worker: Any) -> None:
    run_worker("hooks", workflows=[counting_hook, fan_out], concurrency=8)
    result = memflow.workflow.execute(fan_out, [50], task_queue="hooks", timeout=120)
    assert result["signals"] == list(range(50))
    assert result["document"]["counter"] == 50
    assert sorted(result["document"]["items"]) == list(range(50))


def test_a_hook_calls_activities_sleeps_and_runs_children(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("hooks", workflows=[hook_with_everything, runs_rich_hook, child_of_hook])
    result = memflow.workflow.execute(runs_rich_hook, task_queue="hooks", timeout=60)
    assert result == {"child": 40, "document": {"hook": {"activity": "HOOK", "child": 40}}}
