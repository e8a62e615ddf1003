"""A transactional activity's writes under kill -9: exactly once.

The worker process is killed after the function returned and its step was
recorded, but before the transaction committed. Neither the row nor the step
may survive; a new worker runs the activity again and the workflow ends with
exactly one row.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow

from .conftest import WorkerProcesses
from .transactional_workflows import ledger_flow

pytestmark = pytest.mark.slow

MODULE = "tests.faults.transactional_workflows"


def ledger_rows(mf: MemFlow, order_id: str) -> list[tuple[int, int]]:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        return conn.execute(sql.SQL(
            "SELECT id, amount FROM {}.ledger WHERE order_id = %s").format(
                sql.Identifier(mf.schema)), [order_id]).fetchall()


def test_kill_9_before_the_commit_loses_writes_and_step_together(
        mf: MemFlow, workers: WorkerProcesses, tmp_path: Path) -> None:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE {}.ledger (id bigserial PRIMARY KEY, order_id text NOT NULL, "
            "amount int NOT NULL)").format(sql.Identifier(mf.schema)))
    marker = tmp_path / "activated"
    first = workers.start(queue="ledger", lease=1.0, module=MODULE)
    handle = mf.workflow.start(ledger_flow, [f"{mf.schema}.ledger", "o-1", 250, str(marker)],
                               task_queue="ledger")
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the workflow never reached its activation"
        assert first.poll() is None, "the worker died before the activation"
        time.sleep(0.02)
    # The function has returned and its step is recorded, uncommitted: kill -9.
    assert marker.read_text() == str(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert ledger_rows(mf, "o-1") == []
    assert [s for s in handle.steps() if s["kind"] == "activity"] == []

    workers.start(queue="ledger", lease=1.0, module=MODULE)
    result = handle.result(timeout=60)
    [(row_id, amount)] = ledger_rows(mf, "o-1")  # exactly one row
    assert result == {"order_id": "o-1", "amount": 250, "row_id": row_id}
    assert amount == 250
    assert [s["name"] for s in handle.steps() if s["kind"] == "activity"] == ["post_ledger"]
