"""Fixtures for tests that work on the store directly: a provisioned app schema,
a connection and a pool on it, and job rows inserted by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from hotmesh_sync.store.queries import render
from hotmesh_sync.store.schema import provision


@pytest.fixture
def entity_schema(pg_dsn: str, app_id: str) -> str:
    """The provisioned schema of ``app_id`` (dropped by ``app_id`` afterwards)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        provision(conn, app_id)
    return app_id


@pytest.fixture
def entity_conn(pg_dsn: str, entity_schema: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def entity_pool(pg_dsn: str, entity_schema: str) -> Iterator[ConnectionPool[Any]]:
    """A pool of ten connections to the test database."""
    with ConnectionPool(pg_dsn, min_size=1, max_size=10, open=True) as pool:
        yield pool


JobMaker = Callable[..., str]


def insert_job(
    conn: psycopg.Connection[Any],
    schema: str,
    job_id: str,
    *,
    entity: str | None = "thing",
    context: dict[str, Any] | None = None,
    status: str = "pending",
) -> str:
    """Insert one job row as the core would, with ``context`` as its document."""
    conn.execute(
        render(
            "INSERT INTO {schema}.jobs (id, entity, workflow_name, task_queue, context, status)"
            " VALUES (%s, %s, 'wf', 'default', %s, %s)",
            schema,
        ),
        [job_id, entity, Jsonb(context or {}), status],
    )
    return job_id


@pytest.fixture
def make_job(entity_conn: psycopg.Connection[Any], entity_schema: str) -> JobMaker:
    """``make_job(id, entity=..., context=..., status=...)`` inserts a job row."""

    def make(job_id: str, **options: Any) -> str:
        return insert_job(entity_conn, entity_schema, job_id, **options)

    return make
