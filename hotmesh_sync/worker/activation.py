"""One activation of a run: replay its history, run its code, store the outcome.

Everything here happens inside the transaction that claimed the work, so the
steps recorded, the entity commands applied, the tasks scheduled and the
run's new status commit together or not at all.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .. import errors
from ..entity.execute import run_command
from ..jsonvalue import normalized
from ..log import get_logger
from ..payloads import decode_args, encode
from ..records import StepRecord, describe_error, interrupted_error, to_record
from ..retry import decide
from ..store.store import (
    TERMINAL,
    DatabaseError,
    JsonParam,
    LockedRun,
    Tx,
    continue_workflow,
    create_workflow,
    jsonb,
    start_hook_run,
)
from ..tracing import resumed, span
from ..workflow.context import HOOK_ERROR_KEY, ActivationLimits, RunContext, activated
from ..workflow.suspension import ContinueAsNew, Pending, Suspension
from .activity_table import ActivityTable
from .history_cache import HistoryCache

#: Seconds after which a worker that has not heartbeated counts as gone.
WORKER_STALE = 60.0

_log = get_logger("hotmesh_sync.worker")


@dataclass(frozen=True)
class LeasedActivity:
    """An activity task this worker holds the lease of and should run now."""

    task_id: int
    job_id: str
    run_id: str
    step_key: str
    payload: dict[str, Any]
    recovering: bool = False


@dataclass(frozen=True)
class Scheduler:
    """How an activation schedules the activities it suspends on.

    The first activity for this worker's own queue is leased to it in the
    same commit, so the worker runs it at once without another claim.
    """

    worker_id: str
    task_queue: str
    lease: float
    histories: HistoryCache = field(default_factory=HistoryCache)
    may_lease: Callable[[], bool] = lambda: True
    limits: ActivationLimits = field(default_factory=ActivationLimits)
    activities: ActivityTable = field(default_factory=lambda: ActivityTable({}))


class StepNotRecorded(Exception):
    """``record_and_activate(..., require_record=True)`` recorded nothing: the
    step was recorded already, or its task is gone (the workflow ended, or no
    longer waits for it). Raised so that the caller's transaction rolls back
    whatever was written with it (a transactional activity's writes)."""


class ActivationRolledBack(Exception):
    """Work done in an activation's transaction could not be recorded with its
    step; the whole transaction is rolled back (and the task set aside)."""


class ActivationSession:
    """The StepSession of one activation, over the claiming transaction."""

    def __init__(self, tx: Tx, run: LockedRun) -> None:
        self.tx = tx
        self.run = run
        self.top_seq = 0
        # Steps and entity versions are written together by flush(), in the
        # same transaction: one round trip each instead of one per call.
        self._steps: list[tuple[str, str, str, JsonParam, dict[str, Any] | None]] = []
        self._history: list[tuple[int, list[dict[str, Any]]]] = []

    def record(self, key: str, kind: str, name: str, result: Any,
               error: dict[str, Any] | None) -> None:
        # Serialized now, so what cannot be stored is refused at the call.
        self._steps.append((key, kind, name, jsonb(result, "a step result"), error))

    def entity_command(self, command: str, path: list[str] | None,
                       args: dict[str, Any]) -> Any:
        # A refused command (bad type, bad path) changes nothing and leaves
        # this transaction usable for recording the refusal.
        job_id = self.run.job_id
        return run_command(command, path, args,
                           read=lambda segments: self.tx.read_entity(job_id, segments),
                           write=lambda params: self.tx.apply_entity(job_id, params,
                                                                     self._history))

    def flush(self) -> None:
        """Write the steps and entity versions this activation produced."""
        if self._steps:
            seq = self.tx.insert_steps(self.run.job_id, self.run.run_id, self._steps)
            self.top_seq = max(self.top_seq, seq)
            self._steps.clear()
        if self._history:
            with resumed(self.run.trace_context), span(
                    "hotmesh.entity.commands", **{"hotmesh.workflow_id": self.run.job_id,
                                                  "hotmesh.versions": len(self._history)}):
                self.tx.insert_history_rows(self.run.job_id, self._history)
            self._history.clear()

    def take_signal(self, key: str, signal_ids: list[str]) -> tuple[str, Any] | None:
        self.tx.lock_job(self.run.job_id)
        found = self.tx.consume_signal(self.run.job_id, signal_ids)
        if found is not None:
            self.tx.delete_wait(self.run.job_id, self.run.run_id, key)
            self.tx.delete_step_task(self.run.job_id, self.run.run_id, key)
        return found

    def has_pending(self, key: str) -> bool:
        return self.tx.has_pending(self.run.job_id, self.run.run_id, key)

    def cancel_delivered(self) -> None:
        self.tx.cancel_delivered(self.run.job_id, self.run.run_id)

    def send_signal(self, job_id: str, signal_id: str, data: Any) -> int:
        if not self.tx.send_signal(job_id, signal_id, jsonb(data, "signal data")):
            raise errors.WorkflowNotFoundError(job_id)
        return 1

    def start_child(self, spec: dict[str, Any]) -> str:
        spec.setdefault("trace_context", self.run.trace_context)  # the parent's trace
        if not create_workflow(self.tx, spec):
            raise errors.DuplicateWorkflowError(spec["workflow_id"])
        _log.info("child_started", workflow_id=spec["workflow_id"], parent_id=self.run.job_id)
        return str(spec["workflow_id"])

    def start_hook(self, spec: dict[str, Any]) -> None:
        start_hook_run(self.tx, spec)

    def interrupt(self, job_id: str, reason: str | None, force: bool) -> None:
        self.tx.cancel(job_id, interrupted_error(reason), descend=False, force=force)

    def now_iso(self) -> str:
        return datetime.now(timezone.utc).isoformat()


def activate(tx: Tx, job_id: str, run_id: str, workflows: Mapping[str, Callable[..., Any]],
             scheduler: Scheduler, run: LockedRun | None = None,
             loaded: tuple[dict[str, StepRecord], int] | None = None) -> list[LeasedActivity]:
    """Run one activation; return the activities leased to this worker.

    ``loaded`` is the run's history and its seq mark when the caller has read
    them already (with the run locked).
    """
    run = run or tx.lock_run(job_id, run_id)
    if run is None or run.status in TERMINAL or run.job_status in ("failed", "interrupted"):
        return []
    fn = workflows.get(run.workflow_name)
    if fn is None:
        _not_registered(tx, run, scheduler)
        return []
    if run.waiting_for is not None and run_id == "":
        tx.set_waiting_for(job_id, None)
    cache_key = _cache_key(run)
    history: dict[str, StepRecord]
    if loaded is None and run.status == "pending":
        history, mark = {}, 0  # never activated: nothing can be recorded yet
    elif loaded is None:
        history, mark = scheduler.histories.get(cache_key)
        recorded, mark = tx.load_steps(job_id, run_id, mark)
        history.update(recorded)
    else:
        history, mark = loaded
    session = ActivationSession(tx, run)
    ctx = RunContext(job_id, run_id, run.workflow_name, run.task_queue, run.entity,
                     run.attempt, history, session, limits=scheduler.limits,
                     run_number=run.run_number,
                     cancel=run.cancel_error if _cancel_due(run) else None)
    # Cache what this activation knows once (and only if) its transaction commits.
    tx.after_commit.append(
        lambda: scheduler.histories.put(cache_key, ctx.history, max(mark, session.top_seq)))
    log = _log.bind(workflow_id=job_id, run_id=run_id, workflow_name=run.workflow_name)
    if run.status == "pending":
        tx.set_run_status(job_id, run_id, "running")  # the job's status follows the outcome
        log.info("workflow_started" if run_id == "" else "hook_started", attempt=run.attempt)
    try:
        with resumed(run.trace_context), span(
                "hotmesh.activation", **{"hotmesh.workflow_id": job_id,
                                         "hotmesh.run_id": run_id or None,
                                         "hotmesh.workflow_name": run.workflow_name,
                                         "hotmesh.attempt": run.attempt}), activated(ctx):
            args, kwargs = _typed_args(fn, run)
            result = fn(*args, **kwargs, **_signal_kwarg(fn, run))
    except Suspension as suspension:
        _check_poison(ctx)
        session.flush()
        if ctx.broken is None:
            return _suspend(tx, run, suspension.pending, scheduler, log)
        return _fail(tx, run, ctx.broken, log)
    except errors.CancelledError as cancelled:
        _check_poison(ctx)
        session.flush()
        broken = ctx.broken or _swallowed(ctx)  # raised in place of a caught suspension
        if broken is not None or run.run_id != "":
            return _fail(tx, run, broken or cancelled, log)
        return _cancelled(tx, run, cancelled, log)
    except ContinueAsNew as again:
        _check_poison(ctx)
        session.flush()
        if ctx.broken is not None:
            return _fail(tx, run, ctx.broken, log)
        continue_workflow(tx, run, again.args_for_next, uuid.uuid4().hex)
        log.info("workflow_continued_as_new", run_number=run.run_number + 1)
        return []
    except DatabaseError:
        # The database refused something (the transaction is now unusable):
        # not the workflow's failure. The claim rolls back and is set aside.
        raise
    except Exception as exc:  # the workflow's own failure
        _check_poison(ctx)
        session.flush()
        broken = ctx.broken or _swallowed(ctx)
        if broken is None and _cancel_cascade(run, exc):
            return _cancelled(tx, run, errors.CancelledError(str(exc)), log)
        return _fail(tx, run, broken or exc, log)
    _check_poison(ctx)
    session.flush()
    broken = ctx.broken or _swallowed(ctx)
    if broken is not None:
        return _fail(tx, run, broken, log)
    return _complete(tx, run, ctx, result, log)


#: Seconds before a worker looks again at work that no live worker can run
#: (a worker that registers its name makes it due at once when it starts).
UNSERVED_DELAY = 300.0
#: Seconds before another live worker that registers the name gets the work.
HANDOVER_DELAY = 0.5


def _not_registered(tx: Tx, run: LockedRun, scheduler: Scheduler) -> None:
    """A run whose workflow this worker does not register: hand it to a
    worker that does, or set it aside saying why (no retry loop)."""
    name, queue = run.workflow_name, run.task_queue
    if tx.live_worker_registers(queue, name, scheduler.worker_id, WORKER_STALE):
        tx.insert_run_task(queue, run.job_id, run.run_id, delay=HANDOVER_DELAY,
                           priority=run.priority)
        return
    reason = f"waiting for a worker that registers {name!r} on queue {queue!r}"
    if tx.set_waiting_for(run.job_id, reason):  # said once, not on every look
        _log.warning("workflow_not_registered", workflow_id=run.job_id,
                     workflow_name=name, task_queue=queue)
    tx.insert_run_task(queue, run.job_id, run.run_id, delay=UNSERVED_DELAY,
                       priority=run.priority)


def _typed_args(fn: Callable[..., Any], run: LockedRun) -> tuple[list[Any], dict[str, Any]]:
    """The run's stored args rebuilt from the function's hints; args that do
    not fit them fail the run (598): retrying cannot make them fit."""
    try:
        return decode_args(fn, run.args, {})
    except TypeError as exc:
        raise errors.FatalError(f"the arguments of {run.workflow_name!r} do not fit its "
                                f"type hints: {exc}", "TypeError") from None


def _cancel_due(run: LockedRun) -> bool:
    """Whether this activation raises a requested cancellation (coordinators only)."""
    return run.run_id == "" and run.cancel_state == "requested"


def _cancel_cascade(run: LockedRun, exc: Exception) -> bool:
    """A coordinator being cancelled that fails because a child it waited on
    was cancelled first (``descend``): the workflow ends cancelled, not failed."""
    return (run.run_id == "" and run.cancel_state is not None
            and isinstance(exc, errors.WorkflowInterruptedError))


def _cancelled(tx: Tx, run: LockedRun, exc: errors.CancelledError,
               log: Any) -> list[LeasedActivity]:
    """The coordinator let CancelledError out: the workflow ends interrupted (410)."""
    error = run.cancel_error or interrupted_error(exc.reason or exc.message)
    _end(tx, run, "interrupted", error)
    log.info("workflow_cancelled", reason=error.get("message"))
    return []


def _check_poison(ctx: RunContext) -> None:
    if ctx.poisoned is not None:
        raise ActivationRolledBack(
            f"a durable call of {ctx.workflow_name!r} failed after its work was done, "
            f"so the activation is rolled back: {describe_error(ctx.poisoned)}"
        ) from ctx.poisoned


def _swallowed(ctx: RunContext) -> errors.NonDeterminismError | None:
    """The error for a run that ended normally although a call had suspended it."""
    if ctx.suspension is None:
        return None
    return errors.NonDeterminismError(ctx.swallowed_message())


def _signal_kwarg(fn: Callable[..., Any], run: LockedRun) -> dict[str, Any]:
    """Pass ``signal=<id>`` to a hook that accepts it."""
    if run.signal_id is None:
        return {}
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    if any(p.name == "signal" or p.kind is p.VAR_KEYWORD for p in params):
        return {"signal": run.signal_id}
    return {}


def _suspend(tx: Tx, run: LockedRun, pending: list[Pending], scheduler: Scheduler,
             log: Any) -> list[LeasedActivity]:
    # Filled once the lease's insert is answered: at once, or (in a group
    # commit's pipeline) before the transaction commits.
    leased: list[LeasedActivity] = []
    offered = False
    busy = False
    for item in pending:
        if item.kind == "activity":
            busy = True
            if item.function is not None:
                scheduler.activities.learn(str(item.payload["ref"]), item.function)
            if run.trace_context:  # the attempt joins the workflow's trace
                item.payload["trace"] = run.trace_context
            queue = item.payload["task_queue"]
            mine = queue == scheduler.task_queue and not offered and scheduler.may_lease()
            offered = offered or mine

            def take(inserted: tuple[int, bool] | None, key: str = item.key,
                     payload: dict[str, Any] = item.payload) -> None:
                if inserted is not None and inserted[1]:
                    leased.append(LeasedActivity(inserted[0], run.job_id, run.run_id, key,
                                                 payload))

            tx.insert_step_task(
                kind="activity", task_queue=queue, job_id=run.job_id, run_id=run.run_id,
                step_key=item.key, payload=item.payload,
                leased_by=scheduler.worker_id if mine else None, lease=scheduler.lease,
                priority=run.priority, then=take if mine else None)
        elif item.kind == "sleep":
            seconds = float(item.payload["seconds"])
            tx.insert_step_task(kind="timer", task_queue=run.task_queue, job_id=run.job_id,
                                run_id=run.run_id, step_key=item.key,
                                payload={"sleep": seconds}, delay=seconds,
                                priority=run.priority)
        elif item.kind == "wait":
            many = "signal_ids" in item.payload  # wait_for_any
            for signal_id in item.payload.get("signal_ids") or [item.payload["signal_id"]]:
                tx.insert_wait(run.job_id, run.run_id, item.key, signal_id)
            timeout = item.payload.get("timeout")
            if timeout is not None:
                expiry = ({"wait_any": item.payload["name"]} if many
                          else {"wait": item.payload["signal_id"]})
                tx.insert_step_task(kind="timer", task_queue=run.task_queue,
                                    job_id=run.job_id, run_id=run.run_id, step_key=item.key,
                                    payload=expiry, delay=float(timeout),
                                    priority=run.priority)
    status = "running" if busy else "waiting"
    if run.run_id == "" and status != run.job_status:  # the lock's read saves a write
        tx.set_job_status(run.job_id, status)
    log.debug("workflow_suspended", pending=[f"{p.kind}@{p.key}" for p in pending])
    return leased


def _complete(tx: Tx, run: LockedRun, ctx: RunContext, result: Any,
              log: Any) -> list[LeasedActivity]:
    try:
        value = normalized(encode(result), "the workflow's return value")
    except (TypeError, ValueError) as exc:
        record = to_record(exc)
        return _fail(tx, run, errors.FatalError(record.message, record.error_type), log)
    tx.set_run_status(run.job_id, run.run_id, "completed", jsonb(value))
    if run.run_id == "":
        tx.finish_job(run.job_id, "completed", jsonb(value), None)
        if run.run_timeout is not None:
            tx.delete_deadline(run.job_id)
        if run.parent_id is not None and run.parent_step is not None:
            assert run.parent_run is not None
            tx.insert_child_result(run.parent_id, run.parent_run, run.parent_step, value, None)
        log.info("workflow_completed")
        return []
    if run.signal_id is not None and not _signalled(ctx, run.signal_id):
        tx.send_signal(run.job_id, run.signal_id, jsonb(value))
    log.info("hook_completed")
    return []


def _signalled(ctx: RunContext, signal_id: str) -> bool:
    return any(r.kind == "signal" and r.name == signal_id and r.error is None
               for r in ctx.history.values())


def failure_code(exc: BaseException) -> int:
    if isinstance(exc, (errors.FatalError, errors.NonDeterminismError,
                        errors.ActivationLimitError, errors.StoreError)):
        return errors.CODE_FATAL
    if isinstance(exc, errors.MaxedError) and exc.error_type == "TimeoutError":
        return errors.CODE_TIMEOUT
    return errors.CODE_MAXED


def _workflow_retry_delay(run: LockedRun, exc: BaseException) -> float | None:
    """Seconds until the workflow's next attempt, or None when it is not retried."""
    if run.run_id != "" or run.retry is None:
        return None
    return decide(run.retry, exc, run.attempt).delay


def _fail(tx: Tx, run: LockedRun, exc: BaseException, log: Any,
          code: int | None = None) -> list[LeasedActivity]:
    delay = None if code is not None else _workflow_retry_delay(run, exc)
    if delay is not None:
        tx.restart_job(run.job_id)
        tx.insert_run_task(run.task_queue, run.job_id, "", delay=delay, priority=run.priority)
        log.warning("workflow_retrying", attempt=run.attempt, delay=delay,
                    error=describe_error(exc))
        return []
    error = to_record(exc, as_type="WorkflowFailedError",
                      code=code if code is not None else failure_code(exc)).to_json()
    if run.run_id == "":
        _end(tx, run, "failed", error)
        log.warning("workflow_failed", code=error["code"], error_type=error["error_type"],
                    message=error["message"])
        return []
    tx.set_run_status(run.job_id, run.run_id, "failed", None, jsonb(error))
    if run.signal_id is not None:
        tx.send_signal(run.job_id, run.signal_id, jsonb({HOOK_ERROR_KEY: error}))
    log.warning("hook_failed", code=error["code"], error_type=error["error_type"],
                message=error["message"])
    return []


def _end(tx: Tx, run: LockedRun, status: str, error: dict[str, Any]) -> None:
    """End a workflow (its coordinator's run) ``failed`` or ``interrupted``:
    drop its work and tell its parent."""
    tx.set_run_status(run.job_id, run.run_id, status, None, jsonb(error))
    tx.finish_job(run.job_id, status, None, jsonb(error))
    tx.clear_job_work(run.job_id)
    if run.parent_id is not None and run.parent_step is not None:
        assert run.parent_run is not None
        tx.insert_child_result(run.parent_id, run.parent_run, run.parent_step, None,
                               {**error, "type": "WorkflowFailedError"})


def expire_run(tx: Tx, job_id: str, run_number: int, task_id: int) -> None:
    """A run's deadline came (``run_timeout``): fail it with 596 if it still goes."""
    tx.delete_task(task_id)
    run = tx.lock_run(job_id, "")
    if (run is None or run.status in TERMINAL or run.job_status in TERMINAL
            or run.run_number != run_number):
        return
    exc = TimeoutError("the workflow ran longer than its run_timeout")
    _fail(tx, run, exc, _log.bind(workflow_id=job_id), code=errors.CODE_TIMEOUT)


def record_and_activate(tx: Tx, job_id: str, run_id: str, step_key: str, record: StepRecord,
                        workflows: Mapping[str, Callable[..., Any]],
                        scheduler: Scheduler, task_id: int | None = None, *,
                        require_record: bool = False) -> list[LeasedActivity]:
    """Record a step performed by the worker (and drop its task), then re-run
    the run at once.

    Recording and the next activation share one commit: the hot path costs one
    commit per durable step. The run's lock is taken before the task row's,
    the order every transaction here follows. With ``require_record``, a step
    that is not recorded here raises ``StepNotRecorded`` instead of returning.
    """
    run = tx.lock_run(job_id, run_id)
    if run is None:
        if require_record:
            raise StepNotRecorded(f"workflow {job_id!r} no longer exists")
        if task_id is not None:
            tx.delete_task(task_id)
        return []
    if run.workflow_name not in workflows:
        # An activity run for another queue's workflow: only a worker that
        # registers the workflow may activate it. Record, and wake its own.
        if tx.record_step_and_load(job_id, run_id, step_key, record, task_id,
                                   1 << 62)[0] is not None:
            tx.wake_run(job_id, run_id)
        elif require_record:
            raise StepNotRecorded(_not_recorded(job_id, step_key))
        return []
    # One statement drops the task, records the step and reads whatever else
    # the run recorded since this worker last saw it.
    history, mark = scheduler.histories.get(_cache_key(run))
    seq, recorded, mark = tx.record_step_and_load(job_id, run_id, step_key, record,
                                                 task_id, mark)
    if seq is None:
        if require_record:
            raise StepNotRecorded(_not_recorded(job_id, step_key))
        return []  # recorded already (a duplicate delivery): nothing new to do
    history.update(recorded)
    history[step_key] = record
    return activate(tx, job_id, run_id, workflows, scheduler, run, (history, max(mark, seq)))


@dataclass(frozen=True)
class Finished:
    """A step the worker performed, to be recorded (``record_many``)."""

    job_id: str
    run_id: str
    step_key: str
    record: StepRecord
    task_id: int | None


def record_many(tx: Tx, finished: list[Finished], workflows: Mapping[str, Callable[..., Any]],
                scheduler: Scheduler) -> list[list[LeasedActivity]]:
    """``record_and_activate`` for several steps in one transaction (a group
    commit): the activities leased for each, in their order.

    The runs are locked in one statement, in key order, and the steps
    recorded and the runs' new steps read in the next. Steps of one run are
    recorded together and the run activated once, after all of them (the
    first of them gets what that activation leased).
    """
    peeked: dict[tuple[str, str], Any] = {}
    items = []
    for f in finished:
        run_key = (f.job_id, f.run_id)
        if run_key not in peeked:
            peeked[run_key] = scheduler.histories.peek(f.job_id, f.run_id)
        cached = peeked[run_key]
        items.append((f.job_id, f.run_id, f.step_key, f.record, f.task_id,
                      0 if cached is None else cached[2]))
    runs, recorded = tx.record_steps(items)
    leased: list[list[LeasedActivity]] = [[] for _ in finished]
    by_run: dict[tuple[str, str], list[int]] = {}
    for i, f in enumerate(finished):
        by_run.setdefault((f.job_id, f.run_id), []).append(i)
    for run_key in sorted(by_run):
        run = runs.get(run_key)
        done = [i for i in by_run[run_key] if recorded[i][0] is not None]
        if run is None or not done:
            continue  # gone, or recorded already: nothing new to do
        job_id, run_id = run_key
        if run.workflow_name not in workflows:
            # Another queue's workflow: only a worker that registers it activates it.
            tx.wake_run(job_id, run_id)
            continue
        cached = peeked[run_key]
        if cached is None or cached[0] == _cache_key(run):
            history, mark = ({}, 0) if cached is None else (cached[1], cached[2])
            for i in by_run[run_key]:
                history.update(recorded[i][1])
                mark = max(mark, recorded[i][2])
        else:  # cached under another key (retried, resumed): read it all
            history, mark = tx.load_steps(job_id, run_id, 0)
        for i in done:
            history[finished[i].step_key] = finished[i].record
            mark = max(mark, recorded[i][0] or 0)
        leased[done[0]] = activate(tx, job_id, run_id, workflows, scheduler, run,
                                   (history, mark))
    return leased


def _not_recorded(job_id: str, step_key: str) -> str:
    return (f"step {step_key} of workflow {job_id!r} was recorded already, or its "
            "workflow no longer waits for it")


def _cache_key(run: LockedRun) -> tuple[str, str, int, Any, int, int]:
    # A resumed run (handle.retry) had steps deleted: a cache of before is stale.
    return (run.job_id, run.run_id, run.attempt, run.created_at, run.run_number, run.resumed)


def fail_run(tx: Tx, job_id: str, run_id: str, exc: errors.HotMeshError,
             task_id: int | None = None) -> None:
    """Fail a run (and, for a coordinator, its workflow) with ``exc`` from
    outside any activation: a task that keeps failing in the database."""
    if task_id is not None:
        tx.delete_task(task_id)
    run = tx.lock_run(job_id, run_id)
    if run is None or run.status in TERMINAL or run.job_status in TERMINAL:
        return
    _fail(tx, run, exc, _log.bind(workflow_id=job_id, run_id=run_id))
