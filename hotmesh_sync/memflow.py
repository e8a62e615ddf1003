"""MemFlow: one app's connection to PostgreSQL, and the facades over it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import ConnectionPool

from . import errors
from .client import WorkflowClient
from .durations import Duration, to_seconds
from .embedded import resolve_dsn
from .entity import Entities, Entity, pool_executor
from .listener import Listener
from .log import get_logger
from .store.schema import provision
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


_PASSWORD_IN_URI = re.compile(r"(://[^:/@\s]*:)[^\s\"']*@")
_PASSWORD_OPTION = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def _masked(exc: Exception) -> str:
    """An error's message without a password that libpq quoted from the DSN."""
    return _PASSWORD_OPTION.sub(r"\1***", _PASSWORD_IN_URI.sub(r"\1***@", str(exc)))


class MemFlow:
    """Durable memory and coordinated execution for one app id."""

    def __init__(self, app_id: str, dsn: str, pool_size: int) -> None:
        self.app_id = app_id
        self.schema = schema_for(app_id)
        self.dsn = dsn
        self.pool: ConnectionPool[Any] = ConnectionPool(
            dsn, min_size=1, max_size=max(2, pool_size), open=False,
            kwargs={"autocommit": True}, name=f"hotmesh-{self.schema}")
        self.store = Store(self.pool, self.schema)
        self.listener = Listener(dsn, self.schema)
        self.workflow = WorkflowClient(self)
        self.entities = Entities(self.pool, self.schema)
        self._workers: list[Worker] = []

    @classmethod
    def init(cls, app_id: str = "default", dsn: str | None = None, *,
             pool_size: int = 10) -> MemFlow:
        """Connect (and on first use provision the app's schema)."""
        schema = schema_for(app_id)
        resolved = resolve_dsn(dsn)
        if not isinstance(resolved, str) or "\x00" in resolved:
            # libpq would silently cut the string at a NUL.
            raise errors.ConfigurationError("dsn must be a libpq connection string without NUL")
        # Every failure of the DSN or of the server it names is a ConfigurationError, with
        # the DSN's password masked: psycopg's errors never reach the caller from here.
        try:
            conn = psycopg.connect(resolved, autocommit=True)
        except psycopg.ProgrammingError as exc:  # libpq could not parse the string
            raise errors.ConfigurationError(f"invalid dsn: {_masked(exc)}") from exc
        except psycopg.Error as exc:
            raise errors.ConfigurationError(
                f"cannot connect to PostgreSQL: {_masked(exc)}") from exc
        with conn:
            try:
                version = provision(conn, schema)
            except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege,
                    psycopg.errors.ReservedName) as exc:
                # Lost connection, no right to create the schema, or a name PostgreSQL keeps.
                raise errors.ConfigurationError(
                    f"cannot set up schema {schema!r}: {_masked(exc)}") from exc
        memflow = cls(app_id, resolved, pool_size)
        try:
            memflow.pool.open(wait=True, timeout=30)
        except psycopg.OperationalError as exc:  # PoolTimeout: the server refused the pool
            memflow.close()
            raise errors.ConfigurationError(
                f"cannot connect to PostgreSQL: {_masked(exc)}") from exc
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

    def purge(self, older_than: Duration | None = "7 days", batch: int = 500) -> int:
        """Remove finished workflows (job, runs, steps, history, signals) that ended
        more than ``older_than`` ago, and those past their ``expire``; the count.

        Works in batches of ``batch`` rows, each its own short transaction, so
        no lock is held for long. ``older_than=None`` removes only expired ones.
        """
        return purge(self.store, None if older_than is None else to_seconds(older_than), batch)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self.listener.close()
        self.pool.close()

    def __enter__(self) -> MemFlow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
