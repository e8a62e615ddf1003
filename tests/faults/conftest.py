"""Worker subprocesses and an outside effects table for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcesses:
    """Starts and kills `hotmesh-sync worker` processes for one app."""

    def __init__(self, dsn: str, app_id: str, table: str, log_dir: Path) -> None:
        self.dsn, self.app_id, self.table, self.log_dir = dsn, app_id, table, log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, queue: str = "chaos", concurrency: int = 4, lease: float = 2.0,
              extra_env: dict[str, str] | None = None,
              module: str = "tests.faults.chaos_workflows") -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), CHAOS_DSN=self.dsn,
                   CHAOS_TABLE=self.table, HOTMESH_LEASE_SECONDS=str(lease),
                   **(extra_env or {}))
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotmesh_sync", "worker", module,
             "--task-queue", queue, "--concurrency", str(concurrency),
             "--dsn", self.dsn, "--app-id", self.app_id, "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def effects(mf: MemFlow) -> str:
    """An outside table the activities write to: `schema.effects`."""
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE {}.effects (workflow_id text, step int, at timestamptz DEFAULT now())"
        ).format(sql.Identifier(mf.schema)))
    return f"{mf.schema}.effects"


@pytest.fixture
def workers(mf: MemFlow, effects: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    procs = WorkerProcesses(mf.dsn, mf.app_id, effects, tmp_path)
    yield procs
    procs.stop_all()


def effect_counts(mf: MemFlow) -> dict[tuple[str, int], int]:
    with psycopg.connect(mf.dsn) as conn:
        rows: list[Any] = conn.execute(sql.SQL(
            "SELECT workflow_id, step, count(*) FROM {}.effects GROUP BY 1, 2").format(
                sql.Identifier(mf.schema))).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}
