"""``workflow.start(..., connection=conn)`` with a plain psycopg connection: the workflow
exists only if the caller's transaction commits."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from hotmesh_sync import MemFlow, errors


def ping(value: Any) -> Any:
    return value


@pytest.fixture
def running(mf: MemFlow, worker: Any) -> MemFlow:
    worker("tx", workflows=[ping])
    return mf


def new_id() -> str:
    return f"tx-{uuid.uuid4().hex[:8]}"


def absent(mf: MemFlow, workflow_id: str) -> bool:
    try:
        mf.workflow.get_handle(workflow_id)
    except errors.WorkflowNotFoundError:
        return True
    return False


def test_commit_runs_it(running: MemFlow, pg_dsn: str) -> None:
    """In an explicit transaction: invisible to others until commit, then run."""
    wid = new_id()
    with psycopg.connect(pg_dsn) as conn:
        with conn.transaction():
            running.workflow.start("ping", ["ok"], task_queue="tx", workflow_id=wid,
                                   connection=conn)
            assert absent(running, wid)
        assert running.workflow.get_handle(wid).result(timeout=20) == "ok"


def test_rollback_leaves_nothing(running: MemFlow, pg_dsn: str) -> None:
    """Rolled back: no workflow, and the id is free again."""
    wid = new_id()
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            running.workflow.start("ping", ["lost"], task_queue="tx", workflow_id=wid,
                                   connection=conn)
            raise RuntimeError("the caller's work failed")
        assert absent(running, wid)
    assert running.workflow.start("ping", ["again"], task_queue="tx",
                                  workflow_id=wid).result(timeout=20) == "again"


@pytest.mark.parametrize("statement_first", [True, False])
def test_implicit_transaction(running: MemFlow, pg_dsn: str, statement_first: bool) -> None:
    """A non-autocommit connection's implicit transaction decides, whether or not a
    statement ran before the start: rollback() drops the start, commit() keeps it."""
    dropped, kept = new_id(), new_id()
    with psycopg.connect(pg_dsn) as conn:
        for wid in (dropped, kept):
            if statement_first:
                conn.execute("SELECT 1")
            running.workflow.start("ping", [wid], task_queue="tx", workflow_id=wid,
                                   connection=conn)
            assert absent(running, wid)
            if wid == dropped:
                conn.rollback()
            else:
                conn.commit()
    assert absent(running, dropped)
    assert running.workflow.get_handle(kept).result(timeout=20) == kept


def test_autocommit_connection_commits_at_once(running: MemFlow, pg_dsn: str) -> None:
    """On an autocommit connection there is no caller transaction: the start is its own."""
    wid = new_id()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        running.workflow.start("ping", [1], task_queue="tx", workflow_id=wid, connection=conn)
        assert not absent(running, wid)
    assert running.workflow.get_handle(wid).result(timeout=20) == 1
