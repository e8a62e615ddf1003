"""Cancellation with cleanup and the activity context (API.md §11)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest

from hotmesh_sync import MemFlow, RetryPolicy, activity, errors, workflow

# The package's pytest plugin (hotmesh_sync.testing) gives each test a fresh app
# (`memflow`) and in-process workers (`run_worker`); pg_dsn points the plugin at
# the suite's database when HOTMESH_TEST_DSN is not set.
pytestmark = pytest.mark.usefixtures("pg_dsn")

#: What activities saw, by test key (activities run in worker threads).
SEEN: dict[str, list[Any]] = {}
RELEASE = threading.Event()


def _wait_status(handle: Any, status: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != status:
        assert time.monotonic() < deadline, f"{handle.workflow_id} never became {status}"
        time.sleep(0.05)


def _wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


# --- activities ------------------------------------------------------------------------

def long_job(key: str) -> str:
    """Heartbeats until cancelled (or 30 s pass)."""
    SEEN.setdefault(key, []).append("started")
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            activity.heartbeat({"at": len(SEEN[key])})
            time.sleep(0.05)
    except errors.CancelledError as exc:
        SEEN[key].append(f"cancelled: {exc.message}")
        raise
    return "finished"


def release_hold(key: str) -> str:
    SEEN.setdefault(key, []).append("released")
    return "released"


acts = workflow.proxy_activities(activities=[long_job, release_hold],
                                 retry=RetryPolicy(maximum_attempts=1))


# --- workflows -------------------------------------------------------------------------

def cleaning(key: str) -> str:
    workflow.entity().set({"state": "working"})
    try:
        return acts.long_job(key)
    except errors.CancelledError:
        acts.release_hold(key)  # cleanup may make durable calls
        workflow.entity().merge({"state": "cleaned"})
        raise


def forgiving(key: str) -> str:
    try:
        workflow.wait_for("never")
    except errors.CancelledError as exc:
        acts.release_hold(key)
        return f"stopped politely: {exc.reason}"
    return "unreachable"


def with_finally(key: str) -> str:
    try:
        workflow.sleep_for("1 hour")
    finally:
        acts.release_hold(key)  # runs on cancellation, never out of order otherwise
    return "slept"


def parent_of_cleaner(key: str) -> Any:
    return workflow.exec_child(cleaning, [key], workflow_id=f"{key}-kid")


def catches_twice(key: str) -> str:
    with contextlib.suppress(errors.CancelledError):
        workflow.wait_for("never")
    # A second waiting call after the cancellation was raised waits as usual.
    return str(workflow.wait_for("resume"))


# --- cancellation ----------------------------------------------------------------------

def test_cancellation_raises_at_the_waiting_call_and_cleanup_runs(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [cleaning], [long_job, release_hold])
    handle = memflow.workflow.start(cleaning, ["c1"])
    _wait_for(lambda: SEEN.get("c1") == ["started"])
    assert handle.interrupt("user asked") is True
    with pytest.raises(errors.WorkflowInterruptedError) as info:
        handle.result(timeout=15)
    assert info.value.code == 410 and "user asked" in info.value.message
    assert handle.state() == {"state": "cleaned"}
    _wait_for(lambda: len(SEEN["c1"]) == 3)
    assert SEEN["c1"][0] == "started"
    assert sorted(SEEN["c1"][1:]) == ["cancelled: user asked", "released"]
    kinds = [(s["kind"], (s["error"] or {}).get("type")) for s in handle.steps()]
    assert kinds == [("entity", None), ("activity", "CancelledError"), ("activity", None),
                     ("entity", None)]
    assert handle.interrupt() is False


def test_a_workflow_that_returns_after_cancellation_completes(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [forgiving], [release_hold])
    handle = memflow.workflow.start(forgiving, ["c2"])
    _wait_status(handle, "waiting")
    handle.interrupt("enough")
    assert handle.result(timeout=15) == "stopped politely: enough"
    assert handle.status() == "completed"
    assert SEEN["c2"] == ["released"]


def test_finally_blocks_run_their_durable_calls_on_cancellation(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [with_finally], [release_hold])
    handle = memflow.workflow.start(with_finally, ["c3"])
    _wait_status(handle, "waiting")
    handle.interrupt()
    with pytest.raises(errors.WorkflowInterruptedError):
        handle.result(timeout=15)
    assert SEEN["c3"] == ["released"]


def test_force_ends_at_once_without_cleanup(memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [with_finally], [release_hold])
    handle = memflow.workflow.start(with_finally, ["c4"])
    _wait_status(handle, "waiting")
    handle.interrupt("now", force=True)
    assert handle.status() == "interrupted"
    with pytest.raises(errors.WorkflowInterruptedError):
        handle.result(timeout=5)
    time.sleep(0.5)
    assert "c4" not in SEEN


def test_a_workflow_that_never_started_ends_at_once(memflow: MemFlow) -> None:
    handle = memflow.workflow.start(with_finally, ["c5"])  # no worker serves it
    assert handle.interrupt("not needed") is True
    assert handle.status() == "interrupted"


def test_descend_cancels_children_with_their_cleanup(memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [parent_of_cleaner, cleaning], [long_job, release_hold])
    handle = memflow.workflow.start(parent_of_cleaner, ["c6"])
    _wait_for(lambda: SEEN.get("c6") == ["started"])
    handle.interrupt("shutting down", descend=True)
    with pytest.raises(errors.WorkflowInterruptedError) as info:
        handle.result(timeout=15)
    assert "shutting down" in info.value.message
    kid = memflow.workflow.get_handle("c6-kid")
    with pytest.raises(errors.WorkflowInterruptedError):
        kid.result(timeout=15)
    assert kid.state() == {"state": "cleaned"}


def test_cancellation_is_raised_once(memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [catches_twice])
    handle = memflow.workflow.start(catches_twice, ["c7"])
    _wait_status(handle, "waiting")
    handle.interrupt()
    _wait_for(lambda: [s["error"]["type"] for s in handle.steps()] == ["CancelledError"])
    _wait_status(handle, "waiting")
    assert handle.interrupt() is True  # still going: a second request changes nothing
    handle.signal("resume", "resumed")
    assert handle.result(timeout=15) == "resumed"


def test_workflow_interrupt_from_another_workflow_cancels_with_cleanup(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [forgiving, canceller], [release_hold])
    target = memflow.workflow.start(forgiving, ["c8"], workflow_id="target")
    _wait_status(target, "waiting")
    assert memflow.workflow.execute(canceller, ["target"], timeout=15) == "sent"
    assert target.result(timeout=15) == "stopped politely: from a workflow"


def canceller(target: str) -> str:
    workflow.interrupt(target, "from a workflow")
    return "sent"


# --- the activity context ----------------------------------------------------------------

def flaky_progress(key: str) -> dict[str, Any]:
    info = activity.info()
    resumed_from = activity.heartbeat_details()
    SEEN.setdefault(key, []).append((info.attempt, resumed_from))
    start = resumed_from or 0
    for step in range(start, start + 3):
        activity.heartbeat(step + 1)
    if info.attempt == 1:
        raise ConnectionError("dropped after three chunks")
    return {"attempt": info.attempt, "resumed_from": resumed_from,
            "workflow_id": info.workflow_id, "activity": info.activity_name,
            "queue": info.task_queue, "step": info.step,
            "has_deadline": info.deadline is not None, "cancelled": activity.is_cancelled()}


progress_acts = workflow.proxy_activities(
    activities=[flaky_progress],
    retry=RetryPolicy(maximum_attempts=3, initial_interval="100ms"), timeout="30s")


def progress_flow(key: str) -> Any:
    return progress_acts.flaky_progress(key)


def test_activity_info_attempt_and_heartbeat_details_resume(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [progress_flow], [flaky_progress])
    result = memflow.workflow.execute(progress_flow, ["a1"], workflow_id="prog", timeout=20)
    assert result == {"attempt": 2, "resumed_from": 3, "workflow_id": "prog",
                      "activity": "flaky_progress", "queue": "default", "step": "0",
                      "has_deadline": True, "cancelled": False}
    assert SEEN["a1"] == [(1, None), (2, 3)]


def test_activity_context_outside_an_activity_is_refused() -> None:
    for call in (activity.info, activity.is_cancelled, activity.heartbeat_details,
                 lambda: activity.heartbeat(1)):
        with pytest.raises(errors.NotInWorkflowError):
            call()


def async_waiter(key: str) -> str:
    """Completes when told to, checking for cancellation while it waits (an
    activity completed from outside, as async completion samples do)."""
    while not RELEASE.wait(0.05):
        if activity.is_cancelled():
            SEEN.setdefault(key, []).append("saw cancel")
            raise errors.CancelledError("stopping")
    return "completed from outside"


async_acts = workflow.proxy_activities(activities=[async_waiter])


def async_flow(key: str) -> str:
    return async_acts.async_waiter(key)


def test_is_cancelled_lets_a_waiting_activity_stop(memflow: MemFlow, run_worker: Any) -> None:
    RELEASE.clear()
    run_worker("default", [async_flow], [async_waiter])
    handle = memflow.workflow.start(async_flow, ["a2"])
    _wait_status(handle, "running")
    time.sleep(0.3)
    handle.interrupt("no longer needed")
    with pytest.raises(errors.WorkflowInterruptedError):
        handle.result(timeout=15)
    _wait_for(lambda: SEEN.get("a2") == ["saw cancel"])
    RELEASE.set()
    done = memflow.workflow.start(async_flow, ["a3"])
    assert done.result(timeout=15) == "completed from outside"


def rapid_beats(key: str) -> Any:
    resumed = activity.heartbeat_details()
    if activity.info().attempt == 1:
        for n in range(1, 101):  # far more beats than reach the database
            activity.heartbeat(n)
        raise ConnectionError("lost after a burst of progress")
    return resumed


rapid_acts = workflow.proxy_activities(
    activities=[rapid_beats], retry=RetryPolicy(maximum_attempts=2, initial_interval="50ms"))


def rapid_flow(key: str) -> Any:
    return rapid_acts.rapid_beats(key)


def test_throttled_heartbeats_still_hand_the_latest_details_to_the_retry(
        memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [rapid_flow], [rapid_beats])
    assert memflow.workflow.execute(rapid_flow, ["r"], timeout=15) == 100


def test_bad_heartbeat_details_fail_at_the_call(memflow: MemFlow, run_worker: Any) -> None:
    run_worker("default", [bad_beat_flow], [bad_beat])
    assert memflow.workflow.execute(bad_beat_flow, timeout=15) == "TypeError"


def bad_beat() -> str:
    try:
        activity.heartbeat({1, 2})
    except TypeError as exc:
        return type(exc).__name__
    return "accepted"


bad_beat_acts = workflow.proxy_activities(activities=[bad_beat])


def bad_beat_flow() -> str:
    return str(bad_beat_acts.bad_beat())
