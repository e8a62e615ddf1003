"""5. Replay scaling: one workflow of N sequential activity steps, for growing N.

A coordinator is re-run from the top after each step, so activation k
replays k recorded steps: unless something keeps that cheap, the time per
step grows with N. Two figures per N:

- time per step: start -> result over N (what a user sees; for small N the
  fixed cost of starting and finishing a workflow weighs in);
- step time at the end: the median gap between consecutive steps' own
  timestamps over the last tenth of the run (at least 9 gaps), the marginal
  cost of one more step once the history is N long. The target holds this one.

A small N is run several times (until ~100 steps), its figures pooled: one
10-step run gives 9 gaps, too few to be a baseline on a noisy machine. For
the largest N, commits per step count what one more step costs the database.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from psycopg import sql

from . import workloads
from .harness import (
    QUEUE,
    STATS_FLUSH,
    CommitCounter,
    RunContext,
    fresh_app,
    ratio,
)
from .results import Outcome
from .worker_process import WorkerProcess

#: A small N is repeated until about this many steps were taken.
MIN_STEPS = 100


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("replay", "5. replay scaling (one workflow of N sequential steps)")
    sizes = ctx.sizes.replay_steps
    largest, smallest = max(sizes), min(sizes)
    per_step: dict[int, float] = {}
    end_gap: dict[int, float] = {}
    with fresh_app(ctx.dsn, "replay") as mf, CommitCounter(ctx.dsn) as counter, \
            WorkerProcess(ctx.dsn, mf.app_id, profile_to=ctx.profile_path("replay")):
        mf.workflow.execute(workloads.chain, [3], task_queue=QUEUE, timeout=ctx.sizes.timeout)
        for n in sizes:
            repeats = max(1, MIN_STEPS // n)
            times: list[float] = []
            gaps: list[float] = []
            time.sleep(STATS_FLUSH)
            before = counter.snapshot()
            for _ in range(repeats):
                began = time.perf_counter()
                handle = mf.workflow.start(workloads.chain, [n], task_queue=QUEUE)
                if handle.result(timeout=ctx.sizes.timeout) != n:
                    raise RuntimeError(f"chain({n}) returned a wrong value")
                times.append((time.perf_counter() - began) / n)
                gaps += gaps_at_end(ctx.dsn, mf.schema, handle.workflow_id)
                counter.own += 1  # gaps_at_end's query
            time.sleep(STATS_FLUSH)
            commits, _ = counter.delta(before, counter.snapshot())
            per_step[n] = statistics.median(times)
            end_gap[n] = statistics.median(gaps)
            runs = f"N={n:,}" + (f" (x{repeats})" if repeats > 1 else "")
            outcome.add(f"n{n}_ms_per_step", f"{runs}: time per step (start -> result / N)",
                        1000 * per_step[n], "ms")
            outcome.add(f"n{n}_end_gap_ms", f"{runs}: step time at the end (median gap)",
                        end_gap[n], "ms")
            if n == largest:  # idle polls and the client's reads swamp small runs
                outcome.add(f"n{n}_commits_per_step", f"N={n:,}: commits per step",
                            commits / n, "commits")
    outcome.add("growth", f"time per step, N={largest:,} / N={smallest}",
                ratio(per_step[largest], per_step[smallest]), "x")
    outcome.add("end_gap_growth", f"step time at the end, N={largest:,} / N={smallest}",
                ratio(end_gap[largest], end_gap[smallest]), "x")
    outcome.unit = ("step", sum(max(n, MIN_STEPS) for n in sizes) + 3)
    return outcome


def gaps_at_end(dsn: str, schema: str, workflow_id: str) -> list[float]:
    """Milliseconds between consecutive steps over the run's last tenth (at least 9)."""
    query = sql.SQL(
        "SELECT extract(epoch FROM created_at) FROM {}.steps"
        " WHERE job_id = %s AND run_id = '' ORDER BY seq").format(sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True) as conn:
        times = [float(row[0]) for row in conn.execute(query, [workflow_id])]
    gaps = [1000 * (b - a) for a, b in zip(times, times[1:], strict=False)]
    return gaps[-max(9, len(gaps) // 10):]
