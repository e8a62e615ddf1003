"""Django integration: ``INSTALLED_APPS = [..., "hotmesh_sync.contrib.django"]``.

Settings (every key optional)::

    HOTMESH = {
        "APP_ID": "shop",                  # default "default"
        "WORKFLOWS": ["shop.workflows"],   # modules whose public functions the worker runs
        "TASK_QUEUE": "default",
        "CONCURRENCY": 8,
        "POOL_SIZE": 10,
        "DSN": None,                       # default: the database of DATABASES["default"]
    }

``from hotmesh_sync.contrib.django import memflow`` gives the configured
MemFlow; it connects on first use, not at import. To start a workflow only if
the surrounding transaction commits::

    with transaction.atomic():
        order = Order.objects.create(...)
        memflow.workflow.start("fulfil", [order.pk], connection=django.db.connection)

Commands: ``manage.py hotmesh_worker`` and ``manage.py hotmesh_migrate``.
"""

from __future__ import annotations

from typing import cast

from ...memflow import MemFlow
from .conf import HotMeshSettings, dsn_from_database, load_settings
from .lazy import LazyMemFlow

__all__ = ["HotMeshSettings", "LazyMemFlow", "dsn_from_database", "get_memflow",
           "load_settings", "memflow"]


def _create() -> MemFlow:
    conf = load_settings()
    return MemFlow.init(app_id=conf.app_id, dsn=conf.dsn, pool_size=conf.pool_size)


_lazy = LazyMemFlow(_create)

#: The project's MemFlow (a proxy until first used; typed as the real thing).
memflow = cast(MemFlow, _lazy)


def get_memflow() -> MemFlow:
    """The project's MemFlow itself (connecting now if it has not yet)."""
    return _lazy.get()
