"""The Store: a pool of connections and typed operations over the named queries.

``Store.transaction()`` yields a ``Tx`` whose methods each run one or two named
queries in the caller's transaction; nothing here decides workflow semantics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ..errors import WorkflowNotFoundError
from ..jsonvalue import dumps
from ..records import StepRecord
from . import local
from .entity_ops import apply_compiled, history, read_document
from .queries import Queries
from .transient import call_with_retry

T = TypeVar("T")
R = TypeVar("R")
#: Whatever the database raises: an activation lets these through (its
#: transaction is unusable), unlike the workflow's own errors.
DatabaseError = psycopg.Error
Conn = psycopg.Connection[Any]


#: A JSON value ready to be sent as a jsonb parameter (what ``jsonb`` returns).
JsonParam = Jsonb


class TransactionRunner(Protocol):
    """Runs ``work`` inside a database transaction it opens on a connection to
    the app's database, and returns what ``work`` returns; the transaction
    commits when ``work`` returns and rolls back when it raises.

    A transactional activity (``workflow.transactional``) runs in one, with
    the record of its step: the default opens it on the worker's pool; the
    Django integration uses Django's own connection inside ``atomic()``.
    """

    def __call__(self, work: Callable[[Conn], T]) -> T: ...


def jsonb(value: Any, what: str = "value") -> Jsonb:
    """A jsonb parameter, validated (TypeError, size) before anything is sent."""
    return Jsonb(dumps(value, what), dumps=_already_text)


def _already_text(text: Any) -> str:
    return str(text)


def _text(param: Jsonb | None) -> str | None:
    """The JSON text of a jsonb parameter (None: SQL NULL)."""
    if param is None:
        return None
    if param.dumps is _already_text:  # made by jsonb(): the text itself
        return str(param.obj)
    return json.dumps(param.obj)


@dataclass(frozen=True)
class LockedRun:
    """A run whose row lock the current transaction holds."""

    job_id: str
    run_id: str
    workflow_name: str
    task_queue: str
    args: list[Any]
    status: str
    signal_id: str | None
    job_status: str
    entity: str | None
    attempt: int
    retry: dict[str, Any] | None
    parent_id: str | None
    parent_run: str | None
    parent_step: str | None
    created_at: Any = None
    #: The workflow's current run (API.md §11): its number and id.
    run_number: int = 1
    workflow_run_id: str = ""
    #: None, 'requested' (CancelledError not raised yet) or 'delivered'.
    cancel_state: str | None = None
    cancel_error: dict[str, Any] | None = None
    run_timeout: float | None = None
    priority: int = 0
    #: How often handle.retry() resumed the workflow.
    resumed: int = 0
    #: Why it waited last: no live worker of its queue registered its name.
    waiting_for: str | None = None
    #: The trace context of the span that started the workflow (OpenTelemetry).
    trace_context: dict[str, str] | None = None


TERMINAL = ("completed", "failed", "interrupted")
_RUN_FIELDS = frozenset(LockedRun.__dataclass_fields__)


@dataclass(frozen=True)
class ClaimedTask:
    """A task the claiming transaction holds the row lock of."""

    id: int
    kind: str
    job_id: str
    run_id: str
    step_key: str | None
    payload: dict[str, Any]
    claims: int
    #: Whether other tasks of the queue were ready too (wake another thread).
    more: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedTask:
        return cls(**row)


@dataclass(frozen=True)
class LimitedClaim:
    """What the limited claim of a queue with flow control found."""

    #: The activity leased to the claiming worker, if one was.
    task: ClaimedTask | None
    #: None leased: seconds until trying again may succeed (0: nothing was
    #: due; None: the concurrency limit holds it back until a slot frees).
    wait: float | None


@dataclass(frozen=True)
class Beat:
    """What an activity's heartbeat found: whether its task is still its own,
    and the state of its workflow."""

    alive: bool
    status: str | None
    cancel_state: str | None
    cancel_error: dict[str, Any] | None


@dataclass(frozen=True)
class FailedTask:
    """A task whose processing failed once more inside PostgreSQL."""

    failures: int
    kind: str
    job_id: str
    run_id: str
    step_key: str | None


#: What an insert_step_task answers: (task id, leased to the inserter), or
#: None when the step had a task already.
Inserted = Callable[[tuple[int, bool] | None], None]


class _Writes:
    """Writes a group commit's activations make, kept to be sent together:
    one statement per kind (``Tx.flush``). A second write of the same run or
    job flushes the first, so each statement touches a row once."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.job_statuses: dict[str, str] = {}
        self.finished: dict[str, dict[str, Any]] = {}
        self.tasks: list[tuple[dict[str, Any], Inserted | None]] = []

    def __bool__(self) -> bool:
        return bool(self.runs or self.job_statuses or self.finished or self.tasks)


class Tx:
    """Operations inside one open transaction."""

    def __init__(self, conn: Conn, queries: Queries, buffered: bool = False) -> None:
        self._raw = conn
        self._q = queries
        #: Run once the transaction has committed (never on rollback).
        self.after_commit: list[Callable[[], None]] = []
        #: Values a caller prepared for a later step of the same transaction
        #: (a group commit's claim locks the runs of its tasks in one statement).
        self.prepared: dict[Any, Any] = {}
        #: ``buffered``: the writes of activations (statuses, step tasks) wait
        #: and go together, one statement per kind, before anything is read.
        self._writes = _Writes() if buffered else None

    @property
    def _conn(self) -> Conn:
        """The connection, for a statement: kept writes go first."""
        if self._writes:
            self.flush()
        return self._raw

    def _sql(self, name: str) -> bytes:
        """The named query, ready to execute on this transaction's connection."""
        return self._q.text(name, self._raw)

    def _one(self, name: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        return self._conn.execute(self._sql(name), params).fetchone()

    def _one_as(self, cls: type[R], name: str, params: dict[str, Any]) -> R | None:
        """The first row of a query as ``cls``, built from its named columns."""
        with self._conn.cursor(row_factory=class_row(cls)) as cur:
            cur.execute(self._sql(name), params)
            return cur.fetchone()

    def _run(self, name: str, params: dict[str, Any]) -> int:
        """Execute; the number of rows it changed."""
        return self._conn.execute(self._sql(name), params).rowcount

    def _send(self, name: str, params: dict[str, Any]) -> None:
        """Execute a statement whose answer nobody reads."""
        self._conn.execute(self._sql(name), params)

    def flush(self) -> None:
        """Send the kept writes (``buffered``), one statement per kind."""
        writes = self._writes
        if not writes:
            return
        self._writes = _Writes()
        document = {
            "runs": [[r["job_id"], r["run_id"], r["status"], _text(r["result"]),
                      _text(r["error"])] for r in writes.runs.values()],
            "statuses": list(writes.job_statuses.items()),
            "finished": [[r["id"], r["status"], _text(r["result"]), _text(r["error"])]
                         for r in writes.finished.values()],
            "tasks": [[t["kind"], t["task_queue"], t["job_id"], t["run_id"], t["step_key"],
                       t["payload"], t["delay"], t["leased_by"], t["lease"], t["priority"]]
                      for t, _ in writes.tasks],
        }
        cur = self._raw.execute(self._sql("apply_writes"),
                                dict(writes=json.dumps(document, separators=(",", ":"))))
        found = {(row[2], row[3], row[4]): (int(row[0]), bool(row[1])) for row in cur.fetchall()}
        for task, then in writes.tasks:
            if then is not None:
                then(found.get((task["job_id"], task["run_id"], task["step_key"])))

    # --- jobs and runs -------------------------------------------------
    def insert_job(self, **fields: Any) -> bool:
        """Insert a job row; False when the id is taken."""
        return self._one("insert_job", fields) is not None

    def start_workflow(self, **fields: Any) -> bool:
        """A workflow's rows in one statement (``start_workflow`` in schema.sql);
        False when the id is taken."""
        row = self._one("start_workflow", fields)
        return bool(row and row[0])

    def insert_run(
        self, job_id: str, run_id: str, workflow_name: str, task_queue: str,
        args: Any, signal_id: str | None = None,
    ) -> bool:
        params = dict(job_id=job_id, run_id=run_id, workflow_name=workflow_name,
                      task_queue=task_queue, args=args, signal_id=signal_id)
        return self._one("insert_run", params) is not None

    def insert_history(self, job_id: str, version: int, patch: list[Any]) -> None:
        self._send("insert_history", dict(job_id=job_id, version=version, patch=jsonb(patch)))

    def lock_run(self, job_id: str, run_id: str) -> LockedRun | None:
        return self._one_as(LockedRun, "lock_run", dict(job_id=job_id, run_id=run_id))

    def job_status(self, job_id: str) -> str | None:
        row = self._one("job_exists", dict(id=job_id))
        return None if row is None else str(row[0])

    def set_run_status(self, job_id: str, run_id: str, status: str,
                       result: Any = None, error: Any = None) -> None:
        params = dict(job_id=job_id, run_id=run_id, status=status, result=result, error=error)
        if self._writes is None:
            return self._send("set_run_status", params)
        if (job_id, run_id) in self._writes.runs:
            self.flush()
        self._writes.runs[(job_id, run_id)] = params

    def set_job_status(self, job_id: str, status: str) -> None:
        if self._writes is None:
            return self._send("set_job_status", dict(id=job_id, status=status))
        if job_id in self._writes.job_statuses or job_id in self._writes.finished:
            self.flush()
        self._writes.job_statuses[job_id] = status

    def finish_job(self, job_id: str, status: str, result: Any, error: Any) -> None:
        """End a job (``status`` is terminal); once committed, handles waiting
        for it in this process wake at once (besides the NOTIFY)."""
        schema = self._q.schema
        self.after_commit.append(lambda: local.announce_done(schema, job_id))
        params = dict(id=job_id, status=status, result=result, error=error)
        if self._writes is None:
            return self._send("finish_job", params)
        if job_id in self._writes.job_statuses or job_id in self._writes.finished:
            self.flush()
        self._writes.finished[job_id] = params

    def restart_job(self, job_id: str) -> None:
        self._run("restart_job", dict(id=job_id))

    def job_error(self, job_id: str) -> Any:
        """The stored error of a job (None when it has none)."""
        row = self._one("get_job_outcome", dict(id=job_id))
        return None if row is None else row[2]

    def lock_job_row(self, job_id: str) -> dict[str, Any] | None:
        """Lock a job's row; its status and start options, None if unknown."""
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("lock_job_row"), dict(id=job_id))
            return cur.fetchone()

    def archive_run(self, job_id: str, status: str, reason: str | None) -> None:
        """Keep the current run of a job as ended (``status``) and drop its work."""
        self._run("archive_run", dict(id=job_id, status=status, reason=reason))

    def begin_run(self, job_id: str, *, run_id: str, workflow_name: str, task_queue: str,
                  args: Any, retry: Any, run_timeout: float | None,
                  expire_seconds: float | None, entity: str | None = None) -> None:
        """Make the job's row the next run, and queue its first activation
        (``entity``: a new label, None keeps it)."""
        self._run("begin_run", dict(
            id=job_id, run_id=run_id, workflow_name=workflow_name, task_queue=task_queue,
            args=args, retry=retry, run_timeout=run_timeout, expire_seconds=expire_seconds,
            entity=entity))
        self.insert_run_task(task_queue, job_id, "")
        self.insert_deadline_task(job_id)

    def merge_search(self, job_id: str, search: dict[str, Any]) -> None:
        self._run("merge_search", dict(id=job_id, search=jsonb(search, "search")))

    def delete_deadline(self, job_id: str) -> None:
        self._send("delete_deadline", dict(id=job_id))

    def insert_deadline_task(self, job_id: str) -> None:
        """Queue the run's 596 deadline, when the job has a run_timeout."""
        self._send("insert_deadline_task", dict(id=job_id))

    # --- tasks ---------------------------------------------------------
    def claim_task(self, task_queue: str, activities: bool,
                   recoveries: bool) -> ClaimedTask | None:
        """Lock the next due task of ``task_queue`` (SKIP LOCKED); None if none."""
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("claim_task"), dict(
                task_queue=task_queue, activities=activities, recoveries=recoveries))
            row = cur.fetchone()
        return None if row is None else ClaimedTask.from_row(row)

    def next_due(self, task_queue: str) -> float | None:
        """Seconds until the queue's next task is due (negative: overdue)."""
        row = self._one("next_due", dict(task_queue=task_queue))
        return None if row is None or row[0] is None else float(row[0])

    def take_run_tasks(self, job_id: str, run_id: str, task_id: int) -> None:
        """Drop the claimed run task and the run's other due activations."""
        self._send("take_run_tasks", dict(job_id=job_id, run_id=run_id, id=task_id))

    def postpone_task(self, task_id: int, delay: float) -> None:
        self._run("postpone_task", dict(id=task_id, delay=delay))

    def lease_task(self, task_id: int, worker: str, lease: float) -> int | None:
        """Lease an activity task to ``worker``; its claim count, None if gone."""
        row = self._one("lease_task", dict(id=task_id, worker=worker, lease=lease))
        return None if row is None else int(row[0])

    def retry_task(self, task_id: int, delay: float, payload: dict[str, Any],
                   task_queue: str) -> None:
        """Give an activity task back for its next attempt, and announce it."""
        self._run("retry_task", dict(id=task_id, delay=delay, payload=Jsonb(payload)))
        self._one("notify_queue", dict(schema=self._q.schema, task_queue=task_queue))

    def extend_leases(self, ids: list[int], worker: str, lease: float) -> None:
        self._run("extend_leases", dict(ids=ids, worker=worker, lease=lease))

    def release_leases(self, worker: str) -> int:
        """Hand back every activity ``worker`` holds; how many."""
        return self._run("release_leases", dict(worker=worker))

    def clear_job_work(self, job_id: str) -> None:
        """Drop a finished job's tasks and waits."""
        self._run("clear_job_work", dict(id=job_id))

    def job_queue(self, job_id: str) -> str | None:
        """The task queue of a job, or None if there is no such job."""
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("get_job"), dict(id=job_id))
            row = cur.fetchone()
        return None if row is None else str(row["task_queue"])

    def insert_run_task(self, task_queue: str, job_id: str, run_id: str,
                        delay: float = 0.0, priority: int = 0) -> None:
        self._send("insert_run_task", dict(task_queue=task_queue, job_id=job_id,
                                          run_id=run_id, delay=delay, priority=priority))

    def wake_run(self, job_id: str, run_id: str) -> None:
        self._send("wake_run", dict(job_id=job_id, run_id=run_id))

    def insert_step_task(
        self, *, kind: str, task_queue: str, job_id: str, run_id: str, step_key: str,
        payload: dict[str, Any], delay: float = 0.0, leased_by: str | None = None,
        lease: float = 0.0, priority: int = 0,
        then: Inserted | None = None,
    ) -> None:
        """Insert an activity or timer task. ``then`` gets (its id, whether it
        was leased to ``leased_by``; never for a queue with flow control), or
        None when that step has one already: at once, or (``buffered``) when
        the kept writes are flushed."""
        params = dict(kind=kind, task_queue=task_queue, job_id=job_id, run_id=run_id,
                      step_key=step_key, payload=payload, delay=delay,
                      leased_by=leased_by, lease=lease, priority=priority)
        if self._writes is not None:
            self._writes.tasks.append((params, then))
            return
        params["payload"] = Jsonb(payload)
        row = self._one("insert_step_task", params)
        if then is not None:
            then(None if row is None else (int(row[0]), bool(row[1])))

    def skip_time(self, seconds: float) -> int:
        """Make timers and deadlines due within ``seconds`` due now (tests), and
        wake their queues; how many tasks."""
        moved = [row[0] for row in self._conn.execute(self._sql("skip_time"),
                                                      dict(seconds=seconds))]
        for queue in set(moved):
            self._one("notify_queue", dict(schema=self._q.schema, task_queue=queue))
        return len(moved)

    # --- workers -----------------------------------------------------------
    def upsert_worker(self, worker_id: str, host: str, pid: int, task_queues: list[str],
                      workflows: list[str], activities: list[str]) -> None:
        self._run("upsert_worker", dict(id=worker_id, host=host, pid=pid,
                                        task_queues=task_queues, workflows=workflows,
                                        activities=activities))

    def worker_seen(self, worker_id: str) -> bool:
        """A worker's heartbeat; False when its row is gone (removed as stale)."""
        return self._run("worker_seen", dict(id=worker_id)) > 0

    def mark_sleeping(self, task_queue: str, worker: str) -> None:
        """A thread of ``worker`` goes to sleep on the queue: its tasks notify from now."""
        self._send("mark_sleeping", dict(schema=self._q.schema, task_queue=task_queue,
                                         worker=worker))

    def unmark_sleeping(self, task_queue: str, worker: str) -> None:
        """No thread of ``worker`` sleeps on the queue any more."""
        self._send("unmark_sleeping", dict(task_queue=task_queue, worker=worker))

    def drop_worker(self, worker_id: str) -> None:
        self._run("drop_worker", dict(id=worker_id))

    def drop_stale_workers(self, stale: float) -> int:
        return self._run("drop_stale_workers", dict(stale=stale))

    def live_worker_registers(self, task_queue: str, name: str, worker: str,
                              stale: float) -> bool:
        row = self._one("live_worker_registers", dict(task_queue=task_queue, name=name,
                                                      worker=worker, stale=stale))
        return bool(row and row[0])

    def set_waiting_for(self, job_id: str, reason: str | None) -> bool:
        """Say why a workflow waits (None: it does not); True when that changed."""
        return self._run("set_waiting_for", dict(id=job_id, reason=reason)) > 0

    def adopt_waiting(self, task_queue: str, workflows: list[str]) -> int:
        """Make set-aside work of these workflow names due now; how many tasks."""
        return self._run("adopt_waiting", dict(task_queue=task_queue, workflows=workflows))

    # --- resuming and watching -------------------------------------------
    def last_error_step(self, job_id: str) -> tuple[str, str, int] | None:
        """(key, kind, seq) of the coordinator's last step that holds an error."""
        row = self._one("last_error_step", dict(id=job_id))
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))

    def resume_job(self, job_id: str, from_seq: int) -> None:
        self._run("resume_job", dict(id=job_id, from_seq=from_seq))

    def child_at(self, job_id: str, step_key: str) -> str | None:
        """The id of the child a coordinator's ``exec_child`` at ``step_key`` started."""
        row = self._one("failed_child", dict(id=job_id, step_key=step_key))
        return None if row is None else str(row[0])

    def add_watcher(self, job_id: str, watcher: str) -> None:
        self._run("add_watcher", dict(job_id=job_id, watcher=watcher))

    def drop_watcher(self, job_id: str, watcher: str) -> None:
        self._run("drop_watcher", dict(job_id=job_id, watcher=watcher))

    # --- flow control ----------------------------------------------------
    def claim_limited(self, task_queue: str, worker: str, lease: float,
                      recoveries: bool) -> LimitedClaim | None:
        """Lease the next due activity of a queue with flow control, within
        its limits (one call of ``claim_limited`` in schema.sql); None when
        the queue has no limits."""
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("claim_limited"), dict(
                task_queue=task_queue, worker=worker, lease=lease, recoveries=recoveries))
            row = cur.fetchone()
        if row is None:
            return None
        wait = row.pop("wait")
        task = None if row["id"] is None else ClaimedTask.from_row({**row, "more": False})
        return LimitedClaim(task, wait)

    def queue_limited(self, task_queue: str) -> bool:
        row = self._one("queue_limited", dict(task_queue=task_queue))
        return bool(row and row[0])

    def configure_queue(self, name: str, concurrency: int | None, rate_count: int | None,
                        rate_period: float | None) -> None:
        self._run("configure_queue", dict(name=name, concurrency=concurrency,
                                          rate_count=rate_count, rate_period=rate_period))

    def delete_task(self, task_id: int) -> None:
        self._send("delete_task", dict(id=task_id))

    def apply_entity(self, job_id: str, params: Mapping[str, Any],
                     history_sink: list[tuple[int, list[dict[str, Any]]]]) -> Any:
        """Apply a compiled entity command in this transaction; the document after.
        The new version's patch goes to ``history_sink``, written before commit."""
        return apply_compiled(self._conn, self._q.schema, job_id, params, history_sink)

    def read_entity(self, job_id: str, segments: list[str] | None) -> Any:
        """The value at ``segments`` of a job's document (None when absent)."""
        return read_document(self._conn, self._q.schema, job_id, segments)

    def fail_task(self, task_id: int, delay: float) -> FailedTask | None:
        """Count a failure of ``task_id`` and postpone it; None if it is gone."""
        return self._one_as(FailedTask, "fail_task", dict(id=task_id, delay=delay))

    def abandon_job(self, job_id: str, task_id: int | None) -> None:
        """Fail a workflow with a fixed record and drop its work (last resort)."""
        self._run("abandon_job", dict(id=job_id, task_id=task_id))

    def set_lock_timeout(self, seconds: float) -> None:
        """Wait at most ``seconds`` for any lock for the rest of this transaction."""
        self._one("set_lock_timeout", dict(timeout=f"{int(seconds * 1000)}ms"))

    def request_interrupt(self, job_id: str, error: dict[str, Any], descend: bool,
                          force: bool) -> None:
        """Queue an interrupt for the workflow's workers (never waits on a lock)."""
        self._run("insert_interrupt_task", dict(
            id=job_id, payload=Jsonb({"error": error, "descend": descend, "force": force})))

    def delete_step_task(self, job_id: str, run_id: str, step_key: str) -> None:
        self._run("delete_step_task", dict(job_id=job_id, run_id=run_id, step_key=step_key))

    # --- steps ---------------------------------------------------------
    def load_steps(self, job_id: str, run_id: str,
                   after_seq: int = 0) -> tuple[dict[str, StepRecord], int]:
        """The run's steps recorded after ``after_seq``, and the highest seq seen."""
        cur = self._conn.execute(self._sql("load_steps"),
                                dict(job_id=job_id, run_id=run_id, after_seq=after_seq))
        steps: dict[str, StepRecord] = {}
        top = after_seq
        for key, kind, name, result, error, seq in cur:
            steps[key] = StepRecord(kind, name, result, error)
            top = max(top, seq)
        return steps, top

    def insert_step(self, job_id: str, run_id: str, step_key: str, kind: str, name: str,
                    result: Any = None, error: dict[str, Any] | None = None) -> int | None:
        """Record a step; its seq, or None when that position was recorded already."""
        row = self._one("insert_step", dict(
            job_id=job_id, run_id=run_id, step_key=step_key, kind=kind, name=name,
            result=jsonb(result, "a step result"),
            error=None if error is None else Jsonb(error)))
        return None if row is None else int(row[0])

    def insert_steps(self, job_id: str, run_id: str,
                     steps: list[tuple[str, str, str, Jsonb, dict[str, Any] | None]]) -> int:
        """Record several steps of one run in order (results already as Jsonb);
        the highest seq written."""
        cur = self._conn.execute(self._sql("insert_steps"), dict(
            job_id=job_id, run_id=run_id,
            keys=[s[0] for s in steps], kinds=[s[1] for s in steps],
            names=[s[2] for s in steps],
            results=[s[3] for s in steps],
            errors=[None if s[4] is None else Jsonb(s[4]) for s in steps]))
        return max((int(row[0]) for row in cur), default=0)

    def insert_history_rows(self, job_id: str,
                            versions: list[tuple[int, list[dict[str, Any]]]]) -> None:
        self._conn.execute(self._sql("insert_history_rows"), dict(
            job_id=job_id, versions=[v for v, _ in versions],
            patches=[Jsonb(p) for _, p in versions]))

    def record_step_and_load(
        self, job_id: str, run_id: str, step_key: str, record: StepRecord,
        task_id: int | None, after_seq: int,
    ) -> tuple[int | None, dict[str, StepRecord], int]:
        """Drop the task, record the step, and read the run's other steps after
        ``after_seq``: (the new step's seq or None if it was recorded already,
        those steps, the highest seq among them)."""
        cur = self._conn.execute(self._sql("record_step_and_load"), dict(
            task_id=task_id, job_id=job_id, run_id=run_id, step_key=step_key,
            kind=record.kind, name=record.name,
            result=jsonb(record.result, "a step result"),
            error=None if record.error is None else Jsonb(record.error), after_seq=after_seq))
        rows = cur.fetchall()
        if not rows:
            return None, {}, after_seq
        steps: dict[str, StepRecord] = {}
        top = after_seq
        for _, key, kind, name, result, error, seq in rows:
            if key is not None:
                steps[key] = StepRecord(kind, name, result, error)
                top = max(top, seq)
        return int(rows[0][0]), steps, top

    def record_steps(
        self, items: list[tuple[str, str, str, StepRecord, int | None, int]],
    ) -> tuple[dict[tuple[str, str], LockedRun],
               list[tuple[int | None, dict[str, StepRecord], int]]]:
        """``lock_run`` and ``record_step_and_load`` for several outcomes (job id,
        run id, step key, record, task id, mark) in one call (``record_steps``
        in schema.sql: the runs locked first, in key order): the runs, and per
        outcome (the new step's seq or None, the run's other steps after the
        mark, the highest seq among them)."""
        document = [[job_id, run_id, key, record.kind, record.name,
                     dumps(record.result, "a step result"),
                     None if record.error is None else json.dumps(record.error),
                     task_id, mark]
                    for job_id, run_id, key, record, task_id, mark in items]
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("record_steps_batch"),
                        dict(items=json.dumps(document, separators=(",", ":"))))
            rows = cur.fetchall()
        runs: dict[tuple[str, str], LockedRun] = {}
        recorded: list[tuple[int | None, dict[str, StepRecord], int]] = []
        for row, item in zip(rows, items, strict=True):
            seq, found = row.pop("seq"), row.pop("steps")
            if row["job_id"] is not None:
                runs[(row["job_id"], row["run_id"])] = LockedRun(**row)
            steps: dict[str, StepRecord] = {}
            top = item[5]
            for key, kind, name, result, error, step_seq in found or ():
                steps[key] = StepRecord(kind, name, result, error)
                top = max(top, int(step_seq))
            recorded.append((None if seq is None else int(seq), steps, top))
        return runs, recorded

    def claim_runs(self, task_queue: str, limit: int, activities: bool, recoveries: bool,
                   ) -> tuple[list[tuple[ClaimedTask, LockedRun | None]], bool]:
        """Lock up to ``limit`` due tasks of ``task_queue`` (``claim_runs`` in
        schema.sql), and for run tasks take them (``take_run_tasks``) and lock
        their runs: each task with its run (None: not a run task, or no such
        run), and whether other tasks were ready too."""
        with self._conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("claim_runs"), dict(
                task_queue=task_queue, limit=limit, activities=activities,
                recoveries=recoveries))
            rows = cur.fetchall()
        claimed: list[tuple[ClaimedTask, LockedRun | None]] = []
        more = False
        for row in rows:
            more = bool(row.pop("more"))
            task = ClaimedTask(row["id"], row["kind"], row["job_id"], row["run_id"],
                               row["step_key"], row["payload"], row["claims"], more)
            run = None
            if row["job_status"] is not None:
                fields = {k: v for k, v in row.items() if k in _RUN_FIELDS}
                run = LockedRun(**fields)
            claimed.append((task, run))
        return claimed, more

    def insert_child_result(self, parent_id: str, parent_run: str, step_key: str,
                            result: Any, error: dict[str, Any] | None) -> None:
        """Record a child's outcome in its parent (under the parent run's lock,
        like every step write) and wake the parent."""
        self.lock_run(parent_id, parent_run)
        if self.insert_step(parent_id, parent_run, step_key, "child_result", "child",
                            result, error) is not None:
            self.wake_run(parent_id, parent_run)

    # --- signals -------------------------------------------------------
    def lock_job(self, job_id: str) -> str | None:
        """Take the job's signal lock; its status, or None if there is no such job."""
        row = self._one("lock_job_for_signals", dict(job_id=job_id))
        return None if row is None else str(row[0])

    def send_signal(self, job_id: str, signal_id: str, data: Jsonb) -> bool:
        """Keep a signal for the job and wake its runs that wait on it; False
        when there is no such job (WorkflowNotFoundError for the caller).

        A job that has ended gets nothing kept (True all the same): no
        wait_for can ever take it."""
        status = self.lock_job(job_id)
        if status is None:
            return False
        if status in TERMINAL:
            return True
        params = dict(job_id=job_id, signal_id=signal_id, data=data)
        self._run("insert_signal", params)
        self._run("wake_runs_of_job", params)
        return True

    def consume_signal(self, job_id: str,
                       signal_ids: list[str]) -> tuple[str, Any] | None:
        """Take the oldest kept signal with one of ``signal_ids``; (its id,
        data), or None. Call lock_job first."""
        row = self._one("consume_signal", dict(job_id=job_id, signal_ids=signal_ids))
        return None if row is None else (str(row[0]), row[1])

    def insert_wait(self, job_id: str, run_id: str, step_key: str, signal_id: str) -> None:
        self._send("insert_wait", dict(job_id=job_id, run_id=run_id, step_key=step_key,
                                      signal_id=signal_id))

    def delete_wait(self, job_id: str, run_id: str, step_key: str) -> None:
        self._send("delete_wait", dict(job_id=job_id, run_id=run_id, step_key=step_key))

    def waiting_jobs(self, signal_id: str) -> list[str]:
        cur = self._conn.execute(self._sql("waiting_jobs"), dict(signal_id=signal_id))
        return [row[0] for row in cur]

    def has_pending(self, job_id: str, run_id: str, step_key: str) -> bool:
        """Whether the run waits on a call at ``step_key`` (a task or a wait)."""
        row = self._one("has_pending", dict(job_id=job_id, run_id=run_id, step_key=step_key))
        return bool(row and row[0])

    def heartbeat(self, task_id: int, job_id: str, worker: str, lease: float,
                  details: Jsonb | None, extend: bool = True) -> Beat:
        """An activity's heartbeat (``extend``) or just a look at its state."""
        found = self._one_as(Beat, "heartbeat_task", dict(
            id=task_id, job_id=job_id, worker=worker, lease=lease, details=details,
            extend=extend))
        assert found is not None  # the query always returns one row
        return found

    # --- cancellation and interrupts -------------------------------------
    def cancel(self, job_id: str, error: dict[str, Any], descend: bool, force: bool) -> bool:
        """Cancel a workflow: with cleanup (its coordinator gets CancelledError
        at its next activation), or at once when ``force`` or when it has not
        started. False if it had already ended."""
        status = self.job_status(job_id)
        if status is None:
            raise WorkflowNotFoundError(job_id)
        if status in TERMINAL:
            return False
        if force or status == "pending":  # nothing of its code runs: no cleanup to do
            return self.interrupt(job_id, error, descend)
        if self._one("request_cancel", dict(id=job_id, error=Jsonb(error))) is not None:
            self.wake_run(job_id, "")
        if descend:
            for child in self._children(job_id):
                self.cancel(child, error, descend=True, force=False)
        return True

    def cancel_delivered(self, job_id: str, run_id: str) -> None:
        """CancelledError was raised in the run: drop what it waited on."""
        self._run("cancel_delivered", dict(job_id=job_id, run_id=run_id))

    def _children(self, job_id: str) -> list[str]:
        return [r[0] for r in self._conn.execute(self._sql("active_children"), dict(id=job_id))]

    def interrupt(self, job_id: str, error: dict[str, Any], descend: bool) -> bool:
        """Interrupt a job (and, with descend, its running children); False if it
        had already ended."""
        self._conn.execute(self._sql("lock_runs_of_job"), dict(id=job_id)).fetchall()
        row = self._one("interrupt_job", dict(id=job_id, error=Jsonb(error)))
        if row is None:
            return False
        self._run("interrupt_runs", dict(id=job_id))
        self._run("clear_job_work", dict(id=job_id))
        parent_id, parent_run, parent_step = row
        if parent_id is not None and parent_step is not None:
            self.insert_child_result(parent_id, parent_run, parent_step, None,
                                     {**error, "type": "WorkflowFailedError"})
        if descend:
            for child in self._children(job_id):
                self.interrupt(child, error, descend=True)
        return True


class Store:
    """A connection pool bound to one app schema."""

    def __init__(self, pool: ConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self.queries = Queries(schema)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.pool.connection() as conn, conn.transaction():
            yield Tx(conn, self.queries)

    def run(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one transaction, retried whole on transient faults."""
        def attempt() -> tuple[T, list[Callable[[], None]]]:
            with self.transaction() as tx:
                return work(tx), tx.after_commit
        result, after_commit = call_with_retry(attempt)
        for callback in after_commit:
            callback()
        return result

    def run_once(self, work: Callable[[Tx], T], buffered: bool = False) -> T:
        """Run ``work`` in one transaction, not retried (the caller has a way
        back: a group commit that failed is redone item by item). ``buffered``:
        see ``Tx``; the kept writes are flushed before the commit."""
        with self.pool.connection() as conn, conn.transaction():
            tx = Tx(conn, self.queries, buffered)
            result = work(tx)
            tx.flush()
        for callback in tx.after_commit:
            callback()
        return result

    def entity_history(self, job_id: str) -> list[dict[str, Any]]:
        """Every version of a job's document, as ``entity_ops.history`` gives it."""
        def read() -> list[dict[str, Any]]:
            with self.pool.connection() as conn:
                return history(conn, self.schema, job_id)
        return call_with_retry(read)

    def fetch_dicts(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows of a read-only named query, as dicts."""
        def read() -> list[dict[str, Any]]:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                cur.execute(self.queries.text(name, conn), params)
                return list(cur.fetchall())
        return call_with_retry(read)


def create_workflow(tx: Tx, spec: dict[str, Any]) -> bool:
    """Insert a workflow (job row, coordinator run, first run task; with
    search values the entity's first version; with a run_timeout its
    deadline) in one statement; False if the id is taken. ``spec`` values
    are already JSON-checked."""
    search = spec.get("search") or {}
    return tx.start_workflow(
        id=spec["workflow_id"], entity=spec.get("entity"),
        workflow_name=spec["workflow_name"], task_queue=spec["task_queue"],
        context=jsonb(search, "search"), args=jsonb(spec["args"], "workflow args"),
        parent_id=spec.get("parent_id"), parent_run=spec.get("parent_run"),
        parent_step=spec.get("parent_step"),
        retry=None if spec.get("retry") is None else Jsonb(spec["retry"]),
        expire_seconds=spec.get("expire_seconds"), run_timeout=spec.get("run_timeout"),
        priority=int(spec.get("priority") or 0),
        trace_context=None if not spec.get("trace_context") else Jsonb(spec["trace_context"]),
        start_delay=float(spec.get("start_delay") or 0.0))


def restart_workflow(tx: Tx, spec: dict[str, Any]) -> bool:
    """Begin a new run of an ended workflow id (``if_exists='restart'``): the
    entity is kept (``search`` merged into it), the ended run is kept in the
    id's runs. False when the workflow is still going (or unknown)."""
    row = tx.lock_job_row(spec["workflow_id"])
    if row is None or row["status"] not in TERMINAL:
        return False
    job_id = spec["workflow_id"]
    tx.archive_run(job_id, row["status"], _ended_reason(tx, job_id))
    tx.begin_run(job_id, run_id=spec["run_id"], workflow_name=spec["workflow_name"],
                 task_queue=spec["task_queue"], args=jsonb(spec["args"], "workflow args"),
                 retry=None if spec.get("retry") is None else Jsonb(spec["retry"]),
                 run_timeout=spec.get("run_timeout"),
                 expire_seconds=spec.get("expire_seconds"), entity=spec.get("entity"))
    if spec.get("search"):
        tx.merge_search(job_id, spec["search"])
    return True


def resume_workflow(tx: Tx, job_id: str) -> bool:
    """Run a failed (or interrupted) workflow again from the step that failed
    (``handle.retry()``); False when it has not ended that way.

    The steps before that one stay recorded and are replayed, not re-run. A
    failed ``exec_child`` is resumed the same way, so its result reaches the
    parent when it completes.
    """
    run = tx.lock_run(job_id, "")
    if run is None:
        raise WorkflowNotFoundError(job_id)
    if run.job_status not in ("failed", "interrupted"):
        return False
    failed = tx.last_error_step(job_id)
    if failed is not None and failed[1] == "child_result":
        child = tx.child_at(job_id, failed[0])
        if child is not None:
            resume_workflow(tx, child)
    tx.resume_job(job_id, (1 << 62) if failed is None else failed[2])
    tx.insert_run_task(run.task_queue, job_id, "", priority=run.priority)
    tx.insert_deadline_task(job_id)
    return True


def continue_workflow(tx: Tx, run: LockedRun, args: Any, run_id: str) -> None:
    """End the current run with 'continued' and begin the next with ``args``
    (``workflow.continue_as_new``); the caller holds the coordinator's lock."""
    row = tx.lock_job_row(run.job_id)
    assert row is not None
    tx.archive_run(run.job_id, "continued", "continue_as_new")
    tx.begin_run(run.job_id, run_id=run_id, workflow_name=run.workflow_name,
                 task_queue=run.task_queue, args=jsonb(args, "continue_as_new args"),
                 retry=None if row["retry"] is None else Jsonb(row["retry"]),
                 run_timeout=row["run_timeout"], expire_seconds=row["expire_seconds"])


def _ended_reason(tx: Tx, job_id: str) -> str | None:
    """How an ended run is described in ``runs()``: its error message, if any."""
    error = tx.job_error(job_id)
    message = error.get("message") if isinstance(error, dict) else None
    return None if message is None else str(message)


def start_hook_run(tx: Tx, spec: dict[str, Any]) -> None:
    """Add a hook run to an existing workflow and queue its first activation."""
    status = tx.job_status(spec["job_id"])
    if status is None:
        raise WorkflowNotFoundError(spec["job_id"])
    if tx.insert_run(spec["job_id"], spec["run_id"], spec["workflow_name"], spec["task_queue"],
                     jsonb(spec["args"], "hook args"), spec.get("signal_id")):
        tx.insert_run_task(spec["task_queue"], spec["job_id"], spec["run_id"])


def run_on_connection(store: Store, connection: Any, work: Callable[[Tx], T]) -> T:
    """Run ``work`` in the caller's own connection and transaction.

    ``connection`` is a psycopg connection or a Django connection wrapper
    (which exposes the psycopg one as ``.connection``). Nothing is committed
    here: the writes exist only if the caller's transaction commits.
    """
    if hasattr(connection, "ensure_connection"):
        connection.ensure_connection()
    raw = getattr(connection, "connection", connection)
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("connection must be a psycopg 3 connection or a Django connection")
    if not raw.autocommit and raw.info.transaction_status == TransactionStatus.IDLE:
        # The caller's transaction begins lazily (Django's atomic(), a psycopg
        # connection outside autocommit) and has sent nothing yet: start it, so
        # that ours below is a savepoint inside it, not a commit of our own.
        raw.execute("SELECT 1")
    with raw.transaction():  # a savepoint inside the caller's transaction
        return work(Tx(raw, store.queries))


def purge(store: Store, older_than: float | None, batch: int = 500) -> int:
    """Delete finished workflows in batches; how many were removed."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    total = 0
    while True:
        removed = len(store.fetch_dicts("purge_finished",
                                        {"older_than": older_than, "batch": batch}))
        total += removed
        if removed < batch:
            return total


#: How long an interrupt waits for a running activation before it is queued.
INTERRUPT_LOCK_WAIT = 2.0


def interrupt_workflow(store: Store, job_id: str, error: dict[str, Any],
                       descend: bool, force: bool = False) -> bool:
    """Interrupt a workflow (``Tx.cancel``) now, or queue the interrupt if an
    activation holds it.

    Never waits more than ``INTERRUPT_LOCK_WAIT`` seconds behind a running
    activation: the interrupt is then recorded as a task that the workflow's
    workers carry out once the activation ends. False when it had ended.
    """
    busy = object()

    def direct(tx: Tx) -> object:
        status = tx.job_status(job_id)
        if status is None:
            raise WorkflowNotFoundError(job_id)
        if status in TERMINAL:
            return False
        tx.set_lock_timeout(INTERRUPT_LOCK_WAIT)
        return tx.cancel(job_id, error, descend, force)

    def attempt() -> object:
        try:
            with store.transaction() as tx:
                return direct(tx)
        except pg_errors.LockNotAvailable:
            return busy

    outcome = call_with_retry(attempt)
    if outcome is busy:
        store.run(lambda tx: tx.request_interrupt(job_id, error, descend, force))
        return True
    return bool(outcome)
