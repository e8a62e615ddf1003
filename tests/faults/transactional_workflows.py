"""Workflows for the transactional kill -9 test, served by `hotmesh-sync worker`
subprocesses.

``post_ledger`` writes a row through the connection it is given, in the
transaction that records its step. ``ledger_flow`` runs in that same
transaction right after the step is recorded (its activation): on its first
pass there it leaves a marker file and sleeps, so the test can kill the
process after the function returned and before anything committed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hotmesh_sync import RetryPolicy, workflow


@workflow.transactional
def post_ledger(conn: psycopg.Connection[Any], table: str, order_id: str, amount: int) -> int:
    schema, name = table.split(".")
    row = conn.execute(sql.SQL(
        "INSERT INTO {}.{} (order_id, amount) VALUES (%s, %s) RETURNING id").format(
            sql.Identifier(schema), sql.Identifier(name)), [order_id, amount]).fetchone()
    assert row is not None
    return int(row[0])


_tx = workflow.proxy_activities(
    activities=[post_ledger],
    retry=RetryPolicy(maximum_attempts=5, initial_interval="100ms", maximum_interval="1s"))


def ledger_flow(table: str, order_id: str, amount: int, marker: str) -> dict[str, Any]:
    row_id = _tx.post_ledger(table, order_id, amount)
    # Reached in the activation that shares post_ledger's transaction, before
    # its commit. Only the first time: the marker tells the test it is here.
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        time.sleep(30)  # the test kills this process meanwhile
    return {"order_id": order_id, "amount": amount, "row_id": row_id}
