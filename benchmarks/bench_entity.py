"""4. Entity commands: increments inside one workflow, and from outside one.

Inside a workflow each command is a recorded step of the activation's
transaction (savepoint, UPDATE, history row, step row), so a loop of N
increments commits once. From outside, ``mf.entity(id).increment`` is one
transaction per command. Both are set against the 1-connection commit rate.
The in-workflow loop is also run at a tenth of the size: when the cost of a
command grows with the number before it in the same transaction, the two
rates differ.
"""

from __future__ import annotations

import time

from .harness import QUEUE, RunContext, fresh_app, rate
from .results import Outcome
from .worker_process import WorkerProcess


def entity_available() -> str | None:
    """Why the entity benchmark cannot run, or None when it can."""
    try:
        from hotmesh_sync import MemFlow, workflow
        from hotmesh_sync.entity import Entity  # noqa: F401
    except ImportError as exc:
        return f"hotmesh_sync.entity is not importable yet ({exc})"
    if not hasattr(MemFlow, "entity") or not hasattr(workflow, "entity"):
        return "MemFlow.entity / workflow.entity are not there yet"
    return None


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("entity", "4. entity increments")
    missing = entity_available()
    if missing is not None:
        outcome.skipped = missing
        return outcome
    from . import workloads

    n = ctx.sizes.entity_commands
    with fresh_app(ctx.dsn, "entity") as mf, \
            WorkerProcess(ctx.dsn, mf.app_id, profile_to=ctx.profile_path("entity")):
        mf.workflow.execute(workloads.entity_loop, [3], task_queue=QUEUE,
                            timeout=ctx.sizes.timeout)  # warm-up
        small = max(1, n // 10)
        began = time.perf_counter()
        mf.workflow.execute(workloads.entity_loop, [small], task_queue=QUEUE,
                            timeout=ctx.sizes.timeout)
        inside_small = time.perf_counter() - began
        began = time.perf_counter()
        handle = mf.workflow.start(workloads.entity_loop, [n], task_queue=QUEUE)
        value = handle.result(timeout=ctx.sizes.timeout)
        inside = time.perf_counter() - began
        if value != n:
            raise RuntimeError(f"entity_loop({n}) returned {value!r}")

        memory = mf.entity(handle.workflow_id)
        for _ in range(5):  # warm-up
            memory.increment("outside")
        began = time.perf_counter()
        for _ in range(n):
            memory.increment("outside")
        outside = time.perf_counter() - began
        if memory.get("outside") != n + 5:
            raise RuntimeError("outside increments were lost")

    outcome.add("in_workflow_per_s", f"{n:,} increments in one workflow (start -> result)",
                rate(n, inside), "cmds/s")
    outcome.add("in_workflow_small_per_s", f"{small:,} increments in one workflow",
                rate(small, inside_small), "cmds/s")
    outcome.add("outside_per_s", f"{n:,} mf.entity(id).increment calls, 1 thread",
                rate(n, outside), "cmds/s")
    outcome.unit = ("in-workflow increment", n + small + 3)
    return outcome
