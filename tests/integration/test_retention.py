"""Retention: purge removes finished workflows whole; expire purges on its own."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, workflow


def stamp(value: int) -> int:
    workflow.entity().set({"value": value})
    workflow.signal("self", value)
    workflow.wait_for("self")
    return value


def blocked() -> None:
    workflow.wait_for("never")


def rows(mf: MemFlow, table: str) -> int:
    with psycopg.connect(mf.dsn) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(mf.schema), sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])


def age_all(mf: MemFlow, seconds: int) -> None:
    with psycopg.connect(mf.dsn) as conn:
        conn.execute(sql.SQL(
            "UPDATE {}.jobs SET completed_at = completed_at - make_interval(secs => %s)"
        ).format(sql.Identifier(mf.schema)), [seconds])


def test_purge_removes_only_old_finished_workflows_and_all_their_rows(
        mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[stamp, blocked])
    for i in range(5):
        mf.workflow.execute(stamp, [i], workflow_id=f"done-{i}", timeout=30)
    mf.workflow.start(blocked, workflow_id="still-running")
    assert mf.purge(older_than="7 days") == 0
    age_all(mf, 8 * 86400)
    assert mf.purge(older_than="7 days", batch=2) == 5
    assert [r["id"] for r in mf.workflow.list()] == ["still-running"]
    assert rows(mf, "steps") == rows(mf, "history") == rows(mf, "signals") == 0
    assert rows(mf, "runs") == 1


def test_expire_purges_a_finished_workflow_by_itself(mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[stamp], maintenance_interval=0.5)
    mf.workflow.execute(stamp, [1], workflow_id="short-lived", expire="1s", timeout=30)
    mf.workflow.execute(stamp, [2], workflow_id="kept", timeout=30)
    deadline = time.monotonic() + 20
    while any(r["id"] == "short-lived" for r in mf.workflow.list()):
        assert time.monotonic() < deadline, "the expired workflow was never purged"
        time.sleep(0.2)
    assert [r["id"] for r in mf.workflow.list()] == ["kept"]


def test_purge_rejects_bad_input(mf: MemFlow) -> None:
    with pytest.raises(ValueError):
        mf.purge(older_than="soon")
    with pytest.raises(ValueError):
        mf.purge(batch=0)
