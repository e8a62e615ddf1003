"""Workflows for the flow-control tests, served by `hotmesh-sync worker` processes.

Each activity writes when it started and ended to the table named by
$FLOW_TABLE, so the test can measure overlap and rate across processes.
"""

from __future__ import annotations

import os
import time

import psycopg

from hotmesh_sync import workflow


def tracked(name: str, seconds: float) -> str:
    with psycopg.connect(os.environ["FLOW_DSN"], autocommit=True) as conn:
        started = conn.execute(
            f"INSERT INTO {os.environ['FLOW_TABLE']} (name, pid, started_at)"  # noqa: S608
            " VALUES (%s, %s, clock_timestamp()) RETURNING id", [name, os.getpid()]).fetchone()
        time.sleep(seconds)
        assert started is not None
        conn.execute(f"UPDATE {os.environ['FLOW_TABLE']} SET ended_at = clock_timestamp()"  # noqa: S608
                     " WHERE id = %s", [started[0]])
    return name


_acts = workflow.proxy_activities(activities=[tracked], task_queue="limited")


def one_tracked(name: str, seconds: float) -> str:
    return str(_acts.tracked(name, seconds))
