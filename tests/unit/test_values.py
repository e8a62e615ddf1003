"""Pure helpers: durations, retry policies, JSON checks, names."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hotmesh_sync import RetryPolicy, errors
from hotmesh_sync.durations import to_seconds
from hotmesh_sync.jsonvalue import dumps, normalized
from hotmesh_sync.memflow import schema_for
from hotmesh_sync.retry import delay_from_json


@pytest.mark.parametrize("text, seconds", [
    (5, 5.0), (2.5, 2.5), (timedelta(minutes=2), 120.0), ("500ms", 0.5), ("5s", 5.0),
    ("5 seconds", 5.0), ("1 minute", 60.0), ("2 hours", 7200.0), ("30 days", 2592000.0),
    ("1h 30m", 5400.0), ("7d", 604800.0), ("10", 10.0),
])
def test_durations(text: object, seconds: float) -> None:
    assert to_seconds(text) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "five", "5 parsecs", "-1s", -3, True, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        to_seconds(bad)  # type: ignore[arg-type]


def test_retry_policy_defaults_and_backoff() -> None:
    policy = RetryPolicy()
    assert (policy.maximum_attempts, policy.backoff_coefficient) == (5, 2.0)
    assert (policy.initial_interval, policy.maximum_interval) == ("1s", "120s")
    assert policy.non_retryable == ()
    assert [policy.delay_after(n) for n in (1, 2, 3, 8, 9)] == [1.0, 2.0, 4.0, 120.0, 120.0]
    durable = RetryPolicy(non_retryable=(ValueError, KeyError)).to_json()
    assert durable["non_retryable"] == ["ValueError", "KeyError"]
    assert [delay_from_json(durable, n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(maximum_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_coefficient=0.5)
    with pytest.raises(ValueError):
        RetryPolicy(initial_interval="soon")


def test_json_checks() -> None:
    assert normalized((1, [2, (3,)])) == [1, [2, [3]]]
    for bad in [object(), {1, 2}, float("nan"), float("inf"), {"k": b"bytes"}, "nul\x00",
                "lone \ud800 surrogate", {"\udfff": 1}]:
        with pytest.raises(TypeError):
            dumps(bad)


def test_payload_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTMESH_MAX_PAYLOAD_BYTES", "100")
    dumps("x" * 50)
    with pytest.raises(errors.PayloadTooLargeError):
        dumps("x" * 200)


@pytest.mark.parametrize("app_id, schema", [
    ("my-app", "my_app"), ("My_App-2", "my_app_2"), ("a" * 48, "a" * 48)])
def test_schema_names(app_id: str, schema: str) -> None:
    assert schema_for(app_id) == schema


def test_error_tree() -> None:
    for cls in (errors.ConfigurationError, errors.DuplicateWorkflowError,
                errors.WorkflowNotFoundError, errors.NotInWorkflowError,
                errors.NonDeterminismError, errors.InvalidPathError, errors.EntityTypeError,
                errors.FatalError, errors.MaxedError, errors.WorkflowFailedError):
        assert issubclass(cls, errors.HotMeshError)
    assert issubclass(errors.WorkflowInterruptedError, errors.WorkflowFailedError)
