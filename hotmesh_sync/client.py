"""The client: start workflows, signal them, run hooks, list them; and handles."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from . import errors
from .durations import Duration, to_seconds
from .jsonvalue import normalized
from .log import get_logger
from .names import MAX_NAME as MAX_NAME  # re-exported for older imports
from .names import check_name
from .payloads import decode_result, encode, encode_args
from .records import interrupted_error, workflow_failure
from .retry import RetryPolicy
from .store import local
from .store.listener import Listener
from .store.store import (
    TERMINAL,
    Store,
    Tx,
    create_workflow,
    interrupt_workflow,
    jsonb,
    restart_workflow,
    resume_workflow,
    run_on_connection,
    start_hook_run,
)
from .tracing import carrier, span
from .workflow.registry import name_of


class ClientHost(Protocol):
    """What handles and the client work through (a MemFlow is one)."""

    @property
    def store(self) -> Store: ...

    @property
    def listener(self) -> Listener: ...

    @property
    def workflow(self) -> WorkflowClient: ...

_log = get_logger("hotmesh_sync.client")

#: How often a blocked result() re-reads the row even without a notification.
SAFETY_POLL = 5.0


class WorkflowHandle:
    """A started workflow, by id."""

    def __init__(self, memflow: ClientHost, workflow_id: str) -> None:
        self._mf = memflow
        self.workflow_id = workflow_id

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def _row(self) -> dict[str, Any]:
        rows = self._mf.store.fetch_dicts("get_job", {"id": self.workflow_id})
        if not rows:
            raise errors.WorkflowNotFoundError(self.workflow_id)
        return rows[0]

    def status(self) -> str:
        """pending, running, waiting, completed, failed or interrupted."""
        return str(self._row()["status"])

    def state(self) -> dict[str, Any]:
        """The entity document."""
        return dict(self._row()["context"])

    def describe(self) -> dict[str, Any]:
        """The whole job row."""
        return self._row()

    def result(self, timeout: Duration | None = None) -> Any:
        """Block until the workflow ends; its return value, or WorkflowFailedError.

        Waits on a notification, not by polling; ``timeout`` elapsed raises the
        builtin TimeoutError.
        """
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout)
        event = self._mf.listener.watch_done(self.workflow_id)
        schema = self._mf.store.schema
        local.watch_done(schema, self.workflow_id, event)  # a worker in this process
        try:
            while True:
                event.clear()
                rows = self._mf.store.fetch_dicts("get_job_outcome", {"id": self.workflow_id})
                if not rows:
                    raise errors.WorkflowNotFoundError(self.workflow_id)
                row = rows[0]
                if row["status"] == "completed":
                    return row["result"]
                if row["status"] in TERMINAL:
                    raise workflow_failure(row["error"] or {}, self.workflow_id)
                wait = SAFETY_POLL
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"workflow {self.workflow_id!r} did not finish within {timeout}s")
                    wait = min(wait, remaining)
                event.wait(wait)
        finally:
            local.unwatch_done(schema, self.workflow_id, event)
            self._mf.listener.unwatch_done(self.workflow_id, event)

    def signal(self, signal_id: str, data: Any = None) -> int:
        """Send a signal to this workflow, kept until a ``wait_for`` takes it: 1 (0 if it ended)."""
        return self._mf.workflow.signal(signal_id, data, workflow_id=self.workflow_id)

    def wait_until(self, predicate: Callable[[dict[str, Any]], bool],
                   timeout: Duration | None = None) -> dict[str, Any]:
        """Block until the entity document satisfies ``predicate``; the document.

        Woken by a notification on each change of this entity (announced only
        while someone waits on it), with a slow safety re-read; ``timeout``
        elapsed raises the builtin TimeoutError. Instead of polling, or of
        Temporal-style queries: the workflow publishes to its entity.
        """
        if not callable(predicate):
            raise TypeError("predicate must be a function of the entity document")
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout)
        watcher = uuid.uuid4().hex
        event = self._mf.listener.watch_entity(self.workflow_id)
        try:
            # The watcher row makes the database announce this entity's changes.
            self._mf.store.run(lambda tx: tx.add_watcher(self.workflow_id, watcher))
            while True:
                event.clear()
                document = self.state()
                if predicate(document):
                    return document
                wait = SAFETY_POLL
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"the entity of {self.workflow_id!r} did not "
                                           f"satisfy the predicate within {timeout}s")
                    wait = min(wait, remaining)
                event.wait(wait)
        finally:
            self._mf.listener.unwatch_entity(self.workflow_id, event)
            self._mf.store.run(lambda tx: tx.drop_watcher(self.workflow_id, watcher))

    def retry(self) -> bool:
        """Run a failed (or interrupted) workflow again from the step that
        failed: the steps before it stay recorded and are not re-run. False
        when the workflow had not failed (it is running or completed)."""
        done = self._mf.store.run(lambda tx: resume_workflow(tx, self.workflow_id))
        if done:
            _log.info("workflow_resumed", workflow_id=self.workflow_id)
        return done

    def interrupt(self, reason: str | None = None, descend: bool = False,
                  force: bool = False) -> bool:
        """Cancel the workflow (and with ``descend`` its running children).

        Its coordinator gets ``errors.CancelledError`` at the durable call it
        waits on and may clean up (API.md §11); ``force`` ends it at once
        without cleanup. A workflow that has not started yet ends at once.
        False when it had already ended."""
        error = interrupted_error(None if reason is None else str(reason))
        done = interrupt_workflow(self._mf.store, self.workflow_id, error, descend, force)
        if done:
            _log.info("workflow_interrupted", workflow_id=self.workflow_id, reason=reason,
                      force=force)
        return done

    def steps(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """The recorded durable steps of the current run (or of the run
        ``run_id``, from ``runs()``), in the order they were recorded."""
        row = self._row()
        if run_id is None or run_id == row["run_id"]:
            found = self._mf.store.fetch_dicts("list_steps", {"job_id": self.workflow_id})
        else:
            check_name(run_id, "run_id")
            if not any(r["run_id"] == run_id for r in self.runs()):
                raise ValueError(f"workflow {self.workflow_id!r} has no run {run_id!r}")
            found = self._mf.store.fetch_dicts(
                "list_run_steps", {"job_id": self.workflow_id, "run_id": run_id})
        return [
            {"run_id": r["run_id"], "key": r["step_key"], "kind": r["kind"],
             "name": r["name"], "result": r["result"], "error": r["error"],
             "at": r["created_at"].isoformat()}
            for r in found
        ]

    def runs(self) -> list[dict[str, Any]]:
        """Every run of this workflow id, oldest first: ``run_id``, ``status``
        (``continued`` for a run that continued as new), ``started_at``,
        ``ended_at`` (None while it goes) and ``reason`` (how it ended)."""
        rows = self._mf.store.fetch_dicts("list_runs", {"id": self.workflow_id})
        if not rows:
            raise errors.WorkflowNotFoundError(self.workflow_id)
        return [
            {"run_id": r["run_id"], "run_number": r["run_number"], "status": r["status"],
             "started_at": r["started_at"].isoformat(),
             "ended_at": None if r["ended_at"] is None else r["ended_at"].isoformat(),
             "reason": r["reason"]}
            for r in rows
        ]

    def history(self) -> list[dict[str, Any]]:
        """Every version of the entity document as RFC 6902 patches."""
        self._row()
        return self._mf.store.entity_history(self.workflow_id)


def _check_priority(priority: int) -> int:
    """A priority: a whole number that fits PostgreSQL's integer."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError("priority must be a whole number")
    if not -(2**31) <= priority < 2**31:
        raise ValueError("priority must fit in 32 bits")
    return priority


class WorkflowClient:
    """``mf.workflow``: start, execute, signal, hook and list workflows."""

    def __init__(self, memflow: ClientHost) -> None:
        self._mf = memflow

    def start(
        self,
        workflow_name: str | Callable[..., Any],
        args: Sequence[Any] | None = None,
        task_queue: str | None = None,
        workflow_id: str | None = None,
        entity: str | None = None,
        search: Mapping[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        expire: Duration | None = None,
        if_exists: str = "error",
        connection: Any = None,
        run_timeout: Duration | None = None,
        priority: int = 0,
        start_delay: Duration | None = None,
    ) -> WorkflowHandle:
        """Start a workflow; its handle. See API.md §2 and §11 for every option.

        ``if_exists='restart'`` begins a new run of an id whose workflow has
        ended (its entity is kept); a workflow still going raises
        DuplicateWorkflowError. ``run_timeout`` fails a run that lasts longer
        with 596.
        """
        if if_exists not in ("error", "attach", "restart"):
            raise ValueError("if_exists must be 'error', 'attach' or 'restart'")
        if args is not None and not isinstance(args, (list, tuple)):
            raise TypeError("args must be a list or tuple of JSON values")
        spec = {
            "workflow_id": check_name(workflow_id or uuid.uuid4().hex, "workflow_id"),
            "workflow_name": check_name(name_of(workflow_name), "workflow_name"),
            "task_queue": check_name(task_queue or entity or "default", "task_queue"),
            "entity": None if entity is None else check_name(entity, "entity"),
            "args": normalized(encode_args(args or []), "workflow args"),
            "search": normalized(dict(search or {}), "search"),
            "retry": None if retry is None else retry.to_json(),
            "expire_seconds": None if expire is None else to_seconds(expire),
            "run_timeout": None if run_timeout is None else to_seconds(run_timeout),
            "run_id": uuid.uuid4().hex,
            "priority": _check_priority(priority),
            # Its first activation waits this long (Django's run_after, a deferred job).
            "start_delay": None if start_delay is None else to_seconds(start_delay),
        }
        if search is not None and not isinstance(search, Mapping):
            raise TypeError("search must be a dict")

        def work(tx: Tx) -> bool:
            if create_workflow(tx, spec):
                return True
            return if_exists == "restart" and restart_workflow(tx, spec)

        with span("hotmesh.workflow.start", **{
                "hotmesh.workflow_id": spec["workflow_id"],
                "hotmesh.workflow_name": spec["workflow_name"],
                "hotmesh.task_queue": spec["task_queue"]}):
            # Its activations and activities join the trace of whoever started it.
            spec["trace_context"] = carrier()
            if connection is not None:
                created = run_on_connection(self._mf.store, connection, work)
            else:
                created = self._mf.store.run(work)
        if not created and if_exists != "attach":
            raise errors.DuplicateWorkflowError(spec["workflow_id"])
        if created:
            _log.info("workflow_queued", workflow_id=spec["workflow_id"],
                      workflow_name=spec["workflow_name"], task_queue=spec["task_queue"])
        return WorkflowHandle(self._mf, spec["workflow_id"])

    def execute(self, workflow_name: str | Callable[..., Any], args: Sequence[Any] | None = None,
                timeout: Duration | None = None, **options: Any) -> Any:
        """Start a workflow and wait for its result."""
        value = self.start(workflow_name, args, **options).result(timeout=timeout)
        # Given the function itself, its return hint rebuilds the value.
        return decode_result(workflow_name if callable(workflow_name) else None, value)

    def get_handle(self, workflow_id: str) -> WorkflowHandle:
        """The handle of an existing workflow; WorkflowNotFoundError for an unknown id."""
        handle = WorkflowHandle(self._mf, workflow_id)
        handle.status()  # WorkflowNotFoundError for an unknown id
        return handle

    def signal(self, signal_id: str, data: Any = None, workflow_id: str | None = None) -> int:
        """Send a signal; the number of workflows it reached.

        To one workflow it is kept until a wait_for consumes it; without
        ``workflow_id`` it goes to every workflow waiting on it now.
        """
        check_name(signal_id, "signal_id")
        payload = jsonb(normalized(encode(data), "signal data"), "signal data")

        if workflow_id is not None:
            check_name(workflow_id, "workflow_id")

            def one(tx: Tx) -> int:
                status = tx.job_status(workflow_id)
                if status is None or not tx.send_signal(workflow_id, signal_id, payload):
                    raise errors.WorkflowNotFoundError(workflow_id)
                # An ended workflow is not reached: nothing is kept for it.
                return 0 if status in TERMINAL else 1

            return self._mf.store.run(one)

        def broadcast(tx: Tx) -> int:
            reached = 0
            for job_id in tx.waiting_jobs(signal_id):
                if tx.send_signal(job_id, signal_id, payload):
                    reached += 1
            return reached

        return self._mf.store.run(broadcast)

    def hook(self, workflow_id: str, workflow_name: str | Callable[..., Any],
             args: Sequence[Any] | None = None, task_queue: str | None = None,
             signal_id: str | None = None) -> str:
        """Run a hook function against an existing workflow; the hook's run id."""
        check_name(workflow_id, "workflow_id")
        run_id = "hook-" + uuid.uuid4().hex
        spec = {
            "job_id": workflow_id,
            "run_id": run_id,
            "workflow_name": check_name(name_of(workflow_name), "workflow_name"),
            "args": normalized(encode_args(args or []), "hook args"),
            "task_queue": None if task_queue is None else check_name(task_queue, "task_queue"),
            "signal_id": None if signal_id is None else check_name(signal_id, "signal_id"),
        }

        def work(tx: Tx) -> None:
            if spec["task_queue"] is None:
                queue = tx.job_queue(workflow_id)
                if queue is None:
                    raise errors.WorkflowNotFoundError(workflow_id)
                spec["task_queue"] = queue
            start_hook_run(tx, spec)

        self._mf.store.run(work)
        return run_id

    def list(self, entity: str | None = None, status: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        """Workflows, newest first; ``limit`` is an int from 0 to 100,000.

        ValueError for a bad limit, entity or status, before any SQL runs.
        """
        from .entity.finders import check_page

        check_page(limit)
        for value, what in ((entity, "entity"), (status, "status")):
            if value is not None:
                check_name(value, what)
        rows = self._mf.store.fetch_dicts(
            "list_jobs", {"entity": entity, "status": status, "limit": limit})
        return [dict(r, created_at=r["created_at"].isoformat(),
                     updated_at=r["updated_at"].isoformat()) for r in rows]
