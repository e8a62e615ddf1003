"""3. Latency: sequential start -> result round trips of a 1-step and a 3-step workflow.

The harness (the client) and the worker (8 threads) are separate processes, as
in production: a round trip is the client's start commit, the worker's wake-up
on NOTIFY, each step's commit, and the client's wake-up on the completion
NOTIFY. A few round trips first warm both up and are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hotmesh_sync import MemFlow

from . import workloads
from .harness import QUEUE, RunContext, fresh_app, percentile
from .results import Outcome
from .worker_process import WorkerProcess

WARMUP = 5


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("latency", "3. latency (sequential start -> result)")
    n = ctx.sizes.latency_round_trips
    with fresh_app(ctx.dsn, "latency") as mf, \
            WorkerProcess(ctx.dsn, mf.app_id, profile_to=ctx.profile_path("latency")):
        for label, fn in (("one_step", workloads.one_step), ("three_step", workloads.three_steps)):
            samples = round_trips(mf, fn, n, ctx.sizes.timeout)
            outcome.add(f"{label}_p50_ms", f"{label.replace('_', '-')} p50",
                        1000 * percentile(samples, 0.5), "ms")
            outcome.add(f"{label}_p99_ms", f"{label.replace('_', '-')} p99",
                        1000 * percentile(samples, 0.99), "ms")
    outcome.unit = ("round trip", 2 * (n + WARMUP))
    return outcome


def round_trips(mf: MemFlow, fn: Callable[..., Any], n: int, timeout: float) -> list[float]:
    """Seconds of each of ``n`` sequential executions of ``fn`` (after a warm-up)."""
    samples = []
    for i in range(WARMUP + n):
        began = time.perf_counter()
        mf.workflow.execute(fn, [i], task_queue=QUEUE, timeout=timeout)
        if i >= WARMUP:
            samples.append(time.perf_counter() - began)
    return samples
