"""Errors keep their cause chain: ``__cause__`` (or the error being handled),
as type and message, is stored with a failure and shown by ``WorkflowFailedError``.

Also ``CancelledError``: stored and rebuilt as itself, and never an ``Exception``.
Pure: no database, no worker.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from hotmesh_sync import errors, workflow
from hotmesh_sync.records import (
    MAX_CAUSE_MESSAGE,
    MAX_CAUSES,
    ErrorRecord,
    StepRecord,
    from_record,
    to_record,
    workflow_failure,
)
from hotmesh_sync.retry import RetryPolicy
from hotmesh_sync.worker.activation import failure_code
from hotmesh_sync.worker.activity_runner import classify_failure
from hotmesh_sync.workflow.context import RunContext, StepSession, activated


def _chained() -> RuntimeError:
    """``RuntimeError("charge failed") from ConnectionError("card service down")``, raised."""
    try:
        try:
            raise ConnectionError("card service down")
        except ConnectionError as exc:
            raise RuntimeError("charge failed") from exc
    except RuntimeError as exc:
        return exc


CARD_DOWN = (("ConnectionError", "card service down"),)
#: Looking "k" up in it raises KeyError('k').
_EMPTY: dict[str, int] = {}


# --- to_record: the chain of a live exception -----------------------------------------------------


def test_explicit_cause_is_kept() -> None:
    record = to_record(_chained())
    assert (record.type, record.error_type, record.message) == (
        "RuntimeError", "RuntimeError", "charge failed")
    assert record.causes == CARD_DOWN


def test_implicit_context_is_kept() -> None:
    """An error raised while handling another (no ``from``) keeps that one too."""
    try:
        try:
            _EMPTY["k"]  # noqa: B018 - raises KeyError on purpose
        except KeyError:
            raise ValueError("bad input")  # noqa: B904 - no ``from``, on purpose
    except ValueError as exc:
        record = to_record(exc)
    assert record.causes == (("KeyError", "'k'"),)


def test_from_none_hides_the_context() -> None:
    try:
        try:
            raise KeyError("k")
        except KeyError:
            raise ValueError("x") from None
    except ValueError as exc:
        record = to_record(exc)
    assert record.causes == ()


def test_a_whole_chain_outermost_first() -> None:
    inner = OSError("disk")
    middle = LookupError("index")
    middle.__cause__ = inner
    outer = RuntimeError("top")
    outer.__cause__ = middle
    assert to_record(outer).causes == (("LookupError", "index"), ("OSError", "disk"))


def test_a_chain_that_loops_is_followed_once() -> None:
    first = ValueError("a")
    second = TypeError("b")
    first.__cause__ = second
    second.__cause__ = first
    assert to_record(first).causes == (("TypeError", "b"),)
    self_caused = ValueError("me")
    self_caused.__cause__ = self_caused
    assert to_record(self_caused).causes == ()


def test_the_chain_is_cut_at_five() -> None:
    head = RuntimeError("0")
    link = head
    for n in range(1, 20):
        behind = RuntimeError(str(n))
        link.__cause__ = behind
        link = behind
    causes = to_record(head).causes
    assert len(causes) == MAX_CAUSES == 5
    assert [message for _, message in causes] == ["1", "2", "3", "4", "5"]


def test_cause_messages_are_made_storable() -> None:
    """A NUL, a lone surrogate and a huge message become text jsonb accepts, cut short."""
    outer = RuntimeError("outer")
    outer.__cause__ = ValueError("nul\x00 and \ud800 here " + "x" * 50_000)
    ((kind, message),) = to_record(outer).causes
    assert kind == "ValueError"
    assert "\x00" not in message
    message.encode("utf-8")  # no lone surrogate left
    assert message.startswith("nul\\x00 and \\ud800 here ")
    assert len(message) < MAX_CAUSE_MESSAGE + 100
    assert message.endswith("more characters]")


def test_a_cause_whose_str_raises_is_still_recorded() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    outer = RuntimeError("outer")
    outer.__cause__ = Unprintable()
    ((kind, message),) = to_record(outer).causes
    assert kind == "Unprintable"
    assert "could not be read" in message


# --- JSON -----------------------------------------------------------------------------------------


def test_causes_round_trip_through_json() -> None:
    record = to_record(_chained())
    data = record.to_json()
    assert data["causes"] == [{"error_type": "ConnectionError", "message": "card service down"}]
    assert ErrorRecord.from_json(data) == record


def test_a_record_without_causes_keeps_its_exact_json() -> None:
    """Records stored before causes existed (and golden files) stay byte-identical."""
    stored: dict[str, Any] = {"type": "WorkflowFailedError", "error_type": "RuntimeError",
                              "message": "boom", "code": 597}
    again = ErrorRecord.from_json(stored).to_json()
    assert again == stored
    assert list(again) == list(stored)
    assert "causes" not in to_record(RuntimeError("alone")).to_json()


def test_malformed_causes_are_skipped() -> None:
    data = {"type": "FatalError", "error_type": "E", "message": "m",
            "causes": [{"error_type": "A", "message": "a"}, "junk", {"error_type": 1},
                       {"message": "no type"}, None, {"error_type": "B", "message": "b"}]}
    assert ErrorRecord.from_json(data).causes == (("A", "a"), ("B", "b"))
    for junk in ("text", 3, {"error_type": "A"}, None):
        assert ErrorRecord.from_json({**data, "causes": junk}).causes == ()


# --- rebuilt errors carry them --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["FatalError", "MaxedError"])
def test_rebuilt_activity_errors_carry_causes(kind: str) -> None:
    data = ErrorRecord(kind, "RuntimeError", "charge failed", causes=CARD_DOWN).to_json()
    exc = from_record(data)
    assert isinstance(exc, errors.FatalError if kind == "FatalError" else errors.MaxedError)
    assert exc.causes == CARD_DOWN
    assert exc.message == "charge failed"
    assert exc.error_type == "RuntimeError"


def test_workflow_failed_error_shows_its_causes() -> None:
    data = ErrorRecord("WorkflowFailedError", "RuntimeError",
                       "charge failed (after 3 attempts)", code=597, causes=CARD_DOWN).to_json()
    exc = workflow_failure(data, "order-1")
    assert exc.causes == CARD_DOWN
    assert exc.message == "charge failed (after 3 attempts)"
    assert exc.workflow_id == "order-1"
    assert str(exc) == ("[597] RuntimeError: charge failed (after 3 attempts) "
                        "<- caused by ConnectionError: card service down")
    rebuilt = from_record(data)
    assert isinstance(rebuilt, errors.WorkflowFailedError)
    assert rebuilt.causes == CARD_DOWN


def test_an_interrupted_workflow_keeps_its_causes() -> None:
    data = ErrorRecord("WorkflowFailedError", "CancelledError", "stop", code=410,
                       causes=(("KeyError", "'k'"),)).to_json()
    exc = workflow_failure(data, None)
    assert isinstance(exc, errors.WorkflowInterruptedError)
    assert str(exc) == "[410] CancelledError: stop <- caused by KeyError: 'k'"


def test_several_causes_read_in_order() -> None:
    exc = errors.WorkflowFailedError("top", code=598, error_type="E",
                                     causes=[("A", "a"), ("B", "b")])
    assert str(exc) == "[598] E: top <- caused by A: a <- caused by B: b"
    assert exc.causes == (("A", "a"), ("B", "b"))


def test_errors_without_causes_read_as_before() -> None:
    assert str(errors.WorkflowFailedError("m", code=597, error_type="E")) == "[597] E: m"
    assert str(errors.FatalError("m")) == "m"
    assert errors.MaxedError("m").causes == ()


def test_a_library_error_keeps_the_causes_it_carries() -> None:
    """A MaxedError rebuilt on replay has no Python chain left, only its stored one."""
    maxed = errors.MaxedError("charge failed (after 3 attempts)", "RuntimeError",
                              causes=CARD_DOWN)
    try:
        try:
            raise KeyError("unrelated, being handled")
        except KeyError:
            raise maxed  # noqa: B904 - the context must not replace the carried chain
    except errors.MaxedError as exc:
        record = to_record(exc, as_type="WorkflowFailedError", code=failure_code(exc))
    assert record.causes == CARD_DOWN
    assert (record.type, record.error_type, record.code) == (
        "WorkflowFailedError", "RuntimeError", 597)


def test_a_library_error_without_causes_uses_its_own_chain() -> None:
    try:
        try:
            raise ConnectionError("card service down")
        except ConnectionError as exc:
            raise errors.FatalError("charge failed") from exc
    except errors.FatalError as exc:
        assert to_record(exc).causes == CARD_DOWN


def test_a_caught_library_error_brings_its_chain_along() -> None:
    """``raise ValueError(...) from maxed``: the MaxedError, then what it carried."""
    maxed = errors.MaxedError("charge failed", "RuntimeError", causes=CARD_DOWN)
    outer = ValueError("order failed")
    outer.__cause__ = maxed
    assert to_record(outer).causes == (("RuntimeError", "charge failed"), *CARD_DOWN)


# --- classify_failure -----------------------------------------------------------------------------


def _payload(attempt: int) -> dict[str, Any]:
    return {"name": "charge", "attempt": attempt,
            "retry": RetryPolicy(maximum_attempts=5).to_json()}


def test_classify_failure_keeps_causes_when_retries_run_out() -> None:
    record, delay = classify_failure(_payload(5), _chained())
    assert record is not None and record.error is not None
    assert delay == 0.0
    assert record.error["type"] == "MaxedError"
    assert record.error["message"] == "charge failed (after 5 attempts)"
    assert record.error["causes"] == [{"error_type": "ConnectionError",
                                       "message": "card service down"}]


def test_classify_failure_keeps_causes_of_a_fatal_error() -> None:
    try:
        try:
            raise ConnectionError("card service down")
        except ConnectionError as exc:
            raise errors.FatalError("card declined") from exc
    except errors.FatalError as exc:
        record, _ = classify_failure(_payload(1), exc)
    assert record is not None and record.error is not None
    assert record.error["type"] == "FatalError"
    assert ErrorRecord.from_json(record.error).causes == CARD_DOWN


def test_classify_failure_retries_without_a_record() -> None:
    assert classify_failure(_payload(1), _chained()) == (None, 1.0)


# --- the whole way: activity, replay, workflow failure, client ------------------------------------


class _NoSession:
    """A StepSession that fails if called: these runs only replay recorded steps.

    Any attribute fails, rather than each method being written out, so the
    test does not follow every change to the StepSession protocol.
    """

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the session was asked for {name!r}")


def _session() -> StepSession:
    return cast(StepSession, _NoSession())


def charge(amount: int) -> str:
    raise AssertionError("replayed, never run")


acts = workflow.proxy_activities(activities=[charge])


def checkout() -> str:
    return str(acts.charge(10))


def _failure_of(fn: Any, history: dict[str, StepRecord]) -> dict[str, Any]:
    """The stored failure of one activation of ``fn`` over ``history`` (as the worker stores it)."""
    ctx = RunContext("order-1", "", "checkout", "default", None, 1, history, _session())
    with activated(ctx), pytest.raises(Exception) as caught:
        fn()
    exc = caught.value
    return to_record(exc, as_type="WorkflowFailedError", code=failure_code(exc)).to_json()


def test_an_activity_cause_reaches_the_client() -> None:
    record, _ = classify_failure({**_payload(3), "retry": RetryPolicy(3).to_json()}, _chained())
    assert record is not None
    failure = _failure_of(checkout, {"0": record})
    exc = workflow_failure(failure, "order-1")
    assert exc.code == errors.CODE_MAXED
    assert str(exc) == ("[597] RuntimeError: charge failed (after 3 attempts) "
                        "<- caused by ConnectionError: card service down")


def test_a_workflow_own_chain_is_stored() -> None:
    def lookup() -> None:
        try:
            _EMPTY["k"]  # noqa: B018 - raises KeyError on purpose
        except KeyError as exc:
            raise ValueError("x") from exc

    failure = _failure_of(lookup, {})
    assert failure["causes"] == [{"error_type": "KeyError", "message": "'k'"}]
    assert str(workflow_failure(failure, None)).endswith("x <- caused by KeyError: 'k'")


# --- CancelledError -------------------------------------------------------------------------------


def test_cancelled_error_is_not_an_exception() -> None:
    assert issubclass(errors.CancelledError, BaseException)
    assert not issubclass(errors.CancelledError, Exception)
    with pytest.raises(errors.CancelledError):
        try:
            raise errors.CancelledError("interrupted", reason="user asked")
        except Exception:  # what a workflow's broad handler does: it must not catch it
            pytest.fail("except Exception caught CancelledError")


def test_cancelled_error_defaults() -> None:
    exc = errors.CancelledError()
    assert (exc.message, exc.reason, str(exc)) == ("cancelled", None, "cancelled")


def test_cancelled_error_round_trip() -> None:
    record = to_record(errors.CancelledError("user asked", reason="user asked"))
    assert (record.type, record.error_type, record.message) == (
        "CancelledError", "CancelledError", "user asked")
    rebuilt = from_record(record.to_json())
    assert isinstance(rebuilt, errors.CancelledError)
    assert type(rebuilt) is errors.CancelledError
    assert rebuilt.message == "user asked"
    assert rebuilt.reason == "user asked"
