"""The shop's tasks of Django's Tasks framework (settings.TASKS: HotMeshBackend)."""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import TaskContext, task
except ImportError:  # Django before 6.0: the backport
    from django_tasks import TaskContext, task


class TaskRefused(Exception):
    pass


@task()
def add(a: int, b: int) -> int:
    return a + b


@task()
def refuse(reason: str) -> None:
    raise TaskRefused(reason)


@task(queue_name="emails", priority=50)
def send_welcome(user_id: int, *, template: str = "welcome") -> dict[str, Any]:
    return {"sent_to": user_id, "template": template}


@task(takes_context=True)
def whoami(context: TaskContext, label: str) -> dict[str, Any]:
    return {"label": label, "id": context.task_result.id, "attempt": context.attempt}


@task()
async def double(value: int) -> int:
    return value * 2


@task(backend="retrying", takes_context=True)
def flaky(context: TaskContext) -> int:
    """Fails its first attempt, succeeds on the second."""
    if context.attempt < 2:
        raise ConnectionError("the mail server hung up")
    return int(context.attempt)
