"""Django's Tasks framework on HotMeshBackend, in the e2e_shop project: Django 6's
``django.tasks``, or the ``django-tasks`` backport on older Django.

Tasks are enqueued the framework's way (``e2e_shop/tasks.py``) and run by
``manage.py hotmesh_worker`` in this process, stopped by ``--max-tasks`` (each
attempt of a task is one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from importlib.util import find_spec
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, errors

django = pytest.importorskip("django")
if not (find_spec("django.tasks") or find_spec("django_tasks")):
    pytest.skip("Django's Tasks framework needs Django 6 or the django-tasks backport",
                allow_module_level=True)

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test import override_settings  # noqa: E402

UTC = timezone.utc


@pytest.fixture(scope="module")
def project(pg_dsn: str, module_app_id: str) -> Iterator[MemFlow]:
    """The e2e_shop project on this module's app id; yields its MemFlow.

    Django reads its settings once per process (another module may have done
    so first), so the app id is put in place with override_settings."""
    variables = {"E2E_SHOP_DSN": pg_dsn, "E2E_SHOP_APP_ID": module_app_id,
                 "DJANGO_SETTINGS_MODULE": "e2e_shop.settings"}
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    django.setup()
    from django.conf import settings

    from hotmesh_sync.contrib.django import _lazy, get_memflow

    _lazy.close()
    with override_settings(HOTMESH={**settings.HOTMESH, "APP_ID": module_app_id}):
        yield get_memflow()
        _lazy.close()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def shop(project: MemFlow) -> Any:
    """``e2e_shop.tasks``, imported once Django is set up (``@task`` needs settings)."""
    from e2e_shop import tasks

    return tasks


def run_worker(tasks: int, queue: str = "default") -> None:
    """manage.py hotmesh_worker until it has done ``tasks`` tasks (30 s at most)."""
    call_command("hotmesh_worker", "--task-queue", queue, "--max-tasks", str(tasks),
                 "--max-runtime", "30s", "--concurrency", "1")


def job_count(project: MemFlow) -> int:
    with psycopg.connect(project.dsn) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.jobs").format(
            sql.Identifier(project.schema))).fetchone()
    assert row is not None
    return int(row[0])


def test_enqueue_commits_with_the_transaction_and_the_worker_runs_it(
        project: MemFlow, shop: Any) -> None:
    """Enqueued inside atomic(): invisible until commit, then run by the worker;
    refresh() reports SUCCESSFUL with the return value and the times."""
    from hotmesh_sync.contrib.django.tasks import TaskResultDoesNotExist, task_enqueued

    announced: list[str] = []

    def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
        announced.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    try:
        with transaction.atomic():
            result = shop.add.enqueue(2, b=3)
            assert (result.status, result.args, result.kwargs) == ("READY", [2], {"b": 3})
            with pytest.raises(TaskResultDoesNotExist):  # another connection: not yet
                shop.add.get_result(result.id)
            assert announced == []
        assert announced == [result.id]
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert project.workflow.get_handle(result.id).status() == "pending"
    result.refresh()
    assert result.status == "READY" and result.worker_ids == []

    run_worker(1)
    result.refresh()
    assert result.status == "SUCCESSFUL" and result.is_finished
    assert result.return_value == 5 and result.errors == []
    assert result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at == result.last_attempted_at
    assert result.started_at <= result.finished_at
    again = shop.add.get_result(result.id)
    assert (again.id, again.status, again.return_value, again.args) == (
        result.id, "SUCCESSFUL", 5, [2])


def test_rolled_back_enqueue_leaves_nothing(project: MemFlow, shop: Any) -> None:
    from hotmesh_sync.contrib.django.tasks import TaskResultDoesNotExist, task_enqueued

    announced: list[str] = []

    def on_enqueued(sender: Any, task_result: Any, **kwargs: Any) -> None:
        announced.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    before = job_count(project)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            result = shop.add.enqueue(1, 1)
            raise RuntimeError("roll back")
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert announced == []
    assert job_count(project) == before
    with pytest.raises(TaskResultDoesNotExist):
        result.refresh()
    with pytest.raises(errors.WorkflowNotFoundError):
        project.workflow.get_handle(result.id)


def test_context_and_async_tasks(project: MemFlow, shop: Any) -> None:
    """takes_context gets the TaskContext of the attempt; an async task runs too."""
    mine = shop.whoami.enqueue("me")
    doubled = shop.double.enqueue(21)
    run_worker(2)
    mine.refresh()
    doubled.refresh()
    assert mine.return_value == {"label": "me", "id": mine.id, "attempt": 1}
    assert doubled.return_value == 42


def test_failing_task_reports_its_exception(project: MemFlow, shop: Any) -> None:
    result = shop.refuse.enqueue("out of stock")
    run_worker(1)
    result.refresh()
    assert result.status == "FAILED" and result.is_finished
    [error] = result.errors
    assert error.exception_class_path == "e2e_shop.tasks.TaskRefused"
    assert error.exception_class is shop.TaskRefused
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert error.traceback.endswith("e2e_shop.tasks.TaskRefused: out of stock\n")
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018 - the property raises
    row = project.workflow.get_handle(result.id).describe()
    assert (row["status"], row["error"]["error_type"]) == ("failed", "TaskRefused")


def test_max_attempts_retries_and_keeps_each_error(project: MemFlow, shop: Any) -> None:
    """OPTIONS MAX_ATTEMPTS=2: the first attempt's error is kept, the second succeeds."""
    result = shop.flaky.enqueue()
    assert result.backend == "retrying"
    run_worker(2)
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 2, 2)
    [error] = result.errors
    assert error.exception_class is ConnectionError
    assert error.traceback.endswith("ConnectionError: the mail server hung up\n")
    assert result.started_at < result.last_attempted_at


def test_run_after_is_not_run_before(project: MemFlow, shop: Any) -> None:
    run_after = datetime.now(UTC) + timedelta(seconds=1.5)
    result = shop.add.using(run_after=run_after).enqueue(4, 4)
    with psycopg.connect(project.dsn) as conn:
        row = conn.execute(sql.SQL(
            "SELECT run_at - now() FROM {}.tasks WHERE job_id = %s AND kind = 'run'").format(
            sql.Identifier(project.schema)), [result.id]).fetchone()
    assert row is not None and timedelta(0) < row[0] <= timedelta(seconds=1.5)  # not due yet
    result.refresh()
    assert result.status == "READY" and result.task.run_after == run_after

    run_worker(1)
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", 8)
    assert result.started_at >= run_after


def test_queue_name_and_priority_are_the_workflows(project: MemFlow, shop: Any) -> None:
    """queue_name is the workflow's task queue, priority its priority; a worker of
    that queue runs it (here with no HOTMESH['WORKFLOWS']: the tasks alone)."""
    from django.conf import settings

    result = shop.send_welcome.enqueue(7, template="hello")
    row = project.workflow.get_handle(result.id).describe()
    assert (row["task_queue"], row["priority"], row["workflow_name"]) == (
        "emails", 50, "django_task")
    with override_settings(HOTMESH={**settings.HOTMESH, "WORKFLOWS": []}):
        run_worker(1, queue="emails")
    result.refresh()
    assert result.return_value == {"sent_to": 7, "template": "hello"}
    assert (result.task.queue_name, result.task.priority) == ("emails", 50)


def test_higher_priority_runs_first(project: MemFlow, shop: Any) -> None:
    low = shop.add.using(priority=-20).enqueue(1, 0)
    high = shop.add.using(priority=20).enqueue(2, 0)
    assert project.workflow.get_handle(low.id).describe()["priority"] == -20
    run_worker(2)
    low.refresh()
    high.refresh()
    assert (low.return_value, high.return_value) == (1, 2)
    assert high.started_at < low.started_at


def test_interrupted_task_is_failed(project: MemFlow, shop: Any) -> None:
    """A failure no attempt recorded (here an interrupt) is the task's error."""
    result = shop.add.using(run_after=datetime.now(UTC) + timedelta(hours=1)).enqueue(1, 2)
    assert project.workflow.get_handle(result.id).interrupt("no longer wanted")
    result.refresh()
    assert result.status == "FAILED" and result.worker_ids == []
    [error] = result.errors
    assert error.exception_class is errors.WorkflowInterruptedError
    assert error.traceback == "WorkflowInterruptedError: no longer wanted"


def test_unknown_ids_do_not_exist(project: MemFlow, shop: Any) -> None:
    from hotmesh_sync.contrib.django.tasks import HotMeshBackend, TaskResultDoesNotExist

    backend = shop.add.get_backend()
    assert isinstance(backend, HotMeshBackend)
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("no-such-task")
    # A workflow that is not a task is not one of its results either.
    other = project.workflow.start("ping", [1], task_queue="elsewhere")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(other.workflow_id)


@pytest.mark.parametrize("bad", [object(), "nul \x00 inside", float("nan"),
                                 {"when": datetime.now(UTC)}])
def test_non_json_arguments_are_refused_before_anything_is_written(
        project: MemFlow, shop: Any, bad: Any) -> None:
    before = job_count(project)
    with pytest.raises(TypeError):
        shop.add.enqueue(bad, 1)
    with pytest.raises(TypeError):
        shop.add.enqueue(1, b=bad)
    assert job_count(project) == before


def test_invalid_tasks_are_refused(project: MemFlow, shop: Any) -> None:
    from hotmesh_sync.contrib.django.tasks import InvalidTask

    with pytest.raises(InvalidTask, match="Queue 'nowhere' is not valid"):
        shop.add.using(queue_name="nowhere")
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        shop.add.using(priority=101)
