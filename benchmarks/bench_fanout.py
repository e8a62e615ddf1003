"""6. Fan-out: one coordinator runs N hooks with exec_hook_batch; each increments
the shared entity and signals back.

Every hook's signal wakes the coordinator, which replays its whole history
(N hook starts, N waits) to take the next result. From the database's own
timestamps: when the last hook had finished, and when the coordinator did.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from . import workloads
from .harness import QUEUE, RunContext, fresh_app, rate
from .results import Outcome
from .worker_process import WorkerProcess


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("fanout", "6. fan-out (exec_hook_batch, each hook increments the entity)")
    n = ctx.sizes.fanout_hooks
    with fresh_app(ctx.dsn, "fanout") as mf, \
            WorkerProcess(ctx.dsn, mf.app_id, profile_to=ctx.profile_path("fanout")):
        mf.workflow.execute(workloads.fan_out, [2], task_queue=QUEUE, timeout=ctx.sizes.timeout)
        began = time.perf_counter()
        handle = mf.workflow.start(workloads.fan_out, [n], task_queue=QUEUE)
        result = handle.result(timeout=ctx.sizes.timeout)
        elapsed = time.perf_counter() - began
        if result != {"hooks": n, "hits": n}:
            raise RuntimeError(f"fan_out({n}) returned {result!r}")
        hooks_done, coordinator_done = finish_times(ctx.dsn, mf.schema, handle.workflow_id)
    outcome.add("hooks_per_s", f"{n} hooks: start -> result", rate(n, elapsed), "hooks/s")
    outcome.add("hooks_done_s", "last hook finished, after the start", hooks_done, "s")
    outcome.add("coordinator_done_s", "coordinator finished, after the start",
                coordinator_done, "s")
    outcome.unit = ("hook", n + 2)
    return outcome


def finish_times(dsn: str, schema: str, workflow_id: str) -> tuple[float | None, float | None]:
    """Seconds from the workflow's creation to its last hook's end, and to its own end."""
    query = sql.SQL(
        "SELECT extract(epoch FROM max(r.updated_at) - j.created_at),"
        "       extract(epoch FROM j.completed_at - j.created_at)"
        " FROM {schema}.jobs j JOIN {schema}.runs r ON r.job_id = j.id AND r.run_id <> ''"
        " WHERE j.id = %s GROUP BY j.created_at, j.completed_at"
    ).format(schema=sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, [workflow_id]).fetchone()
    if row is None:
        return None, None
    return float(row[0]), float(row[1])
