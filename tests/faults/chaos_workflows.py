"""Workflows for the fault tests, served by `hotmesh-sync worker` subprocesses.

Activities write a row per call to an outside table (``$CHAOS_TABLE``), so a
test can tell how often each one really ran.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from psycopg import sql

from hotmesh_sync import RetryPolicy, workflow


def write_row(workflow_id: str, step: int) -> int:
    schema, table = os.environ["CHAOS_TABLE"].split(".")
    with psycopg.connect(os.environ["CHAOS_DSN"], autocommit=True) as conn:
        conn.execute(sql.SQL("INSERT INTO {}.{} (workflow_id, step) VALUES (%s, %s)").format(
            sql.Identifier(schema), sql.Identifier(table)), [workflow_id, step])
    time.sleep(float(os.environ.get("CHAOS_ACTIVITY_SECONDS", "0.05")))
    return step


def run_long(seconds: float) -> str:
    """An activity that outlives its lease several times over."""
    write_row("long", 0)
    time.sleep(seconds)
    return "finished"


def crash_worker() -> str:
    """Kills the process that runs it: a poison activity."""
    write_row("poison", 0)
    os._exit(17)


_acts = workflow.proxy_activities(
    activities=[write_row, run_long, crash_worker],
    retry=RetryPolicy(maximum_attempts=10, initial_interval="100ms", maximum_interval="1s"))


def chaos_flow(n: int) -> dict[str, Any]:
    me = workflow.info().workflow_id
    entity = workflow.entity()
    entity.set({"n": n, "count": 0, "log": []})
    _acts.write_row(me, 1)
    entity.increment("count")
    entity.append("log", "a1")
    _acts.write_row(me, 2)
    entity.increment("count")
    entity.append("log", "a2")
    workflow.sleep_for("200ms")
    workflow.exec_hook(chaos_hook, args=[n])
    _acts.write_row(me, 3)
    entity.increment("count")
    entity.append("log", "a3")
    return entity.get()  # type: ignore[no-any-return]


def chaos_hook(n: int) -> int:
    entity = workflow.entity()
    entity.increment("hooked")
    entity.append("log", "h")
    return n


def long_flow(seconds: float) -> str:
    return _acts.run_long(seconds)  # type: ignore[no-any-return]


def poison_flow() -> str:
    return _acts.crash_worker()  # type: ignore[no-any-return]


def quick_flow(n: int) -> int:
    _acts.write_row(f"quick-{n}", n)
    return n


def expected_document(n: int) -> dict[str, Any]:
    """What one clean run of chaos_flow(n) leaves in its entity."""
    return {"n": n, "count": 3, "log": ["a1", "a2", "h", "a3"], "hooked": 1}


def slow_write(key: str, seconds: float) -> str:
    write_row(key, 0)
    time.sleep(seconds)
    return key


_slow = workflow.proxy_activities(activities=[slow_write],
                                  retry=RetryPolicy(maximum_attempts=3))


def duplicate_flow(key: str, seconds: float) -> dict[str, Any]:
    got = _slow.slow_write(key, seconds)
    entity = workflow.entity()
    entity.increment("applied")
    entity.append("seen", got)
    return entity.get()  # type: ignore[no-any-return]
