"""How big each benchmark is: the full run, and the quick smoke check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """The workload sizes of one run."""

    commit_seconds: float           # how long each commit-limit measurement lasts
    throughput_workflows: int       # 3-step workflows started for the throughput run
    latency_round_trips: int        # sequential start -> result round trips per workflow
    entity_commands: int            # increments inside one workflow, and again from outside
    replay_steps: tuple[int, ...]   # N of the one-workflow-of-N-steps runs
    fanout_hooks: int               # hooks one coordinator runs with exec_hook_batch
    backlog_workflows: int          # workflows queued before the worker starts
    dbos_workflows: int             # DBOS workflows for each of its throughput runs
    dbos_round_trips: int           # DBOS sequential round trips per workflow
    inprocess_workflows: int        # 3-step workflows started, then awaited, in one process
    inprocess_round_trips: int      # in-process sequential round trips (over all rounds)
    timeout: float                  # seconds any one wait may take before it is a failure
    retention_workflows: int = 1_000_000  # finished workflows loaded for the purge measurement
    dashboard_workflows: int = 100_000  # workflows under the dashboard's page queries


FULL = Sizes(
    commit_seconds=3.0,
    throughput_workflows=500,
    latency_round_trips=200,
    entity_commands=2_000,
    replay_steps=(10, 100, 1_000),
    fanout_hooks=200,
    backlog_workflows=10_000,
    dbos_workflows=500,
    dbos_round_trips=200,
    inprocess_workflows=500,
    inprocess_round_trips=200,
    timeout=600.0,
)

QUICK = Sizes(
    commit_seconds=1.0,
    throughput_workflows=100,
    latency_round_trips=30,
    entity_commands=200,
    replay_steps=(10, 100),
    fanout_hooks=30,
    backlog_workflows=2_000,
    dbos_workflows=100,
    dbos_round_trips=30,
    inprocess_workflows=96,
    inprocess_round_trips=30,
    timeout=120.0,
    retention_workflows=20_000,
    dashboard_workflows=5_000,
)
