"""Django integration: ``INSTALLED_APPS = [..., "hotmesh_sync.contrib.django"]``.

Settings (every key optional)::

    HOTMESH = {
        "APP_ID": "shop",                  # default "default"
        "WORKFLOWS": ["shop.workflows"],   # modules whose public functions the worker runs
        "TASK_QUEUE": "default",
        "CONCURRENCY": 8,
        "POOL_SIZE": 10,
        "DSN": None,                       # default: the database of DATABASES["default"]
        "SCHEDULES": {                     # id -> mf.schedules.create() keywords
            "nightly-report": {"cron": "0 2 * * *", "workflow_name": "report",
                               "task_queue": "reports", "timezone": "Europe/Berlin"},
        },
    }

``from hotmesh_sync.contrib.django import memflow`` gives the configured
MemFlow; it connects on first use, not at import. To start a workflow only if
the surrounding transaction commits::

    with transaction.atomic():
        order = Order.objects.create(...)
        memflow.workflow.start("fulfil", [order.pk], connection=django.db.connection)

Commands: ``manage.py hotmesh_worker`` and ``manage.py hotmesh_migrate``; both
bring the schedules of ``SCHEDULES`` in line first (``sync_schedules``).

Django's Tasks framework: ``TASKS = {"default": {"BACKEND":
"hotmesh_sync.contrib.django.tasks.HotMeshBackend"}}`` makes each enqueued task
a workflow, and ``manage.py hotmesh_worker`` runs them (see ``.tasks``).
"""

from __future__ import annotations

from typing import cast

from ...memflow import MemFlow
from ...schedules import sync_declared
from .conf import HotMeshSettings, dsn_from_database, load_settings
from .lazy import LazyMemFlow

__all__ = ["HotMeshSettings", "LazyMemFlow", "dsn_from_database", "get_memflow",
           "load_settings", "memflow", "sync_schedules"]


def _create() -> MemFlow:
    conf = load_settings()
    return MemFlow.init(app_id=conf.app_id, dsn=conf.dsn, pool_size=conf.pool_size)


_lazy = LazyMemFlow(_create)

#: The project's MemFlow (a proxy until first used; typed as the real thing).
memflow = cast(MemFlow, _lazy)


def get_memflow() -> MemFlow:
    """The project's MemFlow itself (connecting now if it has not yet)."""
    return _lazy.get()


def sync_schedules() -> dict[str, list[str]]:
    """Bring the app's schedules in line with ``settings.HOTMESH["SCHEDULES"]``
    (see ``hotmesh_sync.schedules.sync_declared``): the ids created, updated
    and deleted. ConfigurationError names a bad declaration."""
    return sync_declared(get_memflow(), load_settings().schedules)
