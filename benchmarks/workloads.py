"""The workflows and activities the benchmarks run (imported by the worker process too)."""

from __future__ import annotations

from typing import Any

from hotmesh_sync import RetryPolicy, workflow


def step(x: int) -> int:
    """The activity: as cheap as an activity can be, so the engine's cost shows."""
    return x + 1


acts = workflow.proxy_activities(activities=[step], retry=RetryPolicy(maximum_attempts=3))


def one_step(x: int) -> int:
    return int(acts.step(x))


def three_steps(x: int) -> int:
    return int(acts.step(acts.step(acts.step(x))))


def chain(n: int) -> int:
    """N sequential activity steps: every activation replays all before it."""
    x = 0
    for _ in range(n):
        x = acts.step(x)
    return x


def entity_loop(n: int) -> Any:
    """N entity increments inside one workflow."""
    memory = workflow.entity()
    value: Any = 0
    for _ in range(n):
        value = memory.increment("n")
    return value


def bump_hook(i: int) -> int:
    """A hook: one increment of the shared entity; its return value is its signal."""
    workflow.entity().increment("hits")
    return i


def fan_out(n: int) -> dict[str, Any]:
    """One coordinator that runs ``n`` hooks in parallel and waits for them all."""
    results = workflow.exec_hook_batch(
        [{"key": str(i), "workflow_name": "bump_hook", "args": [i]} for i in range(n)])
    return {"hooks": len(results), "hits": workflow.entity().get("hits")}


def backlog_item(i: int) -> int:
    """``now()`` records the moment of the first activation; then one activity."""
    workflow.now()
    return int(acts.step(i))


WORKFLOWS = [one_step, three_steps, chain, entity_loop, bump_hook, fan_out, backlog_item]
ACTIVITIES = [step]
