"""2. Throughput: workflows of three sequential activity steps through one worker.

The harness starts the workflows one after another (one commit each, as an
application would), then starts one worker process with 8 threads and waits
for all to end. Throughput is the worker's: from the moment it started to
the last workflow's ``completed_at``, so the client's own speed does not cap
it (DBOS's queue is measured the same way).

Commits are the change of ``pg_stat_database.xact_commit`` from before the
first start to after the worker process has exited (so its counters are
flushed): starts, claims, step records, idle polls, everything. Writing
transactions (cluster-wide transaction ids) are reported beside: read-only
transactions count as commits but never wait for a WAL flush. CPU seconds of
the worker process and of all PostgreSQL processes show which side is busy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from hotmesh_sync import MemFlow

from . import workloads
from .harness import (
    QUEUE,
    STATS_FLUSH,
    CommitCounter,
    CommitSnapshot,
    CpuMeter,
    RunContext,
    fresh_app,
    last_completion,
    rate,
    ratio,
    wait_until_finished,
)
from .results import Outcome
from .worker_process import WorkerProcess

STEPS = 3


@dataclass(frozen=True)
class Drain:
    """One throughput measurement."""

    workflows_per_s: float | None
    starts_per_s: float | None
    seconds: float               # worker start to last completion
    cpu: dict[str, float]        # CpuMeter.report over the drain
    queries: int                 # completion polls the harness made
    #: The commit counter's reading once the starts were counted (with a counter).
    after_starts: CommitSnapshot | None = None


def drain(mf: MemFlow, count: int, timeout: float, profile_to: Path | None = None,
          counter: CommitCounter | None = None) -> Drain:
    """Start ``count`` 3-step workflows on ``mf``'s app, then time one fresh
    worker draining them.

    The starts go through a client of their own, closed once they are made:
    a backend that committed within the last second flushes its counters only
    when it ends (or after 10 s idle), so closing it makes every start count
    before the worker begins (``after_starts``, with a ``counter``).
    """
    began = time.perf_counter()
    with MemFlow.init(mf.app_id, mf.dsn, pool_size=1) as client:
        for i in range(count):
            client.workflow.start(workloads.three_steps, [i], task_queue=QUEUE)
    starting = time.perf_counter() - began
    after_starts = None
    if counter is not None:
        time.sleep(STATS_FLUSH)
        after_starts = counter.snapshot()
        counter.own += 1
    worker = WorkerProcess(mf.dsn, mf.app_id, concurrency=8, profile_to=profile_to).start()
    meter = CpuMeter(worker.pid)
    cpu_before = meter.sample()
    try:
        queries = wait_until_finished(mf.dsn, mf.schema, count, timeout)
        cpu = CpuMeter.report(cpu_before, meter.sample())
    finally:
        worker.stop()
    seconds = last_completion(mf.dsn, mf.schema) - worker.started_wall
    return Drain(rate(count, seconds), rate(count, starting), seconds, cpu, queries + 1,
                 after_starts)


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("throughput", "2. throughput (3-step workflows, 1 worker x 8 threads)")
    count = ctx.sizes.throughput_workflows
    with fresh_app(ctx.dsn, "throughput") as mf, CommitCounter(ctx.dsn) as counter:
        background = counter.background_rate(1.0 if ctx.quick else 2.0)
        before = counter.snapshot()
        result = drain(mf, count, ctx.sizes.timeout, ctx.profile_path("throughput"), counter)
        counter.own += result.queries
        time.sleep(STATS_FLUSH)  # the harness's own pool connections flush their counters
        after = counter.snapshot()
        commits, writes = counter.delta(before, after)
        assert result.after_starts is not None
        start_commits = result.after_starts.commits - before.commits - 1

    steps = count * STEPS
    corrected = max(0.0, commits - background * (after.at - before.at))
    # The worker's: all less the starts (one commit each, however the worker does).
    worker_commits = max(0.0, corrected - start_commits)
    outcome.add("workflows_per_s", "workflows/s", result.workflows_per_s, "wf/s")
    outcome.add("steps_per_s", "durable activity steps/s", rate(steps, result.seconds),
                "steps/s")
    outcome.add("client_starts_per_s", "client start() calls/s (1 thread)",
                result.starts_per_s, "starts/s")
    outcome.add("commits_per_workflow", "commits per workflow, starts included",
                corrected / count, "commits")
    outcome.add("worker_commits_per_workflow", "the worker's commits per workflow",
                worker_commits / count, "commits")
    outcome.add("all_commits_per_step", "commits per activity step, starts included",
                corrected / steps, "commits")
    outcome.add("commits_per_step", "the worker's commits per activity step",
                worker_commits / steps, "commits")
    outcome.add("raw_commits_per_workflow", "commits per workflow (raw xact_commit delta)",
                commits / count, "commits")
    outcome.add("write_xids_per_workflow", "writing transactions per workflow (cluster xids)",
                writes / count, "xids")
    outcome.add("background_commits_per_s", "background commits/s in this database",
                background, "commits/s")
    outcome.add("window_s", "drain time (worker start to last completion)", result.seconds, "s")
    outcome.add("worker_cpu_ms_per_workflow", "worker process CPU per workflow",
                1000 * result.cpu["process_s"] / count, "ms")
    outcome.add("postgres_cpu_ms_per_workflow", "PostgreSQL CPU per workflow (all backends)",
                1000 * result.cpu["postgres_s"] / count, "ms")
    outcome.add("busy_cores", f"machine CPU busy during the drain (of {psutil.cpu_count()})",
                result.cpu["busy_cores"], "cores")
    share = ratio(background * (after.at - before.at), commits)
    if share is not None and share > 0.05:
        outcome.notes.append(
            f"other traffic made ~{100 * share:.0f}% of the commits counted: run on a database "
            "of its own for exact commit counts")
    outcome.unit = ("workflow", count)
    return outcome
