"""Fixtures shared by every test: a PostgreSQL to test against and a fresh app id per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync.embedded import start_throwaway


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """$HOTMESH_TEST_DSN when set, else a throwaway server that lives as long as the session."""
    configured = os.environ.get("HOTMESH_TEST_DSN")
    if configured:
        yield configured
        return
    with start_throwaway() as server:
        # The package's pytest plugin (its memflow fixture) uses this server too.
        os.environ["HOTMESH_TEST_DSN"] = server.dsn
        try:
            yield server.dsn
        finally:
            del os.environ["HOTMESH_TEST_DSN"]


@pytest.fixture
def app_id(pg_dsn: str) -> Iterator[str]:
    """A unique app id; its schema is dropped after the test."""
    app = f"t_{uuid.uuid4().hex[:12]}"
    yield app
    schema = app.lower().replace("-", "_")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# ---------------------------------------------------------------------------
# More shared fixtures go below this line.
# ---------------------------------------------------------------------------

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from hotmesh_sync import MemFlow  # noqa: E402


@pytest.fixture
def mf(pg_dsn: str, app_id: str) -> Iterator[MemFlow]:
    """A MemFlow on a fresh app schema, closed (with its workers) after the test."""
    memflow = MemFlow.init(app_id=app_id, dsn=pg_dsn, pool_size=6)
    yield memflow
    memflow.close()


@pytest.fixture
def worker(mf: MemFlow) -> Callable[..., Any]:
    """Start a worker on ``mf``: ``worker(queue, workflows, activities, concurrency=4)``.

    Every worker started here is stopped when the test ends (by mf.close)."""

    def start(
        task_queue: str = "default",
        workflows: Any = None,
        activities: Any = None,
        concurrency: int = 4,
        **options: Any,
    ) -> Any:
        options.setdefault("poll_interval", 2.0)
        return mf.worker(
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            concurrency=concurrency,
            **options,
        ).start()

    return start
