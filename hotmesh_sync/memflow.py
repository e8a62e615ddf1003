"""MemFlow: one app's connection to PostgreSQL, and the facades over it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import errors
from .client import WorkflowClient
from .durations import Duration, to_seconds
from .embedded import resolve_dsn
from .entity import Entities, Entity, pool_executor
from .log import get_logger
from .queues import Queues
from .schedules import Schedules
from .settings import Settings
from .store.connect import Pool, make_pool, open_pool, provision_schema
from .store.listener import listener_for
from .store.store import Store, purge
from .workflow.registry import FunctionSet

if TYPE_CHECKING:
    from .worker import Worker

_log = get_logger("hotmesh_sync")
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,48}")
#: Schemas PostgreSQL keeps for itself (and ``pg_*``): no app may live there.
_RESERVED_SCHEMAS = frozenset({"public", "information_schema"})


def schema_for(app_id: str) -> str:
    """The PostgreSQL schema of an app id: lower case, '-' becomes '_'.

    Two app ids with one schema (``Shop`` and ``shop``) are one tenant.
    ConfigurationError for anything but 1 to 48 letters, digits, '-' or '_',
    and for an app id whose schema PostgreSQL reserves (``public``,
    ``information_schema``, ``pg_*``).
    """
    # fullmatch: with match and "$", "abc\n" would pass ("$" matches before a final newline).
    if not isinstance(app_id, str) or not _APP_ID.fullmatch(app_id):
        raise errors.ConfigurationError(
            f"app_id {app_id!r} must be 1 to 48 letters, digits, '-' or '_'")
    schema = app_id.lower().replace("-", "_")
    if schema in _RESERVED_SCHEMAS or schema.startswith("pg_"):
        raise errors.ConfigurationError(
            f"app_id {app_id!r} maps to schema {schema!r}, which PostgreSQL reserves"
            " (public, information_schema, pg_*); choose another app id")
    return schema


class MemFlow:
    """Durable memory and coordinated execution for one app id."""

    def __init__(self, app_id: str, dsn: str, pool_size: int) -> None:
        self.app_id = app_id
        self.schema = schema_for(app_id)
        self.dsn = dsn
        settings = Settings.from_env()
        self.pool: Pool = make_pool(dsn, max(2, pool_size), f"hotmesh-{self.schema}",
                                    pgbouncer=settings.pgbouncer)
        self.store = Store(self.pool, self.schema)
        self.listener = listener_for(dsn, self.schema, settings)
        self.workflow = WorkflowClient(self)
        self.queues = Queues(self)
        self.entities = Entities(self.pool, self.schema)
        #: Cron schedules that start workflows (API.md §12).
        self.schedules = Schedules(self)
        self._workers: list[Worker] = []

    @classmethod
    def init(cls, app_id: str = "default", dsn: str | None = None, *,
             pool_size: int = 10) -> MemFlow:
        """Connect (and on first use provision the app's schema)."""
        schema = schema_for(app_id)
        resolved = resolve_dsn(dsn)
        version = provision_schema(resolved, schema)
        memflow = cls(app_id, resolved, pool_size)
        try:
            open_pool(memflow.pool)
        except errors.ConfigurationError:
            memflow.close()
            raise
        if schema != app_id:
            # Another spelling of the same schema (Shop, shop) is the same tenant.
            _log.info("app_schema", app_id=app_id, schema=schema)
        _log.debug("memflow_ready", app_id=app_id, schema=memflow.schema, version=version)
        return memflow

    def entity(self, workflow_id: str) -> Entity:
        """The entity of a workflow, outside any workflow: commands apply at once."""
        return Entity(workflow_id, pool_executor(self.pool, self.schema, workflow_id))

    def worker(self, task_queue: str, workflows: FunctionSet = None,
               activities: FunctionSet = None, concurrency: int = 8,
               **options: Any) -> Worker:
        """A worker for ``task_queue`` (call start(), run(), or use ``with``)."""
        from .worker import Worker

        worker = Worker(self, task_queue, workflows, activities, concurrency, **options)
        self._workers.append(worker)
        return worker

    def workers(self) -> list[dict[str, Any]]:
        """The live workers of this app (seen within the last minute): id, host,
        pid, task_queues, workflows, activities, started_at, last_seen."""
        from .worker.activation import WORKER_STALE

        return [dict(row, started_at=row["started_at"].isoformat(),
                     last_seen=row["last_seen"].isoformat())
                for row in self.store.fetch_dicts("live_workers", {"stale": WORKER_STALE})]

    def purge(self, older_than: Duration | None = "7 days", batch: int = 500) -> int:
        """Remove finished workflows (job, runs, steps, history, signals) that ended
        more than ``older_than`` ago, and those past their ``expire``; the count.

        Works in batches of ``batch`` rows, each its own short transaction, so
        no lock is held for long. ``older_than=None`` removes only expired ones.
        """
        return purge(self.store, None if older_than is None else to_seconds(older_than), batch)

    def close(self) -> None:
        """Stop this MemFlow's workers, close the LISTEN connection and the pool."""
        for worker in self._workers:
            worker.stop()
        self.listener.close()
        self.pool.close()

    def __enter__(self) -> MemFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
