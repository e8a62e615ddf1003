"""Transactional activities (``workflow.transactional``): the function's
database writes and the record of its step commit in one transaction.

One attempt runs on one connection, in one transaction that the worker's
``TransactionRunner`` opens (a connection of the worker's pool by default;
Django's own connection inside ``atomic()`` under ``manage.py hotmesh_worker``):

1. look, through that connection, whether the task is still leased to this
   worker: a duplicate delivery stops here, and a runner whose connection
   reaches another database is told so;
2. call the function with the connection, inside a savepoint, its statements
   bounded by the call's ``timeout``;
3. record the step and activate the workflow (``record_and_activate``) in the
   same transaction; if the step was recorded already or its task is gone,
   the whole transaction rolls back, the function's writes with it;
4. commit.

A crash anywhere before the commit loses the writes and the step together;
the lease runs out and the task runs again. The writes commit once, with the
step, or not at all.

No lock is held while the function runs. The run's lock is taken in step 3,
as for any recorded activity: holding it through user code would stall the
run's other work (a parallel activity's result, a timer, an entity command)
for as long as the function runs, and would put the run's lock before the
rows the function locks, an order no other transaction follows. Without it
a second delivery (only once the lease ran out) may run the function at the
same time; step 3 makes the later of the two roll back.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from .. import errors
from ..activity import running
from ..jsonvalue import normalized
from ..payloads import decode_args, encode
from ..records import describe_error, error_message
from ..store.store import Conn, Store, TransactionRunner, Tx
from ..store.transactions import begin, pool_transactions, psycopg_connection, savepoint, shared_tx
from ..store.transient import call_with_retry
from .activation import LeasedActivity, Scheduler, StepNotRecorded, record_and_activate
from .activity_runner import call_with_timeout, success
from .attempt import StoredAttempt
from .quarantine import Quarantine


class Worker(Protocol):
    """What this module uses of ``worker.Worker`` (which imports it)."""

    transactions: TransactionRunner | None
    workflows: dict[str, Callable[..., Any]]
    worker_id: str
    lease: float
    _store: Store
    _scheduler: Scheduler
    _quarantine: Quarantine

    def _activity_failed(self, task: LeasedActivity, exc: Exception,
                         log: Any) -> list[LeasedActivity]: ...

    def _set_aside(self, task_id: int, exc: Exception) -> None: ...


class _FunctionFailed(Exception):
    """The activity's function raised (or returned what cannot be stored):
    its writes are rolled back and the failure goes to the retry policy."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(describe_error(cause))
        self.cause = cause


class _NotLeased(Exception):
    """The runner's connection does not see the task leased to this worker."""


def perform_transactional(worker: Worker, task: LeasedActivity, fn: Callable[..., Any],
                          log: Any) -> list[LeasedActivity]:
    """Run a leased transactional activity and record its outcome; return
    newly leased activities (as ``Worker._perform_activity`` does)."""
    try:
        args, kwargs = _arguments(fn, task.payload)
    except errors.FatalError as exc:
        worker._quarantine.finished(task)  # gives back a recovered task's hold
        return worker._activity_failed(task, exc, log)
    attempt = _Attempt(worker, task, fn, args, kwargs, log)
    runner = worker.transactions or pool_transactions(worker._store)
    try:
        with running(attempt.context):
            # A transient fault while recording (a deadlock, a lost connection,
            # even at commit) retries the whole transaction: the function's
            # writes went with it, so running it again is safe.
            leased = call_with_retry(lambda: runner(attempt.work))
    except (Exception, errors.CancelledError) as exc:
        attempt.finish()  # before the outcome is recorded, as for any activity
        return _not_committed(worker, task, exc, log)
    finally:
        attempt.finish()  # a no-op once done
    for callback in attempt.after_commit:
        callback()
    log.debug("activity_completed", transactional=True)
    return leased


def _not_committed(worker: Worker, task: LeasedActivity, exc: BaseException,
                   log: Any) -> list[LeasedActivity]:
    """What follows an attempt whose transaction rolled back."""
    if isinstance(exc, _FunctionFailed):
        return worker._activity_failed(task, exc.cause, log)
    if isinstance(exc, errors.CancelledError):
        # Its heartbeat found the workflow cancelled: its writes are rolled
        # back, and the coordinator's CancelledError drops this task.
        log.info("activity_cancelled", reason=exc.message)
        return []
    if isinstance(exc, StepNotRecorded):
        log.info("transactional_activity_not_recorded", reason=str(exc))
        return []
    if isinstance(exc, _NotLeased):
        return _not_leased(worker, task, log)
    if isinstance(exc, errors.ConfigurationError):
        # The runner cannot give a usable connection: retrying cannot fix it.
        log.error("transactional_activity_misconfigured", error=str(exc))
        return worker._activity_failed(
            task, errors.FatalError(str(exc), "ConfigurationError"), log)
    assert isinstance(exc, Exception)
    worker._set_aside(task.task_id, exc)  # recording failed in the database
    return []


def _arguments(fn: Callable[..., Any],
               payload: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The stored arguments rebuilt from the hints of every parameter but the
    first (the connection); FatalError when they do not fit."""
    without_conn = functools.partial(fn, None)
    try:
        args, kwargs = decode_args(without_conn, payload.get("args", []),
                                   payload.get("kwargs", {}))
        inspect.signature(fn).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise errors.FatalError(
            f"transactional activity {payload['name']!r} is called with a connection, "
            f"then its arguments: {error_message(exc)}", "TypeError") from None
    except ValueError:  # no signature to check against (some callables): call it
        pass
    return args, kwargs


class _Attempt:
    """One attempt's work inside the runner's transaction, and what it leaves."""

    def __init__(self, worker: Worker, task: LeasedActivity, fn: Callable[..., Any],
                 args: list[Any], kwargs: dict[str, Any], log: Any) -> None:
        self.worker = worker
        self.task = task
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.log = log
        self.context = StoredAttempt(worker._store, task, worker.worker_id, worker.lease)
        self.after_commit: list[Callable[[], None]] = []
        #: The task as the quarantine knows it while the function runs.
        self._running = task
        self._in_flight = False

    def work(self, connection: Conn) -> list[LeasedActivity]:
        """Steps 1 to 3 of the module's docstring; the runner commits."""
        conn = psycopg_connection(connection)
        begin(conn)
        store, task, worker = self.worker._store, self.task, self.worker
        with shared_tx(store, conn) as tx:
            if not _leased_to(tx, task, worker.worker_id):
                raise _NotLeased
        value = self._call(conn)
        with shared_tx(store, conn) as tx:
            leased = record_and_activate(
                tx, task.job_id, task.run_id, task.step_key,
                success(str(task.payload["name"]), value), worker.workflows,
                worker._scheduler, task.task_id, require_record=True)
            self.after_commit = tx.after_commit
        return leased

    def _call(self, conn: Conn) -> Any:
        """The function inside a savepoint: its result as stored JSON, or
        _FunctionFailed with its writes rolled back."""
        timeout = self.task.payload.get("timeout")
        self._started()
        try:
            began = time.monotonic()
            with savepoint(conn, timeout):
                value = call_with_timeout(self.fn, [conn, *self.args], self.kwargs, None)
                # Python cannot stop the function between statements (a thread
                # cannot share the connection): an attempt that returns after
                # its timeout has timed out, and its writes are rolled back.
                if timeout is not None and time.monotonic() - began > float(timeout):
                    raise TimeoutError(f"activity attempt exceeded its timeout of {timeout}s")
                return self._stored(value)
        except Exception as exc:  # whatever the function raised, stored by classify_failure
            raise _FunctionFailed(exc) from exc
        finally:
            self._stopped()

    def _stored(self, value: Any) -> Any:
        name = self.task.payload["name"]
        try:
            return normalized(encode(value), f"the result of activity {name!r}")
        except (TypeError, ValueError) as exc:
            raise errors.FatalError(error_message(exc), type(exc).__name__) from None

    def _started(self) -> None:
        self.worker._quarantine.started(self._running)
        self._in_flight = True

    def _stopped(self) -> None:
        """The function has ended: its lease needs no more extending (the
        heartbeat loop must not wait on the task row that recording locks),
        and details it heartbeated are written before the outcome is."""
        self._leave_quarantine()
        try:
            self.context.flush()
        except Exception as exc:  # the outcome still gets recorded
            self.log.warning("heartbeat_flush_failed", error=describe_error(exc))

    def _leave_quarantine(self) -> None:
        if self._in_flight:
            self._in_flight = False
            self.worker._quarantine.finished(self._running)
            # A recovered task's hold on the worker is given back once: a
            # transaction retried after a transient fault runs without it.
            self._running = replace(self._running, recovering=False)

    def finish(self) -> None:
        """The attempt is over: give back a recovered task's hold on the
        worker even if the function never ran (the runner failed first)."""
        if self._running.recovering:
            self._in_flight = True
        self._leave_quarantine()


def _leased_to(tx: Tx, task: LeasedActivity, worker_id: str) -> bool:
    """Whether ``task`` is still leased to ``worker_id``, as seen by ``tx``."""
    return tx.heartbeat(task.task_id, task.job_id, worker_id, 0.0, None, extend=False).alive


def _not_leased(worker: Worker, task: LeasedActivity, log: Any) -> list[LeasedActivity]:
    """The runner's connection did not see the task leased to this worker:
    a duplicate delivery, unless the worker's own pool sees it leased."""
    if not worker._store.run(lambda tx: _leased_to(tx, task, worker.worker_id)):
        log.info("transactional_activity_not_leased")
        return []
    error = errors.FatalError(
        "the connection this worker runs transactional activities on (its "
        "`transactions` runner) does not reach hotmesh_sync's database: a "
        "transactional activity must use the same database as hotmesh_sync",
        "ConfigurationError")
    log.error("transactional_activity_misconfigured", error=error.message)
    return worker._activity_failed(task, error, log)
