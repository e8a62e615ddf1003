"""HotMesh MemFlow's own test scenarios, ported: each runs on a real worker and database."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from hotmesh_sync import MemFlow, RetryPolicy, errors, workflow

# The package's pytest plugin (hotmesh_sync.testing) gives each test a fresh app
# (`memflow`) and in-process workers (`run_worker`); pg_dsn points the plugin at
# the suite's database when HOTMESH_TEST_DSN is not set.
pytestmark = pytest.mark.usefixtures("pg_dsn")

# --- activities -------------------------------------------------------------

calls: Counter[str] = Counter()
calls_lock = threading.Lock()


def count(name: str) -> int:
    with calls_lock:
        calls[name] += 1
        return calls[name]


def greet(name: str) -> str:
    count("greet:" + name)
    return f"Hello, {name}!"


def saludar(name: str) -> str:
    return f"¡Hola, {name}!"


def flaky(key: str) -> str:
    """Fails on its first two calls for ``key``, succeeds on the third."""
    n = count("flaky:" + key)
    if n < 3:
        raise ConnectionError(f"attempt {n} failed")
    return f"ok after {n}"


def always_fails(key: str) -> str:
    count("fails:" + key)
    raise RuntimeError("this never works")


def fatal_activity(key: str) -> str:
    count("fatal:" + key)
    raise errors.FatalError("stop right there")


def bad_value(key: str) -> str:
    count("bad_value:" + key)
    raise ValueError("not retryable by policy")


fast = RetryPolicy(maximum_attempts=3, initial_interval="50ms", maximum_interval="200ms")
acts = workflow.proxy_activities(activities=[greet, saludar], retry=fast)
retrying = workflow.proxy_activities(
    activities=[flaky, always_fails, fatal_activity, bad_value],
    retry=RetryPolicy(maximum_attempts=3, initial_interval="50ms", backoff_coefficient=2.0,
                      non_retryable=(ValueError,)))

# --- workflows --------------------------------------------------------------


def hello_world(name: str) -> dict[str, Any]:
    first = workflow.random()
    # The activity's argument is recorded by the first activation; the value
    # returned comes from the last one: equal only if random() replays.
    greeting = acts.greet(f"{name}@{first}")
    second = workflow.random()
    return {"greeting": greeting, "random": [first, second]}


def sleeper(seconds: float) -> dict[str, Any]:
    before = workflow.now()
    slept = workflow.sleep_for(seconds)
    after = workflow.now()
    return {"slept": slept, "elapsed": (after - before).total_seconds()}


def child_greeter(name: str) -> str:
    return acts.greet(name) + " (child)"


def parent_exec(name: str) -> dict[str, Any]:
    result = workflow.exec_child(child_greeter, args=[name], workflow_id=f"{name}-child")
    return {"child": result}


def parent_start(name: str) -> str:
    return workflow.start_child("child_greeter", args=[name], workflow_id=f"{name}-started")


def waiter() -> dict[str, Any]:
    first = workflow.wait_for("first")
    second, third = workflow.all(lambda: workflow.wait_for("second"),
                                 lambda: workflow.wait_for("third"))
    return {"first": first, "second": second, "third": third}


def parallel(name: str) -> list[str]:
    return workflow.all(lambda: acts.greet(name), lambda: acts.saludar(name))


def branches_with_steps(name: str) -> list[Any]:
    def branch(prefix: str) -> str:
        a = acts.greet(prefix + name)
        b = acts.saludar(a)
        return b

    return workflow.all(lambda: branch("x"), lambda: branch("y"), lambda: acts.greet(name))


def retry_until_third(key: str) -> str:
    return retrying.flaky(key)


def retries_exhausted(key: str) -> str:
    return retrying.always_fails(key)


def fatal_flow(key: str) -> str:
    return retrying.fatal_activity(key)


def non_retryable_flow(key: str) -> str:
    return retrying.bad_value(key)


def caught_maxed(key: str) -> dict[str, Any]:
    try:
        retrying.always_fails(key)
    except errors.MaxedError as exc:
        return {"caught": type(exc).__name__, "error_type": exc.error_type}
    return {"caught": None}


def workflow_level_retry(key: str) -> str:
    n = count("wf-retry:" + key)
    if n < 3:
        raise RuntimeError(f"workflow attempt {n} fails")
    return f"succeeded on attempt {workflow.info().attempt}"


def nested_parent(name: str) -> list[Any]:
    return workflow.all(
        lambda: workflow.exec_child(nested_middle, args=[name + "-a"]),
        lambda: workflow.exec_child(nested_middle, args=[name + "-b"]),
    )


def nested_middle(name: str) -> dict[str, Any]:
    inner = workflow.exec_child(child_greeter, args=[name])
    return {"name": name, "inner": inner}


def long_waiter() -> str:
    workflow.wait_for("never")
    return "unreachable"


def parent_of_long_waiter() -> str:
    workflow.start_child(long_waiter, workflow_id=workflow.info().workflow_id + "-kid")
    workflow.wait_for("never")
    return "unreachable"


def duplicate_children(name: str) -> dict[str, Any]:
    first = workflow.start_child(child_greeter, args=[name], workflow_id="dup-" + name)
    try:
        workflow.start_child(child_greeter, args=[name], workflow_id="dup-" + name)
    except errors.DuplicateWorkflowError as exc:
        return {"first": first, "second": "duplicate", "id": exc.workflow_id}
    return {"first": first, "second": "started"}


ALL_WORKFLOWS = [
    hello_world, sleeper, child_greeter, parent_exec, parent_start, waiter, parallel,
    branches_with_steps, retry_until_third, retries_exhausted, fatal_flow, non_retryable_flow,
    caught_maxed, workflow_level_retry, nested_parent, nested_middle, long_waiter,
    parent_of_long_waiter, duplicate_children,
]


@pytest.fixture
def running(memflow: MemFlow, run_worker: Any) -> MemFlow:
    run_worker("default", workflows=ALL_WORKFLOWS, concurrency=4)
    return memflow


# --- tests -------------------------------------------------------------------


def test_hello_world_random_is_deterministic_across_replays(running: MemFlow) -> None:
    """random() gives the same values on every replay, so the result matches the first run."""
    result = running.workflow.execute(hello_world, ["Jane"], workflow_id="hello-1", timeout=30)
    first, second = result["random"]
    assert result["greeting"] == f"Hello, Jane@{first}!"
    assert 0 <= first < 1 and 0 <= second < 1 and first != second
    again = running.workflow.execute(hello_world, ["Jane"], workflow_id="hello-2", timeout=30)
    assert again["random"] != result["random"]  # seeded per workflow, not a constant


def test_proxy_activity_runs_once_and_is_recorded(running: MemFlow) -> None:
    """An activity's result is recorded as one step and the activity runs exactly once."""
    handle = running.workflow.start(child_greeter, ["Once"], workflow_id="once-1")
    assert handle.result(timeout=30) == "Hello, Once! (child)"
    assert calls["greet:Once"] == 1
    steps = handle.steps()
    assert [(s["kind"], s["name"], s["result"]) for s in steps] == [
        ("activity", "greet", "Hello, Once!")]
    assert handle.status() == "completed"


def test_sleep_for_is_a_durable_timer(running: MemFlow) -> None:
    """sleep_for returns the seconds slept and the workflow resumes after the timer."""
    started = time.monotonic()
    result = running.workflow.execute(sleeper, [1], timeout=30)
    assert result["slept"] == 1
    assert result["elapsed"] >= 0.9
    assert time.monotonic() - started >= 0.9


def test_exec_child_returns_the_child_result(running: MemFlow) -> None:
    result = running.workflow.execute(parent_exec, ["Kid"], workflow_id="p-exec", timeout=30)
    assert result == {"child": "Hello, Kid! (child)"}
    assert running.workflow.get_handle("Kid-child").result(timeout=5) == "Hello, Kid! (child)"


def test_start_child_returns_its_id_without_waiting(running: MemFlow) -> None:
    child_id = running.workflow.execute(parent_start, ["Solo"], timeout=30)
    assert child_id == "Solo-started"
    assert running.workflow.get_handle(child_id).result(timeout=30) == "Hello, Solo! (child)"


def test_wait_for_signals_from_handle_and_client_and_two_waits_in_all(running: MemFlow) -> None:
    handle = running.workflow.start(waiter, workflow_id="waiter-1")
    _wait_status(handle, "waiting")
    assert handle.signal("first", {"n": 1}) == 1
    # Sent before the workflow waits on it: kept until consumed.
    assert running.workflow.signal("third", [3], workflow_id="waiter-1") == 1
    time.sleep(0.3)
    assert running.workflow.signal("second", "two", workflow_id="waiter-1") == 1
    assert handle.result(timeout=30) == {"first": {"n": 1}, "second": "two", "third": [3]}


def test_broadcast_signal_reaches_current_waiters_only(running: MemFlow) -> None:
    a = running.workflow.start(waiter, workflow_id="bc-a")
    b = running.workflow.start(waiter, workflow_id="bc-b")
    _wait_status(a, "waiting")
    _wait_status(b, "waiting")
    assert running.workflow.signal("first", "hi") == 2
    assert running.workflow.signal("nobody-waits-on-this", "x") == 0
    for handle in (a, b):
        handle.signal("second", 2)
        handle.signal("third", 3)
        assert handle.result(timeout=30) == {"first": "hi", "second": 2, "third": 3}


def test_parallel_activities(running: MemFlow) -> None:
    assert running.workflow.execute(parallel, ["Ana"], timeout=30) == [
        "Hello, Ana!", "¡Hola, Ana!"]


def test_all_branches_with_several_steps_each(running: MemFlow) -> None:
    handle = running.workflow.start(branches_with_steps, ["Bo"])
    assert handle.result(timeout=30) == [
        "¡Hola, Hello, xBo!!", "¡Hola, Hello, yBo!!", "Hello, Bo!"]
    keys = sorted(s["key"] for s in handle.steps())
    assert keys == ["0.0.0", "0.0.1", "0.1.0", "0.1.1", "0.2.0"]


def test_activity_retried_until_third_call_succeeds(running: MemFlow) -> None:
    assert running.workflow.execute(retry_until_third, ["k3"], timeout=30) == "ok after 3"
    assert calls["flaky:k3"] == 3


def test_retries_exhausted_fail_with_597(running: MemFlow) -> None:
    handle = running.workflow.start(retries_exhausted, ["k597"])
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=30)
    assert info.value.code == 597
    assert info.value.error_type == "RuntimeError"
    assert "this never works" in info.value.message
    assert calls["fails:k597"] == 3
    assert handle.status() == "failed"


def test_maxed_error_can_be_caught_in_the_workflow(running: MemFlow) -> None:
    result = running.workflow.execute(caught_maxed, ["kcaught"], timeout=30)
    assert result == {"caught": "MaxedError", "error_type": "RuntimeError"}


def test_fatal_error_is_not_retried_and_fails_with_598(running: MemFlow) -> None:
    with pytest.raises(errors.WorkflowFailedError) as info:
        running.workflow.execute(fatal_flow, ["k598"], timeout=30)
    assert info.value.code == 598
    assert info.value.error_type == "FatalError"
    assert calls["fatal:k598"] == 1


def test_non_retryable_type_is_fatal(running: MemFlow) -> None:
    with pytest.raises(errors.WorkflowFailedError) as info:
        running.workflow.execute(non_retryable_flow, ["knr"], timeout=30)
    assert (info.value.code, info.value.error_type) == (598, "ValueError")
    assert calls["bad_value:knr"] == 1


def test_workflow_level_retry(running: MemFlow) -> None:
    policy = RetryPolicy(maximum_attempts=3, initial_interval="50ms")
    result = running.workflow.execute(workflow_level_retry, ["wr"], retry=policy, timeout=30)
    assert result == "succeeded on attempt 3"


def test_workflow_level_retry_exhausted(running: MemFlow) -> None:
    policy = RetryPolicy(maximum_attempts=2, initial_interval="50ms")
    with pytest.raises(errors.WorkflowFailedError) as info:
        running.workflow.execute(workflow_level_retry, ["wr2"], retry=policy, timeout=30)
    assert info.value.code == 597 and info.value.error_type == "RuntimeError"
    assert calls["wf-retry:wr2"] == 2


def test_unretried_workflow_error_fails_once(running: MemFlow) -> None:
    with pytest.raises(errors.WorkflowFailedError):
        running.workflow.execute(workflow_level_retry, ["wr0"], timeout=30)
    assert calls["wf-retry:wr0"] == 1


def test_nested_children_in_all(running: MemFlow) -> None:
    result = running.workflow.execute(nested_parent, ["n"], timeout=60)
    assert result == [
        {"name": "n-a", "inner": "Hello, n-a! (child)"},
        {"name": "n-b", "inner": "Hello, n-b! (child)"},
    ]


def test_interrupt_fails_result_with_410_and_descends(running: MemFlow) -> None:
    handle = running.workflow.start(parent_of_long_waiter, workflow_id="intr")
    _wait_status(handle, "waiting")
    kid = running.workflow.get_handle("intr-kid")
    _wait_status(kid, "waiting")
    assert handle.interrupt(reason="user asked", descend=True) is True
    with pytest.raises(errors.WorkflowInterruptedError) as info:
        handle.result(timeout=5)
    assert info.value.code == 410 and "user asked" in info.value.message
    _wait_status(kid, "interrupted")  # its own cancellation runs in its own activation
    assert handle.interrupt() is False  # already ended


def test_duplicate_child_id_raises_in_the_workflow(running: MemFlow) -> None:
    result = running.workflow.execute(duplicate_children, ["d"], timeout=30)
    assert result == {"first": "dup-d", "second": "duplicate", "id": "dup-d"}


def _wait_status(handle: Any, status: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != status:
        assert time.monotonic() < deadline, f"{handle.workflow_id} never became {status}"
        time.sleep(0.05)
