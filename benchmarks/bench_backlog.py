"""7. Backlog: many workflows queued before the worker starts, then drained.

What should not grow with the backlog: the worker's memory (RSS of the
worker process, sampled by psutil) and the cost of a claim.

A claim's cost is measured two ways. The claim statement itself: the median
of 20 ``EXPLAIN (ANALYZE, BUFFERS)`` runs of the worker's claim query (in a
transaction rolled back) with the backlog full and once drained; this is what
the target holds, since it is taken back to back in a second and so is not
swayed by other load. And the drain: the time between consecutive first
activations (each workflow records ``workflow.now()`` in its first activation,
stamped with that transaction's start) in the first tenth of the drain (after
1% of warm-up) and in the last; over a drain of half a minute on a shared
machine this moves with other people's load, so it is context. The queue
wait (creation to first activation) necessarily grows through a drain and is
context too.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from hotmesh_sync import MemFlow
from hotmesh_sync.store.queries import Queries

from . import workloads
from .harness import QUEUE, RunContext, fresh_app, percentile, rate, ratio, wait_until_finished
from .results import Outcome
from .worker_process import WorkerProcess

MB = 1024 * 1024
#: Values for the claim query's parameters when EXPLAINing it (a worker with
#: nothing in quarantine); a parameter not named here is passed as NULL, and noted.
CLAIM_PARAMS: dict[str, Any] = {"task_queue": QUEUE, "activities": True, "recoveries": True}
EXPLAIN_REPEATS = 20


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("backlog", "7. backlog (queued first, then drained by one worker)")
    n = ctx.sizes.backlog_workflows
    with fresh_app(ctx.dsn, "backlog") as mf:
        began = time.perf_counter()
        enqueue(mf, ctx.dsn, n)
        outcome.add("enqueue_per_s", f"{n:,} starts, 4 threads x 250 per transaction",
                    rate(n, time.perf_counter() - began), "starts/s")
        full = explain_claim(ctx.dsn, mf.schema)

        worker = WorkerProcess(ctx.dsn, mf.app_id,
                               profile_to=ctx.profile_path("backlog")).start()
        sampler = RssSampler(worker).start()
        try:
            wait_until_finished(ctx.dsn, mf.schema, n, ctx.sizes.timeout, poll=0.5)
        finally:
            sampler.stop()
            worker.stop()
        drained = explain_claim(ctx.dsn, mf.schema)
        firsts = first_activations(ctx.dsn, mf.schema)

    outcome.add("claim_uses_index", "claim query uses an index (1 = yes)",
                1.0 if full.uses_index else 0.0)
    outcome.notes.append(f"claim plan, backlog full: {full.shape}")
    outcome.notes.append(f"claim plan, drained: {drained.shape}")
    if full.unknown:
        outcome.notes.append(f"claim parameters EXPLAINed as NULL: {', '.join(full.unknown)}")
    outcome.add("claim_exec_full_ms", f"claim statement, {n:,} queued (median of "
                f"{EXPLAIN_REPEATS})", full.exec_ms, "ms")
    outcome.add("claim_exec_drained_ms", "claim statement, drained", drained.exec_ms, "ms")
    outcome.add("claim_exec_growth", "claim statement, drained / full",
                ratio(drained.exec_ms, full.exec_ms), "x")
    outcome.add("claim_buffers_full", f"claim buffers touched, {n:,} queued", full.buffers,
                "pages")
    outcome.add("claim_buffers_drained", "claim buffers touched, drained", drained.buffers,
                "pages")

    start_mb, peak_mb, end_mb = sampler.phases()
    outcome.add("rss_start_mb", "worker RSS, first tenth of the drain", start_mb, "MB")
    outcome.add("rss_end_mb", "worker RSS, last tenth of the drain", end_mb, "MB")
    outcome.add("rss_peak_mb", "worker RSS, peak", peak_mb, "MB")

    window = max(10, n // 10)
    warmup = n // 100
    first = per_claim_ms(firsts[warmup:warmup + window])
    last = per_claim_ms(firsts[-window:])
    drain = firsts[-1][0] - firsts[0][0] if firsts else 0.0
    outcome.add("drain_per_s", "drain rate (first activations/s)", rate(len(firsts), drain),
                "wf/s")
    outcome.add("first_ms_per_claim", f"time per claim, first {window:,}", first, "ms")
    outcome.add("last_ms_per_claim", f"time per claim, last {window:,}", last, "ms")
    outcome.add("claim_gap_growth", "time per claim, last / first", ratio(last, first), "x")
    waits = [activated - created for activated, created in firsts]
    if waits:
        outcome.add("wait_first_p50_s", f"queue wait p50, first {window:,}",
                    percentile(waits[:window], 0.5), "s")
        outcome.add("wait_last_p50_s", f"queue wait p50, last {window:,}",
                    percentile(waits[-window:], 0.5), "s")
    outcome.unit = ("workflow", n)
    return outcome


def enqueue(mf: MemFlow, dsn: str, n: int, threads: int = 4, batch: int = 250) -> None:
    """Start ``n`` backlog workflows through the client, many per transaction."""

    def insert(chunk: range) -> None:
        with psycopg.connect(dsn) as conn, conn.transaction():
            for i in chunk:
                mf.workflow.start(workloads.backlog_item, [i], task_queue=QUEUE, connection=conn)

    chunks = [range(s, min(s + batch, n)) for s in range(0, n, batch)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(insert, chunks))


@dataclass(frozen=True)
class Explained:
    uses_index: bool
    exec_ms: float
    buffers: int            # shared buffers hit or read: the claim's work, free of CPU noise
    shape: str              # e.g. "Limit > LockRows > Index Scan (tasks_queue_due_idx, tasks)"
    unknown: list[str]      # parameters of the query this harness passed as NULL


def explain_claim(dsn: str, schema: str) -> Explained:
    """EXPLAIN ANALYZE the worker's claim query, each time in a transaction rolled back;
    the plan of the first run, the median execution time of all."""
    query = Queries(schema)["claim_task"]
    plans = []
    with psycopg.connect(dsn) as conn:
        names = set(re.findall(r"%\((\w+)\)s", query.as_string(conn)))
        params = {name: CLAIM_PARAMS.get(name) for name in names}
        statement = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query
        for _ in range(EXPLAIN_REPEATS):
            row = conn.execute(statement, params).fetchone()
            conn.rollback()
            assert row is not None
            plans.append(row[0][0])
    plan = plans[0]
    nodes = list(_walk(plan["Plan"]))
    return Explained(
        uses_index=any("Index" in node["Node Type"] for node in nodes),
        exec_ms=statistics.median(float(p["Execution Time"]) for p in plans),
        buffers=int(plan["Plan"].get("Shared Hit Blocks", 0))
        + int(plan["Plan"].get("Shared Read Blocks", 0)),
        shape=" > ".join(_describe(node) for node in nodes),
        unknown=sorted(names - set(CLAIM_PARAMS)),
    )


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def _describe(node: dict[str, Any]) -> str:
    text = str(node["Node Type"])
    details = []
    for field in ("Index Name", "Relation Name"):
        if field in node:
            details.append(str(node[field]))
    removed = node.get("Rows Removed by Filter")
    if removed:
        details.append(f"{removed} rows filtered out")
    if node.get("Parent Relationship") in ("InitPlan", "SubPlan"):
        text = f"[{node['Parent Relationship']}] {text}"
    return f"{text} ({', '.join(details)})" if details else text


def first_activations(dsn: str, schema: str) -> list[tuple[float, float]]:
    """(first activation, creation) epoch seconds of each workflow, by activation."""
    query = sql.SQL(
        "SELECT extract(epoch FROM s.created_at), extract(epoch FROM j.created_at)"
        " FROM {schema}.jobs j JOIN {schema}.steps s"
        "   ON s.job_id = j.id AND s.run_id = '' AND s.step_key = '0'"
        " ORDER BY s.created_at"
    ).format(schema=sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [(float(a), float(c)) for a, c in conn.execute(query)]


def per_claim_ms(window: list[tuple[float, float]]) -> float | None:
    if len(window) < 2:
        return None
    return 1000 * (window[-1][0] - window[0][0]) / (len(window) - 1)


class RssSampler:
    """Samples a worker process's RSS on a thread of its own."""

    def __init__(self, worker: WorkerProcess, interval: float = 0.25) -> None:
        self._worker = worker
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.samples: list[tuple[float, int]] = []

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self._worker.rss_bytes()))
            except Exception:  # the process is gone: nothing more to sample
                return
            self._stop.wait(self._interval)

    def phases(self) -> tuple[float | None, float | None, float | None]:
        """Peak RSS (MB) in the first tenth of the sampled time, overall, in the last tenth."""
        if not self.samples:
            return None, None, None
        began, ended = self.samples[0][0], self.samples[-1][0]
        tenth = (ended - began) / 10
        start = max(rss for at, rss in self.samples if at <= began + tenth)
        end = max(rss for at, rss in self.samples if at >= ended - tenth)
        peak = max(rss for _, rss in self.samples)
        return start / MB, peak / MB, end / MB
