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
from typing import Any

from .. import errors
from ..durations import Duration, to_seconds
from ..entity import Entity
from ..jsonvalue import normalized
from ..names import check_name
from ..records import StepRecord, from_record, safe_text, to_record, workflow_failure
from ..retry import RetryPolicy
from .activities import ActivityProxy, proxy_activities
from .context import (
    HOOK_ERROR_KEY,
    RunContext,
    RunInfo,
    current,
)
from .registry import name_of
from .suspension import Pending, Suspension

__all__ = [
    "ActivityProxy", "RunInfo", "Suspension", "all", "entity", "exec_child", "exec_hook",
    "exec_hook_batch", "hook", "info", "interrupt", "now", "proxy_activities", "random",
    "signal", "sleep_for", "start_child", "uuid4", "wait_for",
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
    digest = hashlib.sha256(f"{ctx.job_id}\x00{ctx.run_id}\x00{ctx.attempt}\x00{key}".encode())
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
    ``timeout`` that passes first, returns None.
    """
    ctx = current()
    check_name(signal_id, "signal id")
    seconds = None if timeout is None else to_seconds(timeout)
    key, record = ctx.step("wait", signal_id)
    if record is not None:
        return _replay(record)
    found, data = ctx.session.take_signal(key, signal_id)
    if found:
        _record(ctx, key, "wait", signal_id, data)
        return data
    ctx.suspend([Pending("wait", key, {"signal_id": signal_id, "timeout": seconds})])


def signal(signal_id: str, data: Any = None) -> None:
    """Send a signal to waiters in this workflow (the coordinator or a hook)."""
    ctx = current()
    check_name(signal_id, "signal id")
    value = normalized(data, "signal data")
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
        "args": normalized(list(args or []), "child workflow args"),
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
        return _replay(finished)
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
        "args": normalized(list(args or []), "hook args"),
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


def interrupt(workflow_id: str, reason: str | None = None) -> None:
    """Interrupt (cancel) another workflow."""
    ctx = current()
    check_name(workflow_id, "workflow_id")
    if reason is not None:
        reason = safe_text(str(reason))
    key, record = ctx.step("interrupt", workflow_id)
    if record is not None:
        _replay(record)
        return
    _inline(ctx, key, "interrupt", workflow_id,
            lambda: ctx.session.interrupt(workflow_id, reason))


def _check_child(workflow_name: str | Callable[..., Any], task_queue: str | None,
                 workflow_id: str | None, entity: str | None) -> str:
    """Check a child's names before it takes a position; its workflow name."""
    name = check_name(name_of(workflow_name), "child workflow_name")
    for value, what in ((task_queue, "task_queue"), (workflow_id, "workflow_id"),
                        (entity, "entity")):
        if value is not None:
            check_name(value, what)
    return name
