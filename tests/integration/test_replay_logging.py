"""``workflow.logger`` is silent while a run replays, and failures keep the
chain of errors behind them (``causes``) all the way to ``handle.result()``:
end to end, with a real worker against PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from hotmesh_sync import MemFlow, RetryPolicy, errors, workflow

#: What activities and workflows did, by key (activities run in worker threads).
SEEN: dict[str, list[Any]] = {}


@pytest.fixture(autouse=True)
def _fresh_seen() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.fixture
def workflow_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog at DEBUG for the logger workflow code logs to."""
    caplog.set_level(logging.DEBUG, logger="hotmesh_sync.workflow")
    return caplog


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "hotmesh_sync.workflow" and getattr(r, "event", None) == event]


# --- workflow.logger ------------------------------------------------------------------------

def step(n: int) -> int:
    return n + 1


steps = workflow.proxy_activities(activities=[step], retry=RetryPolicy(maximum_attempts=1))


def chatty(n: int) -> int:
    SEEN.setdefault("chatty", []).append(workflow.info().is_replaying)  # once per activation
    workflow.logger.info("before_step", n=n)
    a = steps.step(n)
    workflow.logger.info("between", a=a)
    b = steps.step(a)
    workflow.logger.info("after", b=b)
    return int(b)


def chatty_hook(n: int) -> int:
    SEEN.setdefault("chatty_hook", []).append(workflow.info().is_replaying)
    workflow.logger.info("hook_step", n=n)
    return int(steps.step(n))


def hook_host(n: int) -> Any:
    return workflow.exec_hook(chatty_hook, [n])


def test_workflow_logger_logs_each_line_once_across_replays(
        mf: MemFlow, worker: Any, workflow_logs: pytest.LogCaptureFixture) -> None:
    worker("default", [chatty], [step])
    handle = mf.workflow.start(chatty, [1])
    assert handle.result(timeout=20) == 3
    # Activated once at the start and once after each activity: replays happened.
    activations = SEEN["chatty"]
    assert len(activations) >= 3 and activations[0] is False and all(activations[1:])
    for event in ("before_step", "between", "after"):
        records = _events(workflow_logs, event)
        assert len(records) == 1, (event, [r.getMessage() for r in records])
        [record] = records
        assert getattr(record, "workflow_id", None) == handle.workflow_id
        assert getattr(record, "workflow_name", None) == "chatty"
        assert record.levelno == logging.INFO
        assert record.funcName == "chatty"  # points at the workflow code, not the wrapper
    assert getattr(_events(workflow_logs, "before_step")[0], "n", None) == 1
    assert getattr(_events(workflow_logs, "between")[0], "a", None) == 2
    assert getattr(_events(workflow_logs, "after")[0], "b", None) == 3


def test_a_hook_using_workflow_logger_logs_once(
        mf: MemFlow, worker: Any, workflow_logs: pytest.LogCaptureFixture) -> None:
    worker("default", [hook_host, chatty_hook], [step])
    handle = mf.workflow.start(hook_host, [10])
    assert handle.result(timeout=20) == 11
    assert len(SEEN["chatty_hook"]) >= 2  # the hook was replayed after its activity
    [record] = _events(workflow_logs, "hook_step")
    assert getattr(record, "workflow_id", None) == handle.workflow_id
    assert getattr(record, "n", None) == 10
    assert getattr(record, "run_id", "")  # a hook's records name its run


# --- causes -----------------------------------------------------------------------------

def charge(amount: int) -> str:
    SEEN.setdefault("charge", []).append(amount)
    raise RuntimeError("charge failed") from ConnectionError("card service down")


def write_receipt(amount: int) -> str:
    SEEN.setdefault("write_receipt", []).append(amount)
    raise errors.FatalError("receipt not written") from OSError("disk full")


payments = workflow.proxy_activities(
    activities=[charge, write_receipt],
    retry=RetryPolicy(maximum_attempts=2, initial_interval="100ms"))


def pays(amount: int) -> str:
    return str(payments.charge(amount))  # not caught: the workflow fails with it


def writes_receipt(amount: int) -> str:
    return str(payments.write_receipt(amount))


def breaks_itself(key: str) -> str:
    try:
        return {"other": "value"}[key]
    except KeyError as exc:
        raise ValueError("bad") from exc


def test_an_activity_failure_keeps_its_cause_to_the_client(mf: MemFlow, worker: Any) -> None:
    worker("default", [pays], [charge])
    handle = mf.workflow.start(pays, [100])
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=20)
    failure = info.value
    assert failure.code == errors.CODE_MAXED == 597
    assert failure.error_type == "RuntimeError"
    assert "charge failed" in failure.message and "after 2 attempts" in failure.message
    assert ("ConnectionError", "card service down") in failure.causes
    assert "ConnectionError: card service down" in str(failure)
    assert SEEN["charge"] == [100, 100]  # both attempts ran
    # The activity's step keeps the chain too.
    [recorded] = handle.steps()
    assert recorded["error"]["type"] == "MaxedError"
    assert {"error_type": "ConnectionError", "message": "card service down"} in (
        recorded["error"]["causes"])


def test_a_workflow_failure_keeps_its_cause(mf: MemFlow, worker: Any) -> None:
    worker("default", [breaks_itself])
    handle = mf.workflow.start(breaks_itself, ["k"])
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=20)
    failure = info.value
    assert failure.code == errors.CODE_MAXED
    assert failure.error_type == "ValueError" and failure.message == "bad"
    assert [kind for kind, _ in failure.causes] == ["KeyError"]
    assert "'k'" in failure.causes[0][1]
    assert "caused by KeyError" in str(failure)


def test_a_fatal_error_raised_from_another_keeps_it(mf: MemFlow, worker: Any) -> None:
    worker("default", [writes_receipt], [write_receipt])
    handle = mf.workflow.start(writes_receipt, [5])
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=20)
    failure = info.value
    assert failure.code == errors.CODE_FATAL == 598
    assert failure.message == "receipt not written"
    assert ("OSError", "disk full") in failure.causes
    assert "OSError: disk full" in str(failure)
    assert SEEN["write_receipt"] == [5]  # FatalError is never retried
