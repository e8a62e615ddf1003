"""9. Flow control: what a queue's limits cost the claim.

The same drain as the throughput benchmark (3-step workflows, one worker
process of 8 threads), three times on fresh apps: without limits, with a
concurrency limit far above what the worker can run (so it never binds),
and with a rate limit far above the rate reached. The limited runs claim
their activities through the limited claim (the queue's row lock, a count
of running leases, a token), so the ratio of their throughput to the
unlimited run's is the price of enforcing limits in the database; the ratio
of the unlimited run to the throughput benchmark's figure is context (two
drains on a shared machine differ by some percent on their own).
"""

from __future__ import annotations

from .bench_throughput import STEPS, drain
from .harness import QUEUE, RunContext, fresh_app, rate, ratio
from .results import Outcome

#: Limits no drain of one 8-thread worker reaches: they cost, never bind.
SLACK_CONCURRENCY = 1_000
SLACK_RATE = "100000/second"


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("flow", "9. flow control (same drain: no limits, then limits that "
                              "never bind)")
    count = ctx.sizes.throughput_workflows
    figures: dict[str, float | None] = {}
    for label, limits in (("none", {}), ("concurrency", {"concurrency": SLACK_CONCURRENCY}),
                          ("rate", {"rate_limit": SLACK_RATE})):
        with fresh_app(ctx.dsn, f"flow-{label}") as mf:
            if limits:
                mf.queues.configure(QUEUE, **limits)
            result = drain(mf, count, ctx.sizes.timeout)
        figures[label] = rate(count * STEPS, result.seconds)
        outcome.add(f"{label}_steps_per_s", f"activity steps/s, limits: {label}",
                    figures[label], "steps/s")
    outcome.add("concurrency_vs_none", "steps/s with a concurrency limit / without",
                ratio(figures["concurrency"], figures["none"]), "x")
    outcome.add("rate_vs_none", "steps/s with a rate limit / without",
                ratio(figures["rate"], figures["none"]), "x")
    outcome.unit = ("workflow", count)
    return outcome
