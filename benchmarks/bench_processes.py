"""Worker processes: durable steps/s with 1, 2 and 4 worker processes on one PostgreSQL.

For each N a fresh app gets a backlog of 3-step workflows, then
``hotmesh-sync worker benchmarks.workloads --processes N --concurrency 8``
drains it: the real supervisor and its spawned children (N = 1 is the plain
single-process worker). The rate counts from the moment all N workers have
registered to the last completion, and only the workflows completed in that
window, so the children's start-up (an interpreter each) is left out.

Beside each rate, to show which side runs out first: CPU of the worker
processes (supervisor and children) and of every postgres process on this
machine, as cores busy over the window; the machine's busy cores; and
commits (``pg_stat_database.xact_commit`` of this database) per step and per
second. When the speed-up stops while PostgreSQL's cores or commits/s stop
growing with CPU to spare, PostgreSQL is the limit; when the machine is
busy on every core, the cores are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from hotmesh_sync import MemFlow

from . import workloads
from .harness import (
    QUEUE,
    CommitCounter,
    RunContext,
    fresh_app,
    last_completion,
    rate,
    ratio,
    wait_until_finished,
)
from .results import Outcome

PROCESSES = (1, 2, 4)
STEPS = 3
CONCURRENCY = 8
REPO = Path(__file__).resolve().parents[1]
#: Seconds the worker processes may take to register, and to drain on SIGTERM.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Window:
    """One drain by N processes, over the window described in the module doc."""

    processes: int
    steps_per_s: float | None
    python_cores: float
    postgres_cores: float
    busy_cores: float
    commits_per_s: float | None
    commits_per_step: float | None
    exit_status: int | None


def _cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process of ``pids``."""
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:  # gone between the listing and the look
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _tree(pid: int) -> list[int]:
    root = psutil.Process(pid)
    return [pid, *(child.pid for child in root.children(recursive=True))]


def _postgres_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def _busy() -> float:
    machine = psutil.cpu_times()
    return float(sum(machine) - machine.idle - getattr(machine, "iowait", 0.0))


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two samples, of processes in the second (new ones in full)."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def _completed(dsn: str, schema: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {}.jobs WHERE status = 'completed'").format(
        sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _await_workers(mf: MemFlow, processes: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while len([w for w in mf.workers() if QUEUE in w["task_queues"]]) < processes:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{processes} worker processes did not start "
                               f"(exit status {proc.poll()})")
        time.sleep(0.05)


def drain(dsn: str, processes: int, count: int, timeout: float) -> Window:
    """Queue ``count`` 3-step workflows, then time ``--processes N`` draining them."""
    with fresh_app(dsn, f"procs{processes}") as mf, CommitCounter(dsn) as counter:
        for i in range(count):
            mf.workflow.start(workloads.three_steps, [i], task_queue=QUEUE)
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotmesh_sync", "worker", "benchmarks.workloads",
             "--task-queue", QUEUE, "--concurrency", str(CONCURRENCY),
             "--processes", str(processes), "--dsn", dsn, "--app-id", mf.app_id,
             "--log-level", "warning"], cwd=str(REPO), stdout=subprocess.DEVNULL)
        try:
            _await_workers(mf, processes, proc)
            began_wall, done_before = time.time(), _completed(dsn, mf.schema)
            workers = _tree(proc.pid)
            python_before, postgres_before = _cpu(workers), _cpu(_postgres_pids())
            busy_before, commits_before = _busy(), counter.snapshot()
            counter.own = wait_until_finished(dsn, mf.schema, count, timeout)
            commits_after = counter.snapshot()
            python_after, postgres_after = _cpu(_tree(proc.pid)), _cpu(_postgres_pids())
            busy_after = _busy()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                status: int | None = proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                status = None
        window = last_completion(dsn, mf.schema) - began_wall
        steps = (count - done_before) * STEPS
        wall = commits_after.at - commits_before.at
        commits, _ = counter.delta(commits_before, commits_after)
    return Window(
        processes=processes,
        steps_per_s=rate(steps, window),
        python_cores=_spent(python_before, python_after) / wall,
        postgres_cores=_spent(postgres_before, postgres_after) / wall,
        busy_cores=(busy_after - busy_before) / wall,
        commits_per_s=rate(max(0, commits), wall),
        commits_per_step=ratio(max(0, commits), steps) if steps else None,
        exit_status=status,
    )


def run(ctx: RunContext) -> Outcome:
    counts = ", ".join(map(str, PROCESSES))
    outcome = Outcome("processes", f"processes: durable steps/s with {counts} worker "
                                   f"processes x {CONCURRENCY} threads")
    count = ctx.sizes.throughput_workflows * 4  # a backlog that outlasts the start-up
    windows = [drain(ctx.dsn, n, count, ctx.sizes.timeout) for n in PROCESSES]
    base = windows[0].steps_per_s
    for w in windows:
        n = w.processes
        outcome.add(f"p{n}_steps_per_s", f"{n} process(es): durable activity steps/s",
                    w.steps_per_s, "steps/s")
        outcome.add(f"p{n}_speedup", f"{n} process(es): steps/s vs 1 process",
                    ratio(w.steps_per_s, base), "x")
        outcome.add(f"p{n}_python_cores", f"{n} process(es): worker processes' CPU",
                    w.python_cores, "cores")
        outcome.add(f"p{n}_postgres_cores", f"{n} process(es): PostgreSQL CPU (all backends)",
                    w.postgres_cores, "cores")
        outcome.add(f"p{n}_busy_cores", f"{n} process(es): machine busy (of {os.cpu_count()})",
                    w.busy_cores, "cores")
        outcome.add(f"p{n}_commits_per_s", f"{n} process(es): commits/s (this database)",
                    w.commits_per_s, "commits/s")
        outcome.add(f"p{n}_commits_per_step", f"{n} process(es): commits per step",
                    w.commits_per_step, "commits")
        if w.exit_status != 0:
            outcome.notes.append(f"--processes {n} exited with status {w.exit_status} on "
                                 "SIGTERM (expected 0)")
    outcome.notes.append(saturation(windows))
    outcome.unit = ("step", count * STEPS * len(PROCESSES))
    return outcome


def saturation(windows: list[Window]) -> str:
    """Where adding processes stopped paying, and which side was busy then."""
    cpus = os.cpu_count() or 1
    previous = windows[0]
    for w in windows[1:]:
        gain = ratio(w.steps_per_s, previous.steps_per_s)
        if gain is not None and gain < 1.15:
            side = ("the machine's cores are saturated" if w.busy_cores >= 0.85 * cpus
                    else "CPU to spare: PostgreSQL's commit/lock path is the limit")
            return (f"steps/s stop growing from {previous.processes} to {w.processes} processes "
                    f"(x{gain:.2f}): {side} (machine busy {w.busy_cores:.2f} of {cpus} cores; "
                    f"postgres {w.postgres_cores:.2f}, python {w.python_cores:.2f} cores; "
                    f"{w.commits_per_s or 0:.0f} commits/s)")
        previous = w
    last = windows[-1]
    return (f"steps/s still grow at {last.processes} processes: machine busy "
            f"{last.busy_cores:.2f} of {cpus} cores, postgres {last.postgres_cores:.2f}, python "
            f"{last.python_cores:.2f} cores")
