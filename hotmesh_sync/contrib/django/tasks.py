"""A backend for Django's Tasks framework: each enqueued task is a durable workflow.

``django.tasks`` on Django 6.0 and newer, the ``django-tasks`` backport (0.12 or
newer) before::

    TASKS = {
        "default": {
            "BACKEND": "hotmesh_sync.contrib.django.tasks.HotMeshBackend",
            "QUEUES": ["default", "emails"],   # each is a hotmesh task queue of that name
            "OPTIONS": {"DATABASE": "default", "MAX_ATTEMPTS": 1},   # both optional
        }
    }

``send_welcome.enqueue(user_id=7)`` starts the workflow ``django_task`` (defined
here) in the transaction of the ``DATABASE`` connection, so that the task
exists only if the request's transaction commits. Its id is the TaskResult's
id; ``queue_name`` is its task queue, ``priority`` its priority (both read
"higher first"), and ``run_after`` delays its first activation. The workflow
runs the task function as one activity (``MAX_ATTEMPTS`` attempts, one by
default: Django's tasks are not retried unless asked). ``manage.py
hotmesh_worker --task-queue <queue>`` runs them; one worker serves one queue.

What Django's TaskResult reports and the job row does not keep (when each
attempt began, on which worker, the exception of each failed attempt) each
attempt writes into the workflow's entity document: ``started_at``,
``last_attempted_at``, ``worker_ids``, ``errors``.
"""

from __future__ import annotations

import builtins
import functools
import os
import socket
import traceback
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone as django_timezone
from django.utils.module_loading import import_string

from ... import activity, errors, workflow
from ...client import WorkflowHandle
from ...log import get_logger
from ...memflow import MemFlow
from ...names import check_name
from ...records import MAX_MESSAGE, describe_error, safe_text
from ...retry import RetryPolicy
from . import get_memflow
from .conf import _POSTGRES_ENGINES

# Django 6 has the framework built in; before it, the backport has the same
# API under another package (and calls one exception InvalidTaskError).
try:
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:
    try:
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import (
            Task,
            TaskContext,
            TaskError,
            TaskResult,
            TaskResultStatus,
        )
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as exc:
        raise ImportError(
            "hotmesh_sync.contrib.django.tasks needs Django's Tasks framework: Django 6.0 "
            "or newer, or the django-tasks backport (pip install 'hotmesh-sync[django-tasks]')"
        ) from exc

__all__ = ["HotMeshBackend", "InvalidTask", "TaskResultDoesNotExist", "django_task",
           "run_django_task", "worker_functions"]

_log = get_logger("hotmesh_sync.django.tasks")

_OPTIONS = {"DATABASE", "MAX_ATTEMPTS"}
#: The workflow every task runs as (what ``get_result`` recognises as a task).
WORKFLOW_NAME = "django_task"


class HotMeshBackend(BaseTaskBackend):  # type: ignore[misc,unused-ignore]
    """Django's Tasks framework on hotmesh_sync: durable, transactional, deferrable."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options: Any = self.options
        if not isinstance(options, Mapping) or set(options) - _OPTIONS:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS'] must be a dict with keys among {sorted(_OPTIONS)}")
        self.database: str = options.get("DATABASE", DEFAULT_DB_ALIAS)
        database = settings.DATABASES.get(self.database)
        if database is None or database.get("ENGINE") not in _POSTGRES_ENGINES:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['DATABASE'] must name a PostgreSQL database of "
                f"DATABASES (the one of settings.HOTMESH); {self.database!r} is not one")
        attempts = options.get("MAX_ATTEMPTS", 1)
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['MAX_ATTEMPTS'] must be a positive integer")
        self.max_attempts: int = attempts
        for queue in self.queues:
            try:
                check_name(queue, "queue name")
            except ValueError as exc:  # a queue name is a hotmesh task queue
                raise ImproperlyConfigured(f"TASKS[{alias!r}]['QUEUES']: {exc}") from exc

    @property
    def memflow(self) -> MemFlow:
        """The project's MemFlow (``settings.HOTMESH``)."""
        return get_memflow()

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Start the task's workflow in the transaction of the ``DATABASE``
        connection; a TaskResult that is READY. Arguments that are not JSON
        raise TypeError (or ValueError) before anything is written."""
        self.validate_task(task)
        enqueued_at = django_timezone.now()
        # TaskResult normalises args and kwargs the framework's way (tuples
        # become lists), and refuses what is not JSON with TypeError.
        result = TaskResult(
            task=task, id=uuid.uuid4().hex, status=TaskResultStatus.READY,
            enqueued_at=enqueued_at, started_at=None, finished_at=None,
            last_attempted_at=None, args=args, kwargs=kwargs, backend=self.alias,
            errors=[], worker_ids=[])
        run_after = None if task.run_after is None else _as_utc(task.run_after)
        spec = {
            "task": task.module_path, "args": result.args, "kwargs": result.kwargs,
            "backend": self.alias, "queue_name": task.queue_name, "priority": task.priority,
            "run_after": None if run_after is None else run_after.isoformat(),
            "enqueued_at": _as_utc(enqueued_at).isoformat(),
            "max_attempts": self.max_attempts,
        }
        delay = (0.0 if run_after is None
                 else max(0.0, (run_after - datetime.now(timezone.utc)).total_seconds()))
        connection = connections[self.database]
        self.memflow.workflow.start(
            django_task, [spec], task_queue=task.queue_name, workflow_id=result.id,
            priority=task.priority, start_delay=delay, connection=connection)
        # The framework's signal says the task exists: only once it does.
        transaction.on_commit(functools.partial(task_enqueued.send, type(self),
                                                task_result=result), using=self.database)
        return result

    def get_result(self, result_id: str) -> Any:
        """The task's TaskResult as its workflow stands now; TaskResultDoesNotExist
        when no task of this backend has that id."""
        try:
            row = WorkflowHandle(self.memflow, result_id).describe()
        except errors.WorkflowNotFoundError:
            raise TaskResultDoesNotExist(result_id) from None
        spec = _spec_of(row)
        if spec is None or spec.get("backend") != self.alias:
            raise TaskResultDoesNotExist(result_id)
        return _result(_task_of(spec), result_id, spec, row)


def worker_functions() -> dict[str, Any]:
    """What a worker registers to run the tasks (``manage.py hotmesh_worker`` does)."""
    return {WORKFLOW_NAME: django_task, "run_django_task": run_django_task}


# --- the worker side ------------------------------------------------------------------


def django_task(spec: dict[str, Any]) -> Any:
    """The workflow of one task: wait for ``run_after``, then run the function
    (as often as ``max_attempts`` allows while it fails)."""
    if spec.get("run_after") is not None:
        # The first activation was delayed from the enqueuing transaction's
        # start, which may be long before its commit: never run early.
        early = (datetime.fromisoformat(spec["run_after"]) - workflow.now()).total_seconds()
        if early > 0:
            workflow.sleep_for(early)
    return _attempts(int(spec.get("max_attempts") or 1)).run_django_task(spec)


@functools.cache
def _attempts(maximum: int) -> Any:
    return workflow.proxy_activities(activities=[run_django_task],
                                     retry=RetryPolicy(maximum_attempts=maximum))


def run_django_task(spec: dict[str, Any]) -> Any:
    """One attempt of the task: call its function, return its JSON result.

    The attempt is noted in the entity first and its exception after, for
    ``get_result``; the exception is raised again, so the retry policy and the
    workflow see it as they see any activity's.
    """
    info = activity.info()
    entity = get_memflow().entity(info.workflow_id)
    begun, worker = _now_iso(), _worker_id()
    document = _bookkeep(entity, lambda doc: {
        "started_at": doc.get("started_at") or begun, "last_attempted_at": begun,
        "worker_ids": [*doc.get("worker_ids", []), worker]}) or {
        # Not written down: what this attempt knows of itself still goes to its context.
        "started_at": begun, "last_attempted_at": begun, "worker_ids": [worker] * info.attempt}
    result: Any = None
    try:
        task = _task_of(spec)
        result = _result(task, info.workflow_id, spec, {"status": "running", "context": document})
        _update(result, status=TaskResultStatus.RUNNING)
        task_started.send(type(task.get_backend()), task_result=result)
        args, kwargs = spec["args"], spec["kwargs"]
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        value = normalize_json(value)  # the framework's JSON; a TypeError fails the task
    except BaseException as exc:
        error = {"exception_class_path": _class_path(type(exc)),
                 "traceback": _traceback_text(exc)}
        _bookkeep(entity, lambda doc: {"errors": [*doc.get("errors", []), error]})
        if result is not None:
            _update(result, status=TaskResultStatus.FAILED, finished_at=django_timezone.now(),
                    errors=[*result.errors, _task_error(error)])
            task_finished.send(type(task.get_backend()), task_result=result)
        raise
    _update(result, status=TaskResultStatus.SUCCESSFUL, finished_at=django_timezone.now(),
            _return_value=value)
    task_finished.send(type(task.get_backend()), task_result=result)
    return value


def _traceback_text(exc: BaseException) -> str:
    """The formatted traceback, storable; a long one loses its start, not the
    exception at its end."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_MESSAGE:
        text = f"[{len(text) - MAX_MESSAGE} characters cut]\n{text[-MAX_MESSAGE:]}"
    return safe_text(text, MAX_MESSAGE + 100)


def _worker_id() -> str:
    # Read on each attempt: a process forked after import has another pid.
    return f"{socket.gethostname()}:{os.getpid()}"


def _bookkeep(entity: Any, change: Any) -> dict[str, Any]:
    """Merge ``change(document)`` into the entity; the document after it.

    A failure here is logged, not raised: the task's own outcome matters more
    than the record of when it began.
    """
    try:
        document = entity.get() or {}
        return dict(entity.merge(change(document)))
    except Exception as exc:
        _log.warning("django_task_bookkeeping_failed", workflow_id=entity.workflow_id,
                     error=describe_error(exc))
        return {}


# --- TaskResults from workflows ------------------------------------------------------


def _spec_of(row: Mapping[str, Any]) -> dict[str, Any] | None:
    args = row.get("args")
    if row.get("workflow_name") != WORKFLOW_NAME or not isinstance(args, list) or not args:
        return None
    return args[0] if isinstance(args[0], dict) else None


def _task_of(spec: Mapping[str, Any]) -> Any:
    """The Task the spec names, with the options it was enqueued with.

    Imported by its path, as Django itself rebuilds a pickled Task.
    """
    found = import_string(spec["task"])
    if not isinstance(found, Task):
        raise TypeError(f"{spec['task']!r} is not a task of Django's Tasks framework")
    run_after = spec.get("run_after")
    return found.using(priority=spec["priority"], queue_name=spec["queue_name"],
                       backend=spec["backend"],
                       run_after=None if run_after is None
                       else _django_time(datetime.fromisoformat(run_after)))


def _result(task: Any, result_id: str, spec: Mapping[str, Any],
            row: Mapping[str, Any]) -> Any:
    """The TaskResult of a task whose workflow row (or what is known of it) is ``row``."""
    context = row.get("context")
    doc: dict[str, Any] = context if isinstance(context, dict) else {}
    worker_ids = [str(w) for w in doc.get("worker_ids", [])]
    task_errors = [_task_error(e) for e in doc.get("errors", []) if isinstance(e, dict)]
    status = row["status"]
    if status == "completed":
        state = TaskResultStatus.SUCCESSFUL
    elif status in ("failed", "interrupted"):
        state = TaskResultStatus.FAILED
        failure = row.get("error") or {}
        if not _recorded(failure, task_errors):
            task_errors.append(_error_of_row(failure))
    elif len(worker_ids) > len(task_errors):
        state = TaskResultStatus.RUNNING  # an attempt has begun and not failed
    else:
        state = TaskResultStatus.READY  # not begun yet, or waiting to be retried
    result = TaskResult(
        task=task, id=result_id, status=state,
        enqueued_at=_django_time(datetime.fromisoformat(spec["enqueued_at"])),
        started_at=_parsed(doc.get("started_at")),
        finished_at=(None if row.get("completed_at") is None
                     else _django_time(row["completed_at"])),
        last_attempted_at=_parsed(doc.get("last_attempted_at")),
        args=spec["args"], kwargs=spec["kwargs"], backend=spec["backend"],
        errors=task_errors, worker_ids=worker_ids)
    if state == TaskResultStatus.SUCCESSFUL:
        _update(result, _return_value=row.get("result"))
    return result


def _recorded(failure: Mapping[str, Any], task_errors: list[Any]) -> bool:
    """Whether the workflow failed with the error its last attempt recorded
    (and not, say, interrupted, or timed out, after it)."""
    if not task_errors:
        return False
    name = str(task_errors[-1].exception_class_path).rpartition(".")[2]
    return failure.get("error_type") == name


def _error_of_row(failure: Mapping[str, Any]) -> Any:
    """A TaskError for a failure no attempt recorded (an interrupt, a timeout,
    a lost worker): the workflow's stored error."""
    kind = str(failure.get("error_type") or "WorkflowFailedError")
    message = str(failure.get("message") or "")
    lines = [f"{kind}: {message}"]
    lines += [f"caused by {c.get('error_type')}: {c.get('message')}"
              for c in failure.get("causes") or [] if isinstance(c, dict)]
    return TaskError(exception_class_path=_path_of_name(kind), traceback="\n".join(lines))


def _path_of_name(kind: str) -> str:
    """An importable path for a stored error's class name, where one is known."""
    if "." in kind:
        return kind
    if isinstance(getattr(errors, kind, None), type):
        return f"hotmesh_sync.errors.{kind}"
    if isinstance(getattr(builtins, kind, None), type):
        return f"builtins.{kind}"
    return kind


def _task_error(data: Mapping[str, Any]) -> Any:
    return TaskError(exception_class_path=str(data.get("exception_class_path", "")),
                     traceback=str(data.get("traceback", "")))


def _update(result: Any, **values: Any) -> None:
    # TaskResult is frozen: the framework's own backends set fields this way.
    for name, value in values.items():
        object.__setattr__(result, name, value)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (a naive one is in Django's current time zone)."""
    if django_timezone.is_naive(moment):
        moment = django_timezone.make_aware(moment)
    return moment.astimezone(timezone.utc)


def _django_time(moment: datetime) -> datetime:
    """A datetime the way Django hands them out: aware with USE_TZ, else naive local."""
    if settings.USE_TZ:
        return moment.astimezone(timezone.utc)
    naive: datetime = django_timezone.make_naive(moment)
    return naive


def _parsed(text: Any) -> datetime | None:
    return _django_time(datetime.fromisoformat(text)) if isinstance(text, str) else None
