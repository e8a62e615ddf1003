"""Trust in the durable core: ordering after a suspension, routing across queues,
async activities, and input that used to leave work pending forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hotmesh_sync import MemFlow, RetryPolicy, errors, workflow

order: list[str] = []
order_lock = threading.Lock()


def main_step(tag: str) -> str:
    with order_lock:
        order.append(f"main:{tag}")
    return "main done"


def cleanup(tag: str) -> str:
    with order_lock:
        order.append(f"cleanup:{tag}")
    return "cleaned"


def other_step(tag: str) -> str:
    with order_lock:
        order.append(f"other:{tag}")
    return "other done"


async def async_double(n: int) -> int:
    await asyncio.sleep(0.01)
    return n * 2


no_retry = RetryPolicy(maximum_attempts=1)
acts = workflow.proxy_activities(activities=[main_step, cleanup, other_step], retry=no_retry)
elsewhere = workflow.proxy_activities(activities=[main_step, cleanup], task_queue="trust-other",
                                      retry=no_retry)
async_acts = workflow.proxy_activities(activities=[async_double], retry=no_retry)


def steps_of(handle: Any) -> list[tuple[str, str]]:
    return [(s["key"], s["name"]) for s in handle.steps()]


# --- durable calls after a suspension -----------------------------------------------------


def with_finally(tag: str) -> str:
    try:
        return acts.main_step(tag)
    finally:
        acts.cleanup(tag)


@contextlib.contextmanager
def cleaned_up(tag: str) -> Iterator[None]:
    try:
        yield
    finally:
        acts.cleanup(tag)


def with_context_manager(tag: str) -> str:
    with cleaned_up(tag):
        return acts.main_step(tag)


def with_except_base(tag: str) -> str:
    try:
        return acts.main_step(tag)
    except BaseException:
        acts.cleanup(tag)
        raise


@pytest.mark.parametrize("flow", [with_finally, with_context_manager, with_except_base])
def test_cleanup_calls_run_after_the_call_they_follow(mf: MemFlow, worker: Any,
                                                      flow: Any) -> None:
    """A durable call in a finally, a with exit or an except BaseException that
    runs while a suspension unwinds is not scheduled ahead of the suspended call."""
    tag = flow.__name__
    worker("default", [flow])
    handle = mf.workflow.start(flow, [tag])
    handle.result(timeout=30)
    mine = [entry for entry in order if entry.endswith(":" + tag)]
    if flow is with_except_base:
        # The except block runs only when the call fails, which it never does.
        assert mine == [f"main:{tag}"]
        assert steps_of(handle) == [("0", "main_step")]
    else:
        assert mine == [f"main:{tag}", f"cleanup:{tag}"]
        assert steps_of(handle) == [("0", "main_step"), ("1", "cleanup")]


def swallows_and_returns(tag: str) -> str:
    try:  # noqa: SIM105 - the shape under test
        acts.main_step(tag)
    except BaseException:
        pass
    return "finished early"


def swallows_and_goes_on(tag: str) -> str:
    try:  # noqa: SIM105 - the shape under test
        acts.main_step(tag)
    except BaseException:
        pass
    return str(acts.other_step(tag))


def returns_from_finally(tag: str) -> str:
    try:
        acts.main_step(tag)
    finally:
        return "from finally"  # noqa: B012 - the point of the test


def swallows_in_a_branch(tag: str) -> list[Any]:
    def branch() -> str:
        try:
            return str(acts.main_step(tag))
        except BaseException:
            return "swallowed"

    return workflow.all(branch, lambda: acts.other_step(tag))


@pytest.mark.parametrize("flow", [swallows_and_returns, swallows_and_goes_on,
                                  returns_from_finally, swallows_in_a_branch])
def test_a_swallowed_suspension_fails_the_workflow(mf: MemFlow, worker: Any, flow: Any) -> None:
    """Code that catches the suspension and goes on never completes with skipped
    steps: it fails with NonDeterminismError saying what happened."""
    tag = flow.__name__
    worker("default", [flow])
    handle = mf.workflow.start(flow, [tag])
    with pytest.raises(errors.WorkflowFailedError) as failed:
        handle.result(timeout=30)
    assert failed.value.code == errors.CODE_FATAL
    assert failed.value.error_type == "NonDeterminismError"
    assert "caught the suspension" in failed.value.message
    assert not [entry for entry in order if entry.endswith(":" + tag)]
    assert handle.steps() == []


# --- activities on another queue -----------------------------------------------------------


def cross_queue(tag: str) -> list[str]:
    return [elsewhere.main_step(tag), elsewhere.cleanup(tag)]


def test_activities_on_another_queue_come_back_without_a_detour(
        mf: MemFlow, worker: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The worker of the activities' queue records each step and hands the
    workflow back to its own queue; it never tries to run the workflow."""
    caplog.set_level(logging.DEBUG, logger="hotmesh_sync")
    worker("trust-main", [cross_queue])
    worker("trust-other", activities=[main_step, cleanup])
    handle = mf.workflow.start(cross_queue, ["xq"], task_queue="trust-main")
    assert handle.result(timeout=8) == ["main done", "cleaned"]
    assert "workflow_not_registered" not in caplog.text
    assert [entry for entry in order if entry.endswith(":xq")] == ["main:xq", "cleanup:xq"]


# --- async -------------------------------------------------------------------------------


def uses_async_activity(n: int) -> int:
    return int(async_acts.async_double(n)) + int(async_acts.async_double(n + 1))


def test_async_activities_are_awaited_in_the_worker_thread(mf: MemFlow, worker: Any) -> None:
    worker("default", [uses_async_activity])
    assert mf.workflow.execute(uses_async_activity, [5], timeout=30) == 22


async def async_flow() -> None:
    return None


def test_an_async_workflow_is_refused_at_registration(mf: MemFlow) -> None:
    with pytest.raises(TypeError, match="async def"):
        mf.worker("default", [async_flow])


# --- input refused at the call, inside a workflow ------------------------------------------


def tries(what: str) -> str:
    """Make one bad call; report how it was refused."""
    bad = "bad\x00id"
    calls = {
        "child_id": lambda: workflow.exec_child("tries", ["x"], workflow_id=bad),
        "child_name": lambda: workflow.start_child(bad),
        "wait_id": lambda: workflow.wait_for(bad),
        "signal_id": lambda: workflow.signal(bad, 1),
        "hook_signal_id": lambda: workflow.exec_hook("tries", ["x"], signal_id=bad),
        "hook_name": lambda: workflow.hook(bad),
        "activity_name": lambda: acts.call(bad),
        "sleep_inf": lambda: workflow.sleep_for(float("inf")),
        "sleep_huge": lambda: workflow.sleep_for(1e300),
        "sleep_weeks": lambda: workflow.sleep_for("99999999999 weeks"),
        "long_child_id": lambda: workflow.exec_child("tries", ["x"], workflow_id="x" * 10000),
        "long_start_child": lambda: workflow.start_child("tries", ["x"], workflow_id="y" * 5000),
        "wait_timeout_inf": lambda: workflow.wait_for("ok", timeout=float("inf")),
    }
    if what not in calls:
        return "not a test"
    try:
        calls[what]()
    except (ValueError, TypeError) as exc:
        return f"refused: {type(exc).__name__}"
    return "accepted"


BAD_CALLS = ["child_id", "child_name", "wait_id", "signal_id", "hook_signal_id", "hook_name",
             "activity_name", "sleep_inf", "sleep_huge", "sleep_weeks", "long_child_id",
             "long_start_child", "wait_timeout_inf"]


def test_bad_names_and_durations_are_refused_at_the_call(mf: MemFlow, worker: Any) -> None:
    """Each of these stayed pending forever (or retried every 5 s) before."""
    worker("default", [tries])
    handles = {what: mf.workflow.start(tries, [what]) for what in BAD_CALLS}
    outcomes = {what: h.result(timeout=30) for what, h in handles.items()}
    assert outcomes == {what: "refused: ValueError" for what in BAD_CALLS}
    assert all(h.steps() == [] for h in handles.values())


def raises_unstorable(kind: str) -> None:
    raise ValueError("\x00" if kind == "nul" else "\ud800 and more")


@pytest.mark.parametrize("kind", ["nul", "surrogate"])
def test_a_workflow_error_postgres_cannot_store_is_stored_escaped(
        mf: MemFlow, worker: Any, kind: str) -> None:
    worker("default", [raises_unstorable])
    handle = mf.workflow.start(raises_unstorable, [kind])
    with pytest.raises(errors.WorkflowFailedError) as failed:
        handle.result(timeout=30)
    assert failed.value.error_type == "ValueError"
    assert ("\\x00" if kind == "nul" else "\\ud800") in failed.value.message
    assert handle.status() == "failed"


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def raises_nul() -> None:
    raise RuntimeError("bad\x00message " + "m" * 100_000)


def raises_unprintable() -> None:
    raise Unprintable()


bad_errors = workflow.proxy_activities(activities=[raises_nul, raises_unprintable],
                                       retry=RetryPolicy(maximum_attempts=2,
                                                         initial_interval="10ms"))


def calls_bad_activity(which: str) -> dict[str, str]:
    try:
        bad_errors.call(which)
    except errors.MaxedError as exc:
        return {"error_type": exc.error_type, "message": exc.message}
    return {}


@pytest.mark.parametrize("which", ["raises_nul", "raises_unprintable"])
def test_an_activity_error_that_cannot_be_stored_is_stored_as_itself(
        mf: MemFlow, worker: Any, which: str) -> None:
    """It used to be rerun until dead-lettered as WorkerLost."""
    worker("default", [calls_bad_activity])
    result = mf.workflow.execute(calls_bad_activity, [which], timeout=30)
    if which == "raises_nul":
        assert result["error_type"] == "RuntimeError"
        assert "bad\\x00message" in result["message"]
        assert len(result["message"]) < 10_000
    else:
        assert result["error_type"] == "Unprintable"
        assert "could not be read" in result["message"]


# --- children that cannot finish ------------------------------------------------------------


def parent_of_stuck(child_id: str) -> Any:
    return workflow.exec_child("never_registered", [], task_queue="trust-nobody",
                               workflow_id=child_id)


def test_interrupt_descends_to_a_child_whose_id_is_too_long_to_announce(
        mf: MemFlow, worker: Any, pg_dsn: str) -> None:
    import psycopg
    from psycopg import sql

    worker("default", [parent_of_stuck])
    parent = mf.workflow.start(parent_of_stuck, ["stuck-child"])
    child = mf.workflow.get_handle
    for _ in range(200):
        try:
            child("stuck-child")
            break
        except errors.WorkflowNotFoundError:
            threading.Event().wait(0.05)
    # A child written before ids were limited: its end cannot be NOTIFYed.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE {}.jobs SET id = %s WHERE id = 'stuck-child'").format(
            sql.Identifier(mf.schema)), ["z" * 10_000])
    assert parent.interrupt("stop", descend=True) is True
    with pytest.raises(errors.WorkflowInterruptedError):
        parent.result(timeout=10)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT status FROM {}.jobs WHERE id = %s").format(
            sql.Identifier(mf.schema)), ["z" * 10_000]).fetchone()
    assert row is not None and row[0] == "interrupted"
