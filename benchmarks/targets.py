"""The goals the figures are held against, each a ratio of two figures of one run."""

from __future__ import annotations

from dataclasses import dataclass

from .harness import ratio
from .results import Outcome, format_value


@dataclass(frozen=True)
class Target:
    """``numerator / denominator`` (or ``numerator`` alone) compared with ``limit``."""

    label: str
    numerator: str              # "benchmark.metric"
    denominator: str | None
    at_least: bool              # True: measured >= limit passes; False: measured <= limit
    limit: float
    unit: str = "x"


@dataclass(frozen=True)
class Verdict:
    target: Target
    measured: float | None
    status: str                 # "PASS", "MISS" or "n/a"

    @property
    def goal(self) -> str:
        sign = "≥" if self.target.at_least else "≤"
        return f"{sign} {format_value(self.target.limit)} {self.target.unit}".strip()

    @property
    def shown(self) -> str:
        return f"{format_value(self.measured)} {self.target.unit}".strip()


TARGETS = [
    Target("throughput vs DBOS (best of its two)", "dbos.hotmesh_workflows_per_s",
           "dbos.best_workflows_per_s", True, 3.0),
    Target("durable steps/s vs 8-thread commit limit", "throughput.steps_per_s",
           "commit_limit.t8_commits_per_s", True, 0.5),
    Target("commits per activity step", "throughput.commits_per_step", None, False, 0.5,
           "commits"),
    Target("1-step p50 latency", "latency.one_step_p50_ms", None, False, 10.0, "ms"),
    Target("3-step p50 vs DBOS 3-step p50", "dbos.hotmesh_three_steps_p50_ms",
           "dbos.three_steps_p50_ms", False, 0.6),
    Target("entity-in-workflow vs 1-connection commit rate", "entity.in_workflow_per_s",
           "commit_limit.t1_commits_per_s", True, 0.7),
    Target("replay step time at the end, largest N vs N=10", "replay.end_gap_growth", None,
           False, 2.0),
    Target("backlog worker RSS peak", "backlog.rss_peak_mb", None, False, 200.0, "MB"),
    Target("in-process throughput vs DBOS called directly", "inprocess.workflows_per_s",
           "inprocess.dbos_workflows_per_s", True, 3.0),
    Target("in-process 3-step p50 vs DBOS direct p50", "inprocess.three_steps_p50_ms",
           "inprocess.dbos_three_steps_p50_ms", False, 0.6),
    Target("in-process 3-step p99 vs DBOS direct p99", "inprocess.three_steps_p99_ms",
           "inprocess.dbos_three_steps_p99_ms", False, 1.0),
    Target("backlog claim statement, drained vs full", "backlog.claim_exec_growth", None, False,
           1.5),
]


def evaluate(outcomes: list[Outcome]) -> list[Verdict]:
    """A verdict for every target; "n/a" where a figure it needs was not measured."""
    values: dict[str, float | None] = {
        f"{o.name}.{m.key}": m.value for o in outcomes for m in o.metrics}
    verdicts = []
    for target in TARGETS:
        measured = values.get(target.numerator)
        if target.denominator is not None:
            measured = ratio(measured, values.get(target.denominator))
        if measured is None:
            status = "n/a"
        elif target.at_least:
            status = "PASS" if measured >= target.limit else "MISS"
        else:
            status = "PASS" if measured <= target.limit else "MISS"
        verdicts.append(Verdict(target, measured, status))
    return verdicts
