"""The thread-pool worker: claims tasks from PostgreSQL and performs them.

Each of ``concurrency`` threads loops: claim due work with ``FOR UPDATE SKIP
LOCKED`` and do it. Run and timer tasks are done inside the claiming
transaction (a crash rolls the claim back). An activity task is leased, the
lease committed, the activity run outside any transaction, and its result
recorded together with the run's next activation. Claims and results of
threads that finish at about the same time share one transaction (the group
commit, group_commit.py; a queue with flow control records alone). Idle
threads sleep until a NOTIFY for their queue (sent only while one sleeps:
``SleepMark``), the next timer, or a slow safety poll.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import errors
from ..activity import running
from ..log import get_logger
from ..names import check_name
from ..records import ErrorRecord, StepRecord, describe_error
from ..settings import Settings
from ..store.connect import make_pool
from ..store.listener import Listener
from ..store.store import ClaimedTask, Store, TransactionRunner, Tx, purge
from ..store.transient import is_transient
from ..supervisor import DRAIN_MARGIN, Supervisor, check_processes, worker_processes
from ..tracing import resumed, span
from ..workflow.context import ActivationLimits
from ..workflow.registry import FunctionSet, as_table, is_transactional
from .activation import (
    WORKER_STALE,
    Finished,
    LeasedActivity,
    Scheduler,
    activate,
    expire_run,
    fail_run,
    record_and_activate,
    record_many,
)
from .activity_runner import classify_failure, run_attempt, success
from .activity_table import ActivityTable
from .attempt import StoredAttempt
from .budget import TaskBudget
from .flow import BLOCKED_RETRY, FlowCheck
from .group_commit import GroupCommit, Ticket
from .quarantine import Quarantine
from .transactional import perform_transactional
from .wakeups import SleepMark, WakeUps

_log = get_logger("hotmesh_sync.worker")

#: A leased activity task claimed this many times more than its attempts is
#: taken to kill its worker each time, and is failed instead of retried
#: ($HOTMESH_MAX_RECOVERIES overrides it for a process).
MAX_RECOVERIES = Settings.max_recoveries
#: Seconds between two heartbeats of a worker's row (``mf.workers()``).
WORKER_BEAT = 10.0
#: Seconds before a task whose processing failed in the database is tried again.
TASK_RETRY_DELAY = 5.0
#: Seconds before a thread asks again for work when its group commit failed.
RECLAIM_DELAY = 0.01
#: Seconds an activity's lease lasts unless its worker extends it.
DEFAULT_LEASE = Settings.lease_seconds


class TaskFailed(Exception):
    """Processing the claimed task ``task_id`` failed (not a transient fault).

    Raised out of the claim transaction, so the task id of the attempt that
    failed (not of an earlier, retried one) reaches ``_set_aside``."""

    def __init__(self, task_id: int, cause: Exception) -> None:
        super().__init__(describe_error(cause))
        self.task_id = task_id
        self.cause = cause


@dataclass(frozen=True)
class ClaimOutcome:
    """What one claim transaction did: the task it claimed (if any), whether
    more were ready, seconds until the next one is due, activities leased."""

    task_id: int | None = None
    more: bool = False
    next_due: float | None = None
    leased: list[LeasedActivity] = field(default_factory=list)


class Host(Protocol):
    """What a worker is built from (a MemFlow is one): the database to open
    its own pool on, the app's schema, and the LISTEN connection to wake on."""

    @property
    def dsn(self) -> str: ...

    @property
    def schema(self) -> str: ...

    @property
    def listener(self) -> Listener: ...


class Worker:
    """Runs workflows, hooks and activities of one task queue."""

    def __init__(
        self,
        host: Host,
        task_queue: str,
        workflows: FunctionSet = None,
        activities: FunctionSet = None,
        concurrency: int = 8,
        *,
        lease: float | None = None,
        poll_interval: float = 5.0,
        maintenance_interval: float = 60.0,
        max_tasks: int | None = None,
        on_task: Callable[[int], None] | None = None,
        transactions: TransactionRunner | None = None,
        schedules: bool = True,
        processes: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not task_queue:
            raise ValueError("a worker needs a task_queue")
        self.task_queue = check_name(task_queue, "task_queue")
        self.workflows = as_table(workflows)
        for name, fn in self.workflows.items():
            check_name(name, "workflow name")
            if inspect.iscoroutinefunction(fn):
                raise TypeError(
                    f"workflow {name!r} is an 'async def' function: workflows are plain "
                    "functions (make the awaited work an activity; activities may be async)")
        self.activities = as_table(activities)
        for name in self.activities:
            check_name(name, "activity name")
        self.concurrency = concurrency
        self.settings = Settings.from_env()
        # A short lease recovers a dead worker's activities sooner; a long one
        # costs fewer heartbeats. $HOTMESH_LEASE_SECONDS sets it for a process.
        self.lease = float(lease if lease is not None else self.settings.lease_seconds)
        if self.lease <= 0:
            raise ValueError("lease must be positive")
        self.max_recoveries = self.settings.max_recoveries
        self.poll_interval = poll_interval
        self.maintenance_interval = maintenance_interval
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._listener = host.listener
        self._pool = make_pool(
            host.dsn, concurrency + 2, f"hotmesh-pool-{task_queue}",
            idle_in_transaction=self.settings.max_activation_seconds + 5.0,
            pgbouncer=self.settings.pgbouncer)
        self._store = Store(self._pool, host.schema)
        self._table = ActivityTable(self.activities)
        self._scheduler = Scheduler(
            self.worker_id, task_queue, self.lease, may_lease=self._may_lease,
            limits=ActivationLimits(self.settings.max_activation_steps,
                                    self.settings.max_activation_seconds),
            activities=self._table)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._wakeups = WakeUps()
        self._quarantine = Quarantine()
        self._budget = TaskBudget(max_tasks, on_task)
        self._flow = FlowCheck(self._store, task_queue)
        #: Outcomes of activities finished at about the same time share a commit.
        self._group = GroupCommit(self._run_batch)
        #: Per thread: its last group commit found the queue empty (sleep, not claim).
        self._idle_hint = threading.local()
        #: The last claim saw more tasks ready than it took.
        self._backlog = False
        #: Tasks queued here notify only while a thread of some worker sleeps.
        self._asleep = SleepMark(
            lambda: self._store.run(lambda tx: tx.mark_sleeping(task_queue, self.worker_id)),
            lambda: self._store.run(lambda tx: tx.unmark_sleeping(task_queue, self.worker_id)))
        #: Where transactional activities run (None: a transaction on this worker's pool).
        self.transactions = transactions
        #: Whether this worker takes part in firing the app's schedules.
        self.fires_schedules = schedules
        self._log = _log.bind(worker_id=self.worker_id, task_queue=task_queue)
        #: processes > 1: start()/run()/stop() supervise that many processes, each
        #: with a worker like this one (supervisor.py); this object claims nothing.
        self.processes = check_processes(processes)
        self._processes: Supervisor | None = None if processes == 1 else worker_processes(
            host, task_queue, self.workflows, self.activities, concurrency, processes,
            {"lease": lease, "poll_interval": poll_interval, "max_tasks": max_tasks,
             "maintenance_interval": maintenance_interval, "schedules": schedules}
            | ({} if on_task is None else {"on_task": on_task})
            | ({} if transactions is None else {"transactions": transactions}))

    @property
    def max_tasks(self) -> int | None:
        return self._budget.limit

    def drained(self) -> bool:
        """Nothing of this worker's queue is due or running, and none of its
        threads is busy: what ``--until-empty`` waits for."""
        if self._budget.in_flight:
            return False
        state = self._store.fetch_dicts("queue_state", {"name": self.task_queue})[0]
        return int(state["ready"]) == 0 and int(state["running"]) == 0 \
            and self._budget.in_flight == 0

    @property
    def tasks_done(self) -> int:
        """Tasks finished so far."""
        return self._budget.done

    # --- lifecycle -----------------------------------------------------
    def start(self) -> Worker:
        """Start the threads and return at once (processes > 1: the processes,
        supervised from a background thread)."""
        if self._processes is not None:
            self._processes.start()
            return self
        if self._threads:
            return self
        self._pool.open(wait=True, timeout=30)
        self._listener.watch_queue(self.task_queue, self._wakeups.notify)
        self._flow.refresh()  # every thread's first claim knows the queue's limits
        self._announce()
        for i in range(self.concurrency):
            self._spawn(self._work_loop, f"hotmesh-worker-{i}")
        self._spawn(self._heartbeat_loop, "hotmesh-heartbeat")
        self._spawn(self._maintenance_loop, "hotmesh-maintenance")
        if self.fires_schedules:
            self._spawn(self._schedule_loop, "hotmesh-schedules")
        self._log.info("worker_started", concurrency=self.concurrency,
                       workflows=sorted(self.workflows))
        return self

    def _announce(self) -> None:
        """Write this worker's row (``mf.workers()``), and make due at once the
        work set aside because no live worker registered its workflow."""
        names = sorted(self.workflows)

        def work(tx: Tx) -> int:
            tx.upsert_worker(self.worker_id, socket.gethostname(), os.getpid(),
                             [self.task_queue], names, sorted(self.activities))
            return tx.adopt_waiting(self.task_queue, names) if names else 0

        adopted = self._store.run(work)
        if adopted:
            self._log.info("waiting_work_adopted", tasks=adopted)
            self._wakeups.wake_all()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop claiming; let in-flight work finish, or hand it back after ``timeout``.

        Returns the names of threads that were still running at the end (an
        activity or a workflow that ignores every limit): empty when all stopped.
        With processes > 1: drains them; the names of those killed because they
        were still running ``timeout`` + DRAIN_MARGIN seconds later.
        """
        if self._processes is not None:
            return self._processes.stop(timeout + DRAIN_MARGIN)
        if self._stopping.is_set():
            return [t.name for t in self._threads if t.is_alive()]
        self._stopping.set()
        self._listener.unwatch_queue(self.task_queue, self._wakeups.notify)
        self._wakeups.wake_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t for t in self._threads if t.is_alive()]
        if stuck:
            handed_back = self._store.run(lambda tx: tx.release_leases(self.worker_id))
            self._log.warning("worker_handed_back", tasks=handed_back, threads=len(stuck))
        try:
            self._store.run(lambda tx: tx.drop_worker(self.worker_id))
        except Exception as exc:  # its row goes stale and is removed anyway
            self._log.warning("worker_row_not_removed", error=describe_error(exc))
        self._pool.close(timeout=5.0)
        still = [t.name for t in self._threads if t.is_alive()]
        if still:
            self._log.warning("worker_threads_not_stopped", threads=still)
        self._log.info("worker_stopped")
        return still

    def run(self) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully (processes > 1:
        supervise them until then, see supervisor.py)."""
        if self._processes is not None:
            self._processes.run()
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stop.wait(1.0):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._idle_hint.found = None
                did_work, next_due = self._counted_claim()
                if did_work and self._idle_hint.found is not None:
                    # Its last commit claimed for it and found the queue empty.
                    did_work, (next_due,) = False, self._idle_hint.found
                if did_work:
                    self._asleep.maybe_unmark()
            except Exception as exc:  # a thread must outlive any one failure
                with contextlib.suppress(Exception):  # nor may a broken log sink
                    self._log.error("worker_loop_error", error=describe_error(exc))
                self._stopping.wait(1.0)
                continue
            if not did_work:
                if self._asleep.going_idle():
                    # Marked just now: what was queued before notified nobody.
                    self._asleep.busy()
                    continue
                wait = self.poll_interval
                if next_due is not None and next_due > 0:
                    wait = min(wait, next_due + 0.005)
                self._wakeups.sleep(wait, self._stopping)
                self._asleep.busy()

    # --- claiming ------------------------------------------------------
    def _counted_claim(self) -> tuple[bool, float | None]:
        """``_claim_once`` within ``max_tasks``; reports each finished task."""
        if not self._budget.reserve():
            return False, None
        did_work = False
        self._idle_hint.refills = 0
        try:
            did_work, next_due = self._claim_once()
        finally:
            self._budget.settle(did_work, self._idle_hint.refills)
        return did_work, next_due

    def _claim_once(self) -> tuple[bool, float | None]:
        """Claim and do one task; (did work, seconds until the next due task).

        A queue with flow control has its activities leased apart, by the
        limited claim (``_limited_work``); everything else goes through the
        usual claim.
        """
        held_back: float | None = None
        if not self._quarantine.held and self._flow.limited():
            did_work, held_back = self._claim_and_do(self._limited_work)
            if did_work:
                return True, None
        if not self._flow.cached():
            did_work, next_due = self._claim_grouped()
        else:
            did_work, next_due = self._claim_and_do(self._any_work)
        if did_work or held_back is None:
            return did_work, next_due
        # Limited activities are due but held back: look again when a token
        # comes, or soon (a concurrency slot frees without a notification).
        return False, min(held_back, next_due) if next_due and next_due > 0 else held_back

    def _any_work(self, tx: Tx) -> ClaimOutcome:
        """Claim the next due task (but a limited activity) and do it."""
        # Everything it reports comes from this attempt: a transaction
        # retried after a transient fault starts from nothing.
        task = tx.claim_task(self.task_queue, activities=not self._quarantine.held,
                             recoveries=self._quarantine.idle())
        if task is None:
            return ClaimOutcome(next_due=tx.next_due(self.task_queue))
        try:
            leased = self._next_limited(tx, self._do_task(tx, task))
        except Exception as exc:
            if is_transient(exc):
                raise
            raise TaskFailed(task.id, exc) from exc
        return ClaimOutcome(task_id=task.id, more=task.more, leased=leased)

    def _limited_work(self, tx: Tx) -> ClaimOutcome:
        """Lease an activity of this queue within its concurrency and rate
        limits (``claim_limited`` in schema.sql: the queue's row lock
        serializes these claims across every worker process)."""
        found = tx.claim_limited(self.task_queue, self.worker_id, self.lease,
                                 self._quarantine.idle())
        if found is None:
            return ClaimOutcome()
        if found.task is None:  # held back, or nothing due
            wait = BLOCKED_RETRY if found.wait is None else found.wait
            return ClaimOutcome(next_due=wait if wait > 0 else None)
        try:
            leased = self._take_activity(tx, found.task, leased=True)
        except Exception as exc:
            if is_transient(exc):
                raise
            raise TaskFailed(found.task.id, exc) from exc
        # Another thread may find a free slot too (if not, it waits a little).
        return ClaimOutcome(task_id=found.task.id, more=True, leased=leased)

    def _next_limited(self, tx: Tx, leased: list[LeasedActivity]) -> list[LeasedActivity]:
        """At the end of a transaction that leased nothing, lease this queue's
        next limited activity in the same commit, as an activation leases the
        first activity it schedules when its queue has no limits. The queue's
        row lock is then held only from here to the commit."""
        if leased or not self._flow.cached() or not self._may_lease():
            return leased
        found = tx.claim_limited(self.task_queue, self.worker_id, self.lease,
                                 self._quarantine.idle())
        if found is None or found.task is None:
            return leased
        return self._take_activity(tx, found.task, leased=True)

    def _claim_grouped(self) -> tuple[bool, float | None]:
        """Claim through the group commit: one transaction claims (and does)
        a task for each thread that asks at about the same time, beside the
        outcomes being recorded; then run what was leased to this thread."""
        ticket = self._group.submit(Ticket(wants_work=True))
        leased = ticket.leased
        self._quarantine.leave_unused(leased)
        if not ticket.claimed:
            return False, ticket.next_due
        while leased:
            leased = self._perform_activity(leased[0]) + leased[1:]
        return True, None

    def _claim_and_do(self, work: Callable[[Tx], ClaimOutcome]) -> tuple[bool, float | None]:
        """Run one claim transaction ``work``, then the activities it leased;
        (did work, seconds until the next task is due, when known)."""
        try:
            outcome = self._store.run(work)
        except BaseException as exc:
            self._quarantine.leave_unused([])
            if isinstance(exc, TaskFailed):
                self._set_aside(exc.task_id, exc.cause)
            raise
        leased = outcome.leased
        self._quarantine.leave_unused(leased)
        if outcome.task_id is None:
            return False, outcome.next_due
        if outcome.more:
            self._wakeups.one_more()
        while leased:
            leased = self._perform_activity(leased[0]) + leased[1:]
        return True, None

    def _set_aside(self, task_id: int, exc: Exception) -> None:
        """Postpone a task whose processing failed in the database, so that a
        broken task (or schema) costs a retry every few seconds, not a hot loop.

        The failures are counted in the task's row: past
        ``HOTMESH_MAX_TASK_FAILURES`` the workflow fails with 598 StoreError,
        so nothing stays pending forever.
        """
        reason = describe_error(exc)
        self._log.error("task_failed", task_id=task_id, error=reason)
        try:
            failed = self._store.run(lambda tx: tx.fail_task(task_id, TASK_RETRY_DELAY))
        except Exception as again:
            self._log.error("task_set_aside_failed", task_id=task_id,
                            error=describe_error(again))
            return
        if failed is None or failed.failures < self.settings.max_task_failures:
            return
        error = errors.StoreError(
            f"{failed.kind} task of step {failed.step_key or '-'} failed in the database "
            f"{failed.failures} times (HOTMESH_MAX_TASK_FAILURES); last error: {reason}")
        self._log.error("task_given_up", task_id=task_id, workflow_id=failed.job_id,
                        failures=failed.failures)
        try:
            self._store.run(lambda tx: fail_run(tx, failed.job_id, failed.run_id, error,
                                                task_id))
        except Exception as again:
            # Even failing the workflow failed: end it with a record that holds
            # nothing of the user's, which the database cannot refuse.
            self._log.error("task_fail_run_failed", task_id=task_id,
                            error=describe_error(again))
            self._store.run(lambda tx: tx.abandon_job(failed.job_id, task_id))

    def _do_task(self, tx: Tx, task: ClaimedTask) -> list[LeasedActivity]:
        task_id, kind, job_id, run_id = task.id, task.kind, task.job_id, task.run_id
        step_key, payload = task.step_key, task.payload
        if kind == "run":
            if ("run", task_id) in tx.prepared:  # a group commit took it and locked its run
                run = tx.prepared.pop(("run", task_id))
                if run is None:
                    return []
                return activate(tx, job_id, run_id, self.workflows, self._scheduler, run)
            tx.take_run_tasks(job_id, run_id, task_id)
            return activate(tx, job_id, run_id, self.workflows, self._scheduler)
        if kind == "interrupt":
            # Recorded while an activation held the run: it takes effect now.
            tx.delete_task(task_id)
            tx.cancel(job_id, payload["error"], bool(payload.get("descend")),
                      bool(payload.get("force", True)))
            return []
        if kind == "deadline":
            expire_run(tx, job_id, int(payload["run_number"]), task_id)
            return []
        assert step_key is not None
        if kind == "timer":
            if "sleep" in payload:
                record = StepRecord("sleep", "sleep", int(round(payload["sleep"])), None)
            else:
                # A wait's timeout: wait_for returns None, wait_for_any (None, None).
                record = (StepRecord("wait_any", payload["wait_any"], None, None)
                          if "wait_any" in payload
                          else StepRecord("wait", payload["wait"], None, None))
                tx.lock_run(job_id, run_id)  # the run's lock before the wait row's
                tx.delete_wait(job_id, run_id, step_key)
            return record_and_activate(tx, job_id, run_id, step_key, record, self.workflows,
                                       self._scheduler, task_id)
        return self._take_activity(tx, task, leased=False)

    def _take_activity(self, tx: Tx, task: ClaimedTask, leased: bool) -> list[LeasedActivity]:
        """Lease a claimed activity (unless the limited claim ``leased`` it
        already) to run once the lease is committed."""
        task_id, job_id, run_id, payload = task.id, task.job_id, task.run_id, task.payload
        step_key = task.step_key
        assert step_key is not None
        attempt = int(payload.get("attempt", 1))
        claims = task.claims - 1 if leased else task.claims  # before this claim
        recovering = claims >= attempt  # its last holder died (or stopped) holding it
        if recovering and not self._quarantine.enter():
            # Run a recovered task alone: if it kills its worker again, it takes
            # no innocent activity with it, and only its own count grows. (A
            # lease taken already runs out on its own.)
            tx.postpone_task(task_id, 0.5)
            return []
        if leased:
            claims = task.claims
        else:
            leased_claims = tx.lease_task(task_id, self.worker_id, self.lease)
            claims = leased_claims if leased_claims is not None else claims + 1
        if claims > attempt + self.max_recoveries:
            record = StepRecord("activity", payload["name"], None, ErrorRecord(
                "FatalError", "WorkerLost",
                f"activity {payload['name']!r} was claimed {claims} times without "
                "finishing: its worker died each time, so it is not tried again").to_json())
            self._log.error("activity_dead_lettered", workflow_id=job_id, step=step_key,
                            claims=claims)
            return record_and_activate(tx, job_id, run_id, step_key, record, self.workflows,
                                       self._scheduler, task_id)
        return [LeasedActivity(task_id, job_id, run_id, step_key, payload, recovering)]

    def _may_lease(self) -> bool:
        return not self._quarantine.held and not self._stopping.is_set()

    # --- activities ----------------------------------------------------
    def _perform_activity(self, task: LeasedActivity) -> list[LeasedActivity]:
        """Run a leased activity and record its outcome; return newly leased ones."""
        name = str(task.payload["name"])
        log = self._log.bind(workflow_id=task.job_id, step=task.step_key, activity=name)
        fn = self._table.find(name, task.payload.get("ref"))
        if fn is not None and is_transactional(fn):
            # Its writes commit with the record of its step: see transactional.py.
            return perform_transactional(self, task, fn, log)
        self._quarantine.started(task)
        self._group.running()
        attempt = StoredAttempt(self._store, task, self.worker_id, self.lease)
        failure: Exception | None = None
        try:
            with resumed(task.payload.get("trace")), span(
                    "hotmesh.activity", **{"hotmesh.workflow_id": task.job_id,
                                           "hotmesh.step": task.step_key,
                                           "hotmesh.activity": name,
                                           "hotmesh.attempt": task.payload.get("attempt")}), \
                    running(attempt):
                value = run_attempt(fn, task.payload)
        except errors.CancelledError as cancelled:
            # Its heartbeat found the workflow cancelled: the coordinator's
            # CancelledError (queued already) drops this task; nothing to record.
            log.info("activity_cancelled", reason=cancelled.message)
            self._group.not_running()
            return []
        except Exception as exc:  # whatever the activity raised, stored by classify_failure
            failure = exc
        finally:
            self._quarantine.finished(task)
            # Before the outcome is recorded: a retry resumes from these details.
            self._flush_heartbeat(attempt, log)
        if self._flow.cached():
            self._wakeups.one_more()  # a slot of the limited queue is free again
        if failure is not None:
            self._group.not_running()
            return self._activity_failed(task, failure, log)
        log.debug("activity_completed")

        def record(tx: Tx) -> list[LeasedActivity]:
            return self._next_limited(tx, record_and_activate(
                tx, task.job_id, task.run_id, task.step_key, success(name, value),
                self.workflows, self._scheduler, task.task_id))

        # A limited queue's claims take its row lock: there each records alone.
        if not self._flow.cached():
            ticket = self._group.submit(Ticket(
                record, (task.job_id, task.run_id), wants_work=self._refills(),
                finished=Finished(task.job_id, task.run_id, task.step_key, success(name, value),
                                  task.task_id)))
            if not ticket.redo:
                if ticket.claimed:
                    self._idle_hint.refills = getattr(self._idle_hint, "refills", 0) + 1
                if ticket.empty:
                    self._idle_hint.found = (ticket.next_due,)
                return ticket.leased
        else:
            self._group.not_running()
        return self._record_outcome(task, record)

    def _refills(self) -> bool:
        """Whether a thread that records an outcome takes a newly claimed task
        in the same transaction when its workflow leaves it nothing to run:
        only while the queue has a backlog (a claim that finds nothing would
        delay the commit, and with it the result someone may be waiting
        for), and not within ``max_tasks`` (a claim there is counted before
        it is made)."""
        return self._backlog and self._budget.limit is None

    def _run_batch(self, batch: list[Ticket]) -> None:
        """One transaction for the tickets of a group commit (group_commit.py):
        each record in the order of the runs it locks, then one claim for the
        threads left with nothing to do. If anything fails, it all rolls back:
        each thread records its own outcome again alone, or claims again."""
        records = sorted((t for t in batch if t.record is not None), key=lambda t: t.key)
        more = False

        def steps(tx: Tx) -> None:
            nonlocal more
            finished = [t.finished for t in records if t.finished is not None]
            if records:
                assert len(finished) == len(records)
                outcomes = record_many(tx, finished, self.workflows, self._scheduler)
                for ticket, leased in zip(records, outcomes, strict=True):
                    ticket.leased = leased
                tx.flush()  # what each activation leased
            idle = [t for t in batch if t.wants_work and not t.leased]
            if not idle or self._stopping.is_set():
                return
            # A recovered activity runs alone: only a lone idle thread takes one.
            alone = len(batch) == 1 and not records
            claimed, more = tx.claim_runs(self.task_queue, len(idle),
                                          activities=not self._quarantine.held,
                                          recoveries=alone and self._quarantine.idle())
            # The runs of run tasks are locked already: _do_task activates them.
            tx.prepared.update({("run", t.id): run for t, run in claimed if t.kind == "run"})
            tasks = sorted((t for t, _ in claimed), key=lambda t: (t.job_id, t.run_id))
            for ticket, task in zip(idle, tasks, strict=False):
                try:
                    ticket.leased = self._do_task(tx, task)
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    raise TaskFailed(task.id, exc) from exc
                ticket.claimed = True
            self._backlog = more
            if len(tasks) < len(idle):
                due = tx.next_due(self.task_queue)
                for ticket in idle[len(tasks):]:
                    ticket.next_due, ticket.empty = due, True

        try:
            self._store.run_once(steps, buffered=True)
        except Exception as exc:
            self._log.info("group_commit_redone", tickets=len(batch), error=describe_error(exc))
            for ticket in batch:
                ticket.leased, ticket.claimed, ticket.empty = [], False, False
                ticket.redo = ticket.record is not None
                # A thread that asked for work asks again in a moment.
                ticket.next_due = None if ticket.redo else RECLAIM_DELAY
            if isinstance(exc, TaskFailed):
                self._set_aside(exc.task_id, exc.cause)
            return
        if more:
            self._wakeups.one_more()

    def _flush_heartbeat(self, attempt: StoredAttempt, log: Any) -> None:
        try:
            attempt.flush()
        except Exception as exc:  # the outcome still gets recorded
            log.warning("heartbeat_flush_failed", error=describe_error(exc))

    def _record_outcome(self, task: LeasedActivity,
                        record: Callable[[Tx], list[LeasedActivity]]) -> list[LeasedActivity]:
        """Record an activity's outcome; a failure to do so counts against the
        task (``_set_aside``) instead of leaving it leased until its lease ends."""
        try:
            return self._store.run(record)
        except Exception as exc:
            self._set_aside(task.task_id, exc)
            return []

    def _activity_failed(self, task: LeasedActivity, exc: Exception,
                         log: Any) -> list[LeasedActivity]:
        final, delay = classify_failure(task.payload, exc)
        if final is None:
            retry_payload = dict(task.payload, attempt=int(task.payload["attempt"]) + 1)
            log.warning("activity_retrying", attempt=task.payload["attempt"], delay=delay,
                        error=describe_error(exc))

            def retry(tx: Tx) -> list[LeasedActivity]:
                tx.retry_task(task.task_id, delay, retry_payload, self.task_queue)
                return []

            return self._record_outcome(task, retry)
        log.warning("activity_failed", error_type=(final.error or {}).get("error_type"),
                    final=(final.error or {}).get("type"))

        def record(tx: Tx) -> list[LeasedActivity]:
            return record_and_activate(tx, task.job_id, task.run_id, task.step_key, final,
                                       self.workflows, self._scheduler, task.task_id)

        return self._record_outcome(task, record)

    def _heartbeat_loop(self) -> None:
        """Extend the leases of running activities while this worker lives,
        and keep its row in the workers table fresh."""
        last_seen = time.monotonic()
        while not self._stopping.wait(min(self.lease / 3, WORKER_BEAT)):
            if time.monotonic() - last_seen >= WORKER_BEAT:
                last_seen = time.monotonic()
                self._beat_row()
            ids = self._quarantine.running_ids()
            if not ids:
                continue
            def extend(tx: Tx, ids: list[int] = ids) -> None:
                tx.extend_leases(ids, self.worker_id, self.lease)

            try:
                self._store.run(extend)
            except Exception as exc:
                self._log.error("heartbeat_failed", error=describe_error(exc))


    def _beat_row(self) -> None:
        try:
            if not self._store.run(lambda tx: tx.worker_seen(self.worker_id)):
                self._announce()  # removed as stale after a long pause: back again
        except Exception as exc:
            self._log.error("worker_heartbeat_failed", error=describe_error(exc))

    def _schedule_loop(self) -> None:
        """Start the workflows of the app's due schedule ticks (every worker
        takes part; each tick starts exactly one workflow)."""
        from .schedule_firing import ScheduleFiring

        ScheduleFiring(self._store, self._listener, self.worker_id).run(self._stopping)

    def _maintenance_loop(self) -> None:
        """Purge workflows past their ``expire``, now and then."""
        while not self._stopping.wait(self.maintenance_interval):
            try:
                removed = purge(self._store, None)
                if removed:
                    self._log.info("expired_workflows_purged", count=removed)
                self._store.run(lambda tx: tx.drop_stale_workers(WORKER_STALE))
            except Exception as exc:
                self._log.error("maintenance_failed", error=describe_error(exc))

