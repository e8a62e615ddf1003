"""Replay rules: non-determinism, NotInWorkflowError, leases, lifecycle events."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hotmesh_sync import MemFlow, errors, workflow
from hotmesh_sync.logging_setup import event_of


@contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """The library's log events (debug too) while the block runs, as dicts with ``event``
    and the event's fields (they are stdlib logging records of the hotmesh_sync loggers)."""
    events: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append(event_of(record))

    logger, handler = logging.getLogger("hotmesh_sync"), Collect()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield events
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


version = {"current": 1}
runs: dict[str, int] = {}
runs_lock = threading.Lock()


def step_a() -> str:
    return "a"


def step_b() -> str:
    return "b"


def slow_step(seconds: float) -> str:
    with runs_lock:
        runs["slow"] = runs.get("slow", 0) + 1
    time.sleep(seconds)
    return "slow done"


acts = workflow.proxy_activities(activities=[step_a, step_b, slow_step])


def changing() -> str:
    # Version 1 calls step_a first; version 2 calls step_b at that position.
    first = acts.step_a() if version["current"] == 1 else acts.step_b()
    workflow.wait_for("continue")
    return first


def long_activity(seconds: float) -> str:
    return acts.slow_step(seconds)


def test_changed_code_fails_with_non_determinism(mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[changing])
    handle = mf.workflow.start(changing, workflow_id="nd")
    deadline = time.monotonic() + 15
    while handle.status() != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    version["current"] = 2
    try:
        handle.signal("continue")
        with pytest.raises(errors.WorkflowFailedError) as info:
            handle.result(timeout=30)
    finally:
        version["current"] = 1
    assert info.value.code == 598
    assert info.value.error_type == "NonDeterminismError"
    assert "position 0" in info.value.message
    assert "step_a" in info.value.message and "step_b" in info.value.message


def test_workflow_functions_outside_a_run_raise() -> None:
    for call in (lambda: workflow.sleep_for(1), lambda: workflow.wait_for("x"),
                 lambda: workflow.signal("x"), workflow.entity, workflow.random,
                 workflow.now, workflow.uuid4, workflow.info, lambda: acts.step_a(),
                 lambda: workflow.exec_child("x"), lambda: workflow.all()):
        with pytest.raises(errors.NotInWorkflowError):
            call()


def test_suspension_is_not_an_exception() -> None:
    assert not issubclass(workflow.Suspension, Exception)
    assert issubclass(workflow.Suspension, BaseException)


def test_heartbeat_keeps_a_long_activity_from_running_twice(mf: MemFlow, worker: Any) -> None:
    runs.pop("slow", None)
    worker("default", workflows=[long_activity], concurrency=2, lease=2.0)
    # A second worker that would steal the task if its lease lapsed.
    worker("default", workflows=[long_activity], concurrency=2, lease=2.0)
    assert mf.workflow.execute(long_activity, [6.5], timeout=30) == "slow done"
    assert runs["slow"] == 1


def test_lifecycle_events_are_logged_with_the_workflow_id(mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[long_activity])
    with capture_logs() as logs:
        mf.workflow.execute(long_activity, [0], workflow_id="logged", timeout=30)
    events = [(e["event"], e.get("workflow_id")) for e in logs]
    for expected in ("workflow_queued", "workflow_started", "activity_completed",
                     "workflow_completed"):
        assert (expected, "logged") in events, (expected, events)


def test_same_named_activities_in_two_modules_each_reach_their_own(
        mf: MemFlow, worker: Any) -> None:
    """Two proxies of activities that share a name do not run each other's function."""
    import types

    other = types.ModuleType("other_activities")

    def step_a() -> str:
        return "the other module's step_a"

    step_a.__module__ = other.__name__
    step_a.__qualname__ = "step_a"
    other_acts = workflow.proxy_activities(activities=[step_a])

    def uses_other() -> str:
        return other_acts.step_a()  # type: ignore[no-any-return]

    def uses_ours() -> str:
        return acts.step_a()  # type: ignore[no-any-return]

    worker("default", workflows=[uses_other, uses_ours])
    assert mf.workflow.execute(uses_ours, timeout=30) == "a"
    assert mf.workflow.execute(uses_other, timeout=30) == "the other module's step_a"


def entity_user() -> int:
    return workflow.entity().increment("n")  # type: ignore[no-any-return]


def test_a_database_failure_in_an_activation_is_retried_calmly(mf: MemFlow, worker: Any) -> None:
    """A broken schema fails the claim, not the workflow: the task waits and succeeds later."""
    import psycopg
    from psycopg import sql

    from hotmesh_sync.store.queries import read_sql_file, render

    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP FUNCTION {}.entity_try").format(sql.Identifier(mf.schema)))
    worker("default", workflows=[entity_user])
    with capture_logs() as logs:
        handle = mf.workflow.start(entity_user)
        time.sleep(2.0)
        assert handle.status() == "pending"
        failures = [e for e in logs if e["event"] == "task_failed"]
        assert 1 <= len(failures) <= 2, "a failing task must be set aside, not retried hot"
    script = read_sql_file("migrations/0002_entity_try.sql")
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(render(script, mf.schema))
    assert handle.result(timeout=30) == 1
