"""The replay engine driven through an in-memory session: no database, no worker.

Most cases are golden histories in ``golden/*.json``. Each names a workflow
function defined here, the history recorded so far, and what one activation
over that history must do: return a result, suspend on pending calls, or
fail; plus what it recorded and which session calls it made. ``activate()``
below mirrors how ``hotmesh_sync.worker.activation.activate`` drives a run
(the same order of checks) without its transaction.

A golden file holds: ``about`` (one sentence), ``workflow`` (a name in
``WORKFLOWS``), ``args``, ``history`` (a list of ``{key, kind, name, result,
error}``), optionally ``signals`` (sent and not yet consumed), ``limits``
(``ActivationLimits`` fields), ``pending_keys`` (positions with a call still
scheduled, which ``has_pending`` reports), ``cancel`` (the stored error of a
requested cancellation not raised yet) and ``run_number`` (default 1);
``expect``, one of ``{"result": ...}``, ``{"suspended": [{kind, key,
payload?}, ...]}`` (payload entries are checked one by one), ``{"error":
{type, match}}`` (the run failed; ``match`` is a fragment of the message),
``{"cancelled": {match}}`` (CancelledError got out: the workflow ends
interrupted) or ``{"continued": [args...]}`` (``continue_as_new`` with these
args for the next run); ``recorded``, the steps the activation recorded
(``result`` and ``error`` checked where given); ``calls``, the session methods
it called besides ``record``; ``swallowed``, whether the run ended with the
suspension it had raised caught.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hotmesh_sync import errors, workflow
from hotmesh_sync.records import StepRecord
from hotmesh_sync.workflow.context import (
    ActivationLimits,
    RunContext,
    StepSession,
    activated,
)
from hotmesh_sync.workflow.suspension import ContinueAsNew, Pending, Suspension

GOLDEN = Path(__file__).parent / "golden"
FIXED_NOW = "2024-01-02T03:04:05+00:00"


# --- an in-memory StepSession -------------------------------------------------------------


@dataclass
class FakeSession:
    """Records what the engine asks of storage; ``signals`` are the ones waiting,
    ``pending_keys`` the positions with a call still scheduled."""

    signals: dict[str, Any] = field(default_factory=dict)
    pending_keys: set[str] = field(default_factory=set)
    recorded: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)

    def record(self, key: str, kind: str, name: str, result: Any,
               error: dict[str, Any] | None) -> None:
        self.recorded.append({"key": key, "kind": kind, "name": name, "result": result,
                              "error": error})

    def entity_command(self, command: str, path: list[str] | None,
                       args: dict[str, Any]) -> Any:
        self.calls.append("entity_command")
        if command == "set":
            self.document = dict(args["value"])
        elif command != "get":
            raise NotImplementedError(command)
        return self.document

    def take_signal(self, key: str, signal_ids: list[str]) -> tuple[str, Any] | None:
        self.calls.append("take_signal")
        for signal_id in signal_ids:
            if signal_id in self.signals:
                return signal_id, self.signals.pop(signal_id)
        return None

    def has_pending(self, key: str) -> bool:
        self.calls.append("has_pending")
        return key in self.pending_keys

    def cancel_delivered(self) -> None:
        self.calls.append("cancel_delivered")

    def send_signal(self, job_id: str, signal_id: str, data: Any) -> int:
        self.calls.append("send_signal")
        return 1

    def start_child(self, spec: dict[str, Any]) -> str:
        self.calls.append("start_child")
        return str(spec["workflow_id"])

    def start_hook(self, spec: dict[str, Any]) -> None:
        self.calls.append("start_hook")

    def interrupt(self, job_id: str, reason: str | None, force: bool) -> None:
        self.calls.append("interrupt")

    def now_iso(self) -> str:
        self.calls.append("now_iso")
        return FIXED_NOW


def _typed(session: FakeSession) -> StepSession:
    return session  # mypy checks here that FakeSession implements the Protocol


# --- one activation, as the worker drives it ----------------------------------------------


@dataclass
class Outcome:
    """How an activation ended: ``completed`` (result), ``suspended`` (pending),
    ``failed`` (error), ``cancelled`` (error) or ``continued`` (next_args)."""

    status: str
    result: Any = None
    pending: list[Pending] = field(default_factory=list)
    error: BaseException | None = None
    next_args: list[Any] = field(default_factory=list)


def activate(fn: Any, ctx: RunContext, args: list[Any]) -> Outcome:
    """Run ``fn`` once over ``ctx`` and classify the ending the way the worker does."""
    try:
        with activated(ctx):
            result = fn(*args)
    except Suspension as suspension:
        if ctx.broken is None:
            return Outcome("suspended", pending=suspension.pending)
        return Outcome("failed", error=ctx.broken)
    except errors.CancelledError as cancelled:
        broken = ctx.broken or _swallowed(ctx)
        if broken is not None or ctx.is_hook:
            return Outcome("failed", error=broken or cancelled)
        return Outcome("cancelled", error=cancelled)
    except ContinueAsNew as again:
        if ctx.broken is not None:
            return Outcome("failed", error=ctx.broken)
        return Outcome("continued", next_args=again.args_for_next)
    except Exception as exc:
        return Outcome("failed", error=ctx.broken or _swallowed(ctx) or exc)
    broken = ctx.broken or _swallowed(ctx)
    if broken is not None:
        return Outcome("failed", error=broken)
    return Outcome("completed", result=result)


def _swallowed(ctx: RunContext) -> errors.NonDeterminismError | None:
    if ctx.suspension is None:
        return None
    return errors.NonDeterminismError(ctx.swallowed_message())


def make_context(history: dict[str, StepRecord], session: FakeSession,
                 limits: ActivationLimits | None = None,
                 workflow_name: str = "test_workflow", run_number: int = 1,
                 cancel: dict[str, Any] | None = None) -> RunContext:
    return RunContext("wf-1", "", workflow_name, "default", None, 1, history, _typed(session),
                      limits=limits or ActivationLimits(), run_number=run_number,
                      cancel=cancel)


# --- the workflows the golden files name ----------------------------------------------------


def greet(name: str) -> str:
    return f"Hello, {name}"


def shout(text: str) -> str:
    return text.upper()


acts = workflow.proxy_activities(activities=[greet, shout])


def straight_line(name: str) -> list[str]:
    """Two activities, a sleep and a wait, one after the other."""
    hello = acts.greet(name)
    loud = acts.shout(hello)
    workflow.sleep_for("5 seconds")
    approval = workflow.wait_for("approve")
    return [hello, loud, approval]


def fallback_on_failure(name: str) -> str:
    """An activity failure is replayed as FatalError, which the workflow may handle."""
    try:
        return str(acts.greet(name))
    except errors.FatalError as exc:
        return f"fallback after {exc.error_type}"


def branches() -> Any:
    """Two branches (one with two calls in a row), then one more call."""
    results = workflow.all(lambda: acts.greet("a"),
                           lambda: [acts.greet("b"), acts.shout("b")])
    return [results, acts.shout("done")]


def nested_branches() -> Any:
    """A ``workflow.all`` inside a branch of another."""
    return workflow.all(lambda: acts.greet("a"),
                        lambda: workflow.all(lambda: acts.greet("b1"),
                                             lambda: acts.greet("b2")))


def with_hook() -> Any:
    """exec_hook: a ``hook`` step (started inline) then a ``wait`` for its signal."""
    return workflow.exec_hook("review", ["draft"])


def entity_once() -> Any:
    """An entity command runs inline once; replays read its recorded result."""
    return workflow.entity().set({"n": 1})


def cleanup_in_finally() -> str:
    """A durable call in ``finally`` after the body suspended."""
    try:
        acts.greet("body")
    finally:
        acts.shout("cleanup")
    return "done"


def cleanup_in_except() -> str:
    """A durable call in ``except BaseException`` that then re-raises."""
    try:
        acts.greet("body")
    except BaseException:
        acts.shout("cleanup")
        raise
    return "done"


def swallow_and_return() -> str:
    """Catches the suspension and returns as if the call had happened."""
    try:  # noqa: SIM105 - the pattern under test
        acts.greet("x")
    except BaseException:
        pass
    return "done"


def swallow_and_call() -> str:
    """Catches the suspension and makes another durable call."""
    try:  # noqa: SIM105 - the pattern under test
        acts.greet("x")
    except BaseException:
        pass
    return str(acts.shout("y"))


def swallow_in_branch() -> Any:
    """A branch of ``workflow.all`` that swallows its own suspension."""

    def branch() -> str:
        try:  # noqa: SIM105 - the pattern under test
            acts.greet("x")
        except BaseException:
            pass
        return "swallowed"

    return workflow.all(branch, lambda: acts.shout("y"))


def catch_nondeterminism() -> str:
    """Catching NonDeterminismError cannot save the activation."""
    try:
        return str(acts.greet("x"))
    except Exception:
        return "saved"


def four_nows() -> list[str]:
    """Four inline durable calls in one activation."""
    return [workflow.now().isoformat() for _ in range(4)]


def patched_greeting(name: str) -> str:
    """A change made while runs were in flight: new runs shout, old ones greet."""
    if workflow.patched("p"):
        return str(acts.shout(name))
    return str(acts.greet(name))


def deprecated_patch(name: str) -> str:
    """The old branch is gone; runs recorded with the marker still replay."""
    workflow.deprecate_patch("p")
    return str(acts.shout(name))


def patch_removed(name: str) -> str:
    """The patch call removed outright, too early for runs that recorded its marker."""
    return str(acts.shout(name))


def wait_any() -> list[Any]:
    """The first of two signals (a list, as JSON gives it back)."""
    return list(workflow.wait_for_any(["a", "b"]))


def cancel_with_cleanup(name: str) -> list[Any]:
    """A cancellation raised at a wait, cleaned up with an activity, then let out."""
    hello = acts.greet(name)
    try:
        return [hello, workflow.wait_for("approve")]
    except errors.CancelledError:
        acts.shout("cleanup")
        raise


def entity_then_activity() -> Any:
    """An inline entity command, then an activity."""
    workflow.entity().set({"n": 1})
    return acts.greet("x")


def count_up(n: int) -> Any:
    """One activity per run, then the next run with ``n + 1``."""
    acts.greet(str(n))
    workflow.continue_as_new(n + 1)


def run_marks() -> list[Any]:
    """What differs between runs of one workflow id: the run number and random()."""
    return [workflow.info().run_number, workflow.random()]


def suspension_into_cancel() -> None:
    """Turns the suspension of a new call into a CancelledError of its own."""
    try:
        acts.greet("x")
    except BaseException as exc:
        raise errors.CancelledError("aborted") from exc


WORKFLOWS = {fn.__name__: fn for fn in [
    suspension_into_cancel, straight_line, fallback_on_failure, branches, nested_branches,
    with_hook, entity_once,
    cleanup_in_finally, cleanup_in_except, swallow_and_return, swallow_and_call,
    swallow_in_branch, catch_nondeterminism, four_nows, patched_greeting, deprecated_patch,
    patch_removed, wait_any, cancel_with_cleanup, entity_then_activity, count_up, run_marks,
]}


# --- golden histories ---------------------------------------------------------------------

CASE_KEYS = {"about", "workflow", "args", "history", "signals", "limits", "pending_keys",
             "cancel", "run_number", "expect", "recorded", "calls", "swallowed"}
EXPECT_KEYS = {"result", "suspended", "error", "cancelled", "continued"}


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def load_case(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert set(case) <= CASE_KEYS, f"unknown keys {set(case) - CASE_KEYS}"
    assert {"about", "workflow", "history", "expect"} <= set(case)
    assert len(case["expect"]) == 1 and set(case["expect"]) <= EXPECT_KEYS
    return case


def history_of(rows: list[dict[str, Any]]) -> dict[str, StepRecord]:
    history: dict[str, StepRecord] = {}
    for row in rows:
        assert set(row) == {"key", "kind", "name", "result", "error"}, row
        assert row["key"] not in history, f"key {row['key']} recorded twice"
        history[row["key"]] = StepRecord(row["kind"], row["name"], row["result"], row["error"])
    return history


def check_recorded(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Key, kind and name of every recorded step; result and error where the file gives them."""
    assert [(r["key"], r["kind"], r["name"]) for r in actual] == [
        (e["key"], e["kind"], e["name"]) for e in expected]
    for got, want in zip(actual, expected, strict=True):
        for extra in ("result", "error"):
            if extra in want:
                assert got[extra] == want[extra], f"{extra} of step {want['key']}"


def check_pending(actual: list[Pending], expected: list[dict[str, Any]]) -> None:
    """Kind and key of each pending call, in order; payload entries where the file gives them."""
    assert [(p.kind, p.key) for p in actual] == [(e["kind"], e["key"]) for e in expected]
    for got, want in zip(actual, expected, strict=True):
        for name, value in want.get("payload", {}).items():
            assert got.payload[name] == value, f"payload {name!r} of {want['key']}"


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
def test_golden_history(path: Path) -> None:
    """One activation over a recorded history ends as the golden file says."""
    case = load_case(path)
    session = FakeSession(signals=dict(case.get("signals", {})),
                          pending_keys=set(case.get("pending_keys", [])))
    limits = ActivationLimits(**case["limits"]) if "limits" in case else None
    ctx = make_context(history_of(case["history"]), session, limits, case["workflow"],
                       run_number=case.get("run_number", 1), cancel=case.get("cancel"))

    outcome = activate(WORKFLOWS[case["workflow"]], ctx, list(case.get("args", [])))

    expect = case["expect"]
    if "result" in expect:
        assert outcome.status == "completed", outcome.error
        assert outcome.result == expect["result"]
    elif "suspended" in expect:
        assert outcome.status == "suspended", outcome.error
        check_pending(outcome.pending, expect["suspended"])
    elif "cancelled" in expect:
        assert outcome.status == "cancelled", outcome
        assert isinstance(outcome.error, errors.CancelledError)
        assert expect["cancelled"]["match"] in str(outcome.error)
    elif "continued" in expect:
        assert outcome.status == "continued", outcome
        assert outcome.next_args == expect["continued"]
    else:
        assert outcome.status == "failed", outcome
        assert type(outcome.error).__name__ == expect["error"]["type"]
        assert expect["error"]["match"] in str(outcome.error)
    check_recorded(session.recorded, case.get("recorded", []))
    assert session.calls == case.get("calls", [])
    assert (ctx.suspension is not None and outcome.status != "suspended") == case.get(
        "swallowed", False)


def test_every_workflow_has_a_golden_history() -> None:
    """No workflow here goes untested and no golden file names a missing one."""
    named = {load_case(path)["workflow"] for path in golden_files()}
    assert named == set(WORKFLOWS)


# --- what a golden file cannot say ----------------------------------------------------------


def test_finally_reraises_the_same_suspension() -> None:
    """The suspension a cleanup call raises is the body's own object, not a new one."""
    ctx = make_context({}, FakeSession())
    with pytest.raises(Suspension) as raised, activated(ctx):
        cleanup_in_finally()
    assert raised.value is ctx.suspension
    assert [(p.kind, p.key, p.payload["name"]) for p in raised.value.pending] == [
        ("activity", "0", "greet")]


def test_swallow_then_call_is_raised_at_the_call() -> None:
    """The second call itself raises NonDeterminismError, and the context keeps it."""
    ctx = make_context({}, FakeSession())
    with pytest.raises(errors.NonDeterminismError, match="caught the suspension"), \
            activated(ctx):
        swallow_and_call()
    assert ctx.suspension is not None
    assert isinstance(ctx.broken, errors.NonDeterminismError)


def test_replayed_calls_do_not_count_toward_the_step_limit() -> None:
    """Only new durable calls count: two replayed and two new pass a limit of three."""
    history = {str(i): StepRecord("now", "now", FIXED_NOW, None) for i in range(2)}
    session = FakeSession()
    ctx = make_context(history, session, ActivationLimits(max_steps=3))
    outcome = activate(four_nows, ctx, [])
    assert outcome.status == "completed", outcome.error
    assert ctx.new_calls == 2
    assert session.calls == ["now_iso", "now_iso"]


def test_time_limit_fails_the_next_new_call() -> None:
    """An activation past max_seconds fails at its next new durable call."""
    ctx = make_context({}, FakeSession(), ActivationLimits(max_seconds=5.0))
    ctx.started = time.monotonic() - 10.0
    outcome = activate(four_nows, ctx, [])
    assert isinstance(outcome.error, errors.ActivationLimitError)
    assert "ran longer than 5s" in str(outcome.error)


def test_replay_reports_is_replaying_until_history_is_used_up() -> None:
    """``info().is_replaying`` is true while recorded steps remain to be replayed."""
    seen: list[bool] = []

    def observe() -> None:
        seen.append(workflow.info().is_replaying)
        workflow.now()
        seen.append(workflow.info().is_replaying)
        workflow.now()
        seen.append(workflow.info().is_replaying)

    ctx = make_context({"0": StepRecord("now", "now", FIXED_NOW, None)}, FakeSession())
    assert activate(observe, ctx, []).status == "completed"
    assert seen == [True, False, False]


def test_random_and_uuid_repeat_on_replay() -> None:
    """random() and uuid4() give the same values in every activation of a run."""

    def draw() -> list[Any]:
        return [workflow.random(), workflow.uuid4(), workflow.random()]

    first = activate(draw, make_context({}, FakeSession()), [])
    second = activate(draw, make_context({}, FakeSession()), [])
    assert first.status == "completed" and first.result == second.result
    assert first.result[0] != first.result[2]


def test_random_differs_between_runs() -> None:
    """A later run of the same workflow id draws other random() values than the first."""
    first = activate(run_marks, make_context({}, FakeSession()), [])
    second = activate(run_marks, make_context({}, FakeSession(), run_number=2), [])
    assert first.status == second.status == "completed"
    assert first.result[0] == 1 and second.result[0] == 2
    assert first.result[1] != second.result[1]


def test_durable_calls_need_a_run() -> None:
    """Outside ``activated`` a durable call raises NotInWorkflowError."""
    with pytest.raises(errors.NotInWorkflowError):
        acts.greet("x")
