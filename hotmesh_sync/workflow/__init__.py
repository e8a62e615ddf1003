"""What workflow authors call: durable functions over the current run.

Every function here (but ``proxy_activities``) works only while a worker runs
a workflow or hook; elsewhere it raises ``errors.NotInWorkflowError``. A
durable call returns its recorded result when the run has one; otherwise it
either does its work at once inside the activation's transaction (entity
commands, signals, starting children and hooks) or raises ``Suspension`` so
the worker can perform it (activities, sleeps, waits, child results).
"""

from __future__ import annotations

import hashlib
import uuid as _uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from .. import errors
from ..durations import Duration, to_seconds
from ..entity import Entity
from ..jsonvalue import normalized
from ..names import check_name
from ..payloads import decode_result, encode, encode_args
from ..records import StepRecord, from_record, safe_text, to_record, workflow_failure
from ..retry import RetryPolicy
from .activities import ActivityProxy, proxy_activities
from .context import (
    HOOK_ERROR_KEY,
    PATCH_KIND,
    RunContext,
    RunInfo,
    current,
)
from .logger import logger
from .registry import name_of, transactional
from .suspension import ContinueAsNew, Pending, Suspension

__all__ = [
    "ActivityProxy", "RunInfo", "Suspension", "all", "continue_as_new", "deprecate_patch",
    "entity", "exec_child", "exec_hook", "exec_hook_batch", "hook", "info", "interrupt",
    "logger", "now", "patched", "proxy_activities", "random", "signal", "sleep_for",
    "start_child", "transactional", "uuid4", "wait_for", "wait_for_any",
]


def _replay(record: StepRecord) -> Any:
    if record.error is not None:
        raise from_record(record.error)
    return record.result


def _record(ctx: RunContext, key: str, kind: str, name: str, result: Any,
            error: dict[str, Any] | None = None) -> None:
    ctx.session.record(key, kind, name, result, error)
    ctx.remember(key, StepRecord(kind, name, result, error))


def _inline(ctx: RunContext, key: str, kind: str, name: str,
            action: Callable[[], Any]) -> Any:
    """Do a durable call's work now and record it in the same transaction.

    A library error (a taken child id, a bad entity path) is recorded too, so
    that every replay raises it again at the same position. Any other failure
    may have left the work done without its step (an UPDATE whose result
    cannot be recorded): the activation is poisoned, so its transaction rolls
    back whatever the workflow code does with the error.
    """
    try:
        result = action()
    except errors.HotMeshError as exc:
        _record(ctx, key, kind, name, None, to_record(exc).to_json())
        raise
    except BaseException as exc:
        ctx.poisoned = ctx.poisoned or exc
        raise
    try:
        _record(ctx, key, kind, name, result)
    except BaseException as exc:
        ctx.poisoned = ctx.poisoned or exc
        raise
    return result


def _derived_id(ctx: RunContext, key: str, prefix: str) -> str:
    text = f"{ctx.job_id}\x00{ctx.run_id}\x00{ctx.attempt}\x00{key}"
    if ctx.run_number > 1:  # a later run's children and hooks get ids of their own
        text += f"\x00run{ctx.run_number}"
    digest = hashlib.sha256(text.encode())
    # Cut a long prefix (a long parent id) so the id stays a valid name.
    return f"{prefix[:480]}{digest.hexdigest()[:20]}"


def sleep_for(duration: Duration) -> int:
    """Sleep durably; no thread waits meanwhile. Returns the seconds slept."""
    ctx = current()
    seconds = to_seconds(duration)
    key, record = ctx.step("sleep", "sleep")
    if record is not None:
        return int(_replay(record))
    ctx.suspend([Pending("sleep", key, {"seconds": seconds})])


def wait_for(signal_id: str, timeout: Duration | None = None) -> Any:
    """Wait for a signal sent to this workflow and return its data.

    A signal sent before this call is kept until it is consumed here. With a
    ``timeout`` that passes first, returns None (``wait_for_any`` tells a
    timeout from a signal that carried null).
    """
    ctx = current()
    check_name(signal_id, "signal id")
    seconds = None if timeout is None else to_seconds(timeout)
    key, record = ctx.step("wait", signal_id)
    if record is not None:
        return _replay(record)
    found = ctx.session.take_signal(key, [signal_id])
    if found is not None:
        _record(ctx, key, "wait", signal_id, found[1])
        return found[1]
    ctx.suspend([Pending("wait", key, {"signal_id": signal_id, "timeout": seconds})])


def wait_for_any(signal_ids: Sequence[str],
                 timeout: Duration | None = None) -> tuple[str | None, Any]:
    """Wait for the first of several signals; ``(signal_id, data)``, or
    ``(None, None)`` when ``timeout`` passes first.

    Signals kept for this workflow count too: the oldest of them is taken.
    """
    ctx = current()
    if isinstance(signal_ids, str) or not isinstance(signal_ids, Sequence):
        raise TypeError("signal_ids must be a list of signal ids")
    ids = list(dict.fromkeys(check_name(s, "signal id") for s in signal_ids))
    if not ids:
        raise ValueError("wait_for_any needs at least one signal id")
    seconds = None if timeout is None else to_seconds(timeout)
    name = "|".join(ids)
    key, record = ctx.step("wait_any", name)
    if record is not None:
        return _as_pair(_replay(record))
    found = ctx.session.take_signal(key, ids)
    if found is not None:
        _record(ctx, key, "wait_any", name, {"signal_id": found[0], "data": found[1]})
        return found
    ctx.suspend([Pending("wait", key, {"signal_ids": ids, "timeout": seconds,
                                       "name": name})])


def _as_pair(value: Any) -> tuple[str | None, Any]:
    """A recorded wait_for_any result: None is a timeout."""
    if value is None:
        return None, None
    return str(value["signal_id"]), value["data"]


def patched(patch_id: str) -> bool:
    """Whether this run takes the new branch of a change made while runs were
    in flight.

    True in a run that reaches this point under code that has the patch (a
    marker is recorded); False when replaying a run that passed this point
    before the patch existed (nothing is recorded, nothing shifts).
    """
    ctx = current()
    check_name(patch_id, "patch id")
    key = ctx.peek_key()
    record = ctx.history.get(key)
    if record is not None:
        if record.kind == PATCH_KIND and record.name == patch_id:
            ctx.take_key(key)
            return True
        return False  # recorded by the old code: another call stands here
    if ctx.session.has_pending(key):
        return False  # the old code is waiting on a call at this very position
    key, _ = ctx.step(PATCH_KIND, patch_id)
    _record(ctx, key, PATCH_KIND, patch_id, True)
    return True


def deprecate_patch(patch_id: str) -> None:
    """The patch's old branch is gone: runs recorded with its marker still
    replay (the marker is passed over); new runs record nothing here."""
    ctx = current()
    check_name(patch_id, "patch id")
    key = ctx.peek_key()
    record = ctx.history.get(key)
    if record is not None and record.kind == PATCH_KIND and record.name == patch_id:
        ctx.take_key(key)


def continue_as_new(*args: Any) -> NoReturn:
    """End this run and start a fresh run of the same workflow id with ``args``.

    The new run's history starts empty; the entity document is kept. Only a
    workflow's coordinator may continue as new (not a hook).
    """
    ctx = current()
    if ctx.is_hook:
        raise errors.NotInWorkflowError(
            "continue_as_new ends a workflow's run: call it in the coordinator, not in a hook")
    if ctx.suspension is not None:
        ctx.peek_key()  # in cleanup after a suspension: re-raise it (see RunContext)
    raise ContinueAsNew(normalized(encode_args(args), "continue_as_new args"))


def signal(signal_id: str, data: Any = None) -> None:
    """Send a signal to waiters in this workflow (the coordinator or a hook)."""
    ctx = current()
    check_name(signal_id, "signal id")
    value = normalized(encode(data), "signal data")
    key, record = ctx.step("signal", signal_id)
    if record is not None:
        _replay(record)
        return

    def send() -> None:
        ctx.session.send_signal(ctx.job_id, signal_id, value)

    _inline(ctx, key, "signal", signal_id, send)


def _child_spec(ctx: RunContext, key: str, workflow_name: str | Callable[..., Any],
                args: Sequence[Any] | None, task_queue: str | None,
                workflow_id: str | None, entity: str | None,
                retry: RetryPolicy | None, search: Mapping[str, Any] | None,
                parent_step: str | None) -> dict[str, Any]:
    name = name_of(workflow_name)
    return {
        "workflow_id": workflow_id or _derived_id(ctx, key, f"{ctx.job_id}-"),
        "workflow_name": name,
        "args": normalized(encode_args(args or []), "child workflow args"),
        "task_queue": task_queue or ctx.task_queue,
        "entity": entity,
        "retry": None if retry is None else retry.to_json(),
        "search": normalized(dict(search or {}), "search"),
        "parent_id": ctx.job_id,
        "parent_run": ctx.run_id,
        "parent_step": parent_step,
    }


def start_child(workflow_name: str | Callable[..., Any], args: Sequence[Any] | None = None,
                task_queue: str | None = None, workflow_id: str | None = None,
                entity: str | None = None, retry: RetryPolicy | None = None,
                search: Mapping[str, Any] | None = None) -> str:
    """Start a child workflow and return its id without waiting for it."""
    ctx = current()
    _check_child(workflow_name, task_queue, workflow_id, entity)
    key, record = ctx.step("child_start", name_of(workflow_name))
    if record is not None:
        return str(_replay(record))
    spec = _child_spec(ctx, key, workflow_name, args, task_queue, workflow_id, entity,
                       retry, search, None)
    return str(_inline(ctx, key, "child_start", spec["workflow_name"],
                       lambda: ctx.session.start_child(spec)))


def exec_child(workflow_name: str | Callable[..., Any], args: Sequence[Any] | None = None,
               task_queue: str | None = None, workflow_id: str | None = None,
               entity: str | None = None, retry: RetryPolicy | None = None,
               search: Mapping[str, Any] | None = None) -> Any:
    """Run a child workflow and return its result (WorkflowFailedError if it fails)."""
    ctx = current()
    name = _check_child(workflow_name, task_queue, workflow_id, entity)
    start_key, started = ctx.step("child_start", name)
    result_key, finished = ctx.step("child_result", "child")
    if started is None:
        spec = _child_spec(ctx, start_key, workflow_name, args, task_queue, workflow_id,
                           entity, retry, search, result_key)
        _inline(ctx, start_key, "child_start", name, lambda: ctx.session.start_child(spec))
    else:
        _replay(started)
    if finished is not None:
        # Rebuilt from the child function's return hint when it was passed itself.
        fn = workflow_name if callable(workflow_name) else None
        return decode_result(fn, _replay(finished))
    ctx.suspend([Pending("child", result_key, {})])


def _start_hook(ctx: RunContext, workflow_name: str | Callable[..., Any],
                args: Sequence[Any] | None, task_queue: str | None,
                workflow_id: str | None, signal_id: str | None,
                awaited: bool) -> tuple[str, str | None]:
    """Start a hook run (an inline step); return (hook run id, signal id).

    An awaited hook without a signal id signals ``<hook run id>-done``.
    """
    name = check_name(name_of(workflow_name), "hook workflow_name")
    if task_queue is not None:
        check_name(task_queue, "task_queue")
    if workflow_id is not None:
        check_name(workflow_id, "workflow_id")
    if signal_id is not None:
        check_name(signal_id, "signal id")
    key, record = ctx.step("hook", name)
    if record is not None:
        started = _replay(record)
        return str(started["run_id"]), started.get("signal_id")
    run_id = _derived_id(ctx, key, "hook-")
    if awaited and signal_id is None:
        signal_id = f"{run_id}-done"
    spec = {
        "job_id": workflow_id or ctx.job_id,
        "run_id": run_id,
        "workflow_name": name,
        "args": normalized(encode_args(args or []), "hook args"),
        "task_queue": task_queue or ctx.task_queue,
        "signal_id": signal_id,
    }

    def start() -> dict[str, Any]:
        ctx.session.start_hook(spec)
        return {"run_id": run_id, "signal_id": signal_id}

    _inline(ctx, key, "hook", name, start)
    return run_id, signal_id


def hook(workflow_name: str | Callable[..., Any], args: Sequence[Any] | None = None,
         task_queue: str | None = None, workflow_id: str | None = None) -> str:
    """Start a hook against this (or another) workflow; do not wait. Returns its run id."""
    ctx = current()
    run_id, _ = _start_hook(ctx, workflow_name, args, task_queue, workflow_id, None, False)
    return run_id


def _hook_result(data: Any) -> Any:
    if isinstance(data, dict) and HOOK_ERROR_KEY in data:
        raise workflow_failure(data[HOOK_ERROR_KEY], None)
    return data


def exec_hook(workflow_name: str | Callable[..., Any], args: Sequence[Any] | None = None,
              task_queue: str | None = None, signal_id: str | None = None) -> Any:
    """Run a hook against this workflow and wait for its signal; return the signal's data.

    The hook gets ``signal=<signal id>`` when it accepts it; if it returns
    without sending that signal, its return value is sent as the signal.
    """
    ctx = current()
    _, sig = _start_hook(ctx, workflow_name, args, task_queue, None, signal_id, True)
    assert sig is not None
    return _hook_result(wait_for(sig))


def exec_hook_batch(hooks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Run many hooks in parallel; return {key: signal data} once all have signalled."""
    ctx = current()
    started: list[tuple[str, str]] = []
    for spec in hooks:
        key = str(spec["key"])
        _, sig = _start_hook(ctx, spec["workflow_name"], spec.get("args"),
                             spec.get("task_queue"), None, spec.get("signal_id"), True)
        assert sig is not None
        started.append((key, sig))
    results = all(*[(lambda s=sig: _hook_result(wait_for(s))) for _, sig in started])
    return {key: value for (key, _), value in zip(started, results, strict=True)}


def all(*branches: Callable[[], Any]) -> list[Any]:  # noqa: A001 - the API's name
    """Run branches in parallel; return their results in order.

    Each branch may make any number of durable calls; they are keyed under
    the branch, so replays match whatever order results arrive in.
    """
    ctx = current()
    key = ctx.next_key()
    results: list[Any] = []
    pending: list[Pending] = []
    for index, branch in enumerate(branches):
        with ctx.branch(f"{key}.{index}"):
            try:
                results.append(branch())
            except Suspension as suspension:
                pending.extend(suspension.pending)
                results.append(None)
            except BaseException:
                if ctx.suspension is not None:  # swallowed, then replaced by another error
                    ctx.fail(errors.NonDeterminismError(ctx.swallowed_message()))
                raise
            else:
                if ctx.suspension is not None:  # the branch swallowed its suspension
                    ctx.fail(errors.NonDeterminismError(ctx.swallowed_message()))
            finally:
                # Each branch may suspend on its own calls; the next one runs regardless.
                ctx.suspension = None
    if pending:
        ctx.suspend(pending)
    return results


def entity() -> Entity:
    """The entity (durable JSON document) of this workflow."""
    ctx = current()

    def execute(command: str, path: list[str] | None, args: dict[str, Any]) -> Any:
        run = current()
        key, record = run.step("entity", command)
        if record is not None:
            return _replay(record)
        return _inline(run, key, "entity", command,
                       lambda: run.session.entity_command(command, path, args))

    return Entity(ctx.job_id, execute)


def now() -> datetime:
    """The current time, recorded, so replays see the same value (UTC, aware)."""
    ctx = current()
    key, record = ctx.step("now", "now")
    if record is not None:
        return datetime.fromisoformat(str(_replay(record)))
    return datetime.fromisoformat(str(_inline(ctx, key, "now", "now", ctx.session.now_iso)))


def random() -> float:
    """A float in [0, 1), the same on every replay of this run."""
    seed = current().seed("random")
    return int.from_bytes(seed[:8], "big") / 2**64


def uuid4() -> str:
    """A random-looking UUID (version 4), the same on every replay of this run."""
    seed = current().seed("uuid")
    return str(_uuid.UUID(bytes=seed[:16], version=4))


def info() -> RunInfo:
    """Who and where this run is: workflow id, name, queue, entity, replaying, attempt, hook."""
    return current().info()


def interrupt(workflow_id: str, reason: str | None = None, force: bool = False) -> None:
    """Interrupt (cancel) another workflow: its coordinator gets CancelledError
    and may clean up; ``force`` ends it at once without cleanup."""
    ctx = current()
    check_name(workflow_id, "workflow_id")
    if reason is not None:
        reason = safe_text(str(reason))
    key, record = ctx.step("interrupt", workflow_id)
    if record is not None:
        _replay(record)
        return
    _inline(ctx, key, "interrupt", workflow_id,
            lambda: ctx.session.interrupt(workflow_id, reason, force))


def _check_child(workflow_name: str | Callable[..., Any], task_queue: str | None,
                 workflow_id: str | None, entity: str | None) -> str:
    """Check a child's names before it takes a position; its workflow name."""
    name = check_name(name_of(workflow_name), "child workflow_name")
    for value, what in ((task_queue, "task_queue"), (workflow_id, "workflow_id"),
                        (entity, "entity")):
        if value is not None:
            check_name(value, what)
    return name
