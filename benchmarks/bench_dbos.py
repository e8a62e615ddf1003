"""8. DBOS Transact side by side: the same workflows, same server, measured in turns.

The machine is shared: load comes and goes within seconds. So this benchmark
measures both engines in alternating rounds and compares medians: each round
first runs hotmesh_sync, then DBOS, on the same sizes.

DBOS keeps its state in a database of its own (``hotmesh_bench_dbos_<random>``,
created by DBOS's launch and dropped here, so that two runs on one server
never share it); its process is spawned like our worker.

- Latency: sequential start -> result round trips of the 1-step and the
  3-step workflow. Ours: client in the harness, worker (8 threads) in its own
  process. DBOS: ``DBOS.start_workflow(...).get_result()`` inside the DBOS
  process, its fastest path (no process hop, no queue).
- Throughput, queue: with both engines stopped, workflows are started
  through each engine's client (one commit each), then the engine is started
  and drains them; timed from the engine's start (ours) or first dequeue
  (DBOS, its own timestamps) to the last completion. DBOS's queue runs 8
  workflows at a time on the executor and is polled every 10 ms (its default
  is 1 s): the equivalent of one worker with 8 threads.
- Throughput, closed loop: 8 threads in the DBOS process each run
  ``start_workflow(...).get_result()`` in turn; DBOS's in-process path.

The throughput target is held against the better of DBOS's two figures.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import workloads
from .bench_latency import round_trips
from .bench_throughput import drain
from .harness import STATS_FLUSH, CommitCounter, CpuMeter, RunContext, fresh_app, percentile
from .results import Outcome
from .worker_process import WorkerProcess

DATABASE_PREFIX = "hotmesh_bench_dbos_"
#: Waits on DBOS are bounded tighter than ours: a stalled DBOS queue should
#: cost a note in the report, not the whole run's time.
DBOS_TIMEOUT = 180.0
LAUNCH_TIMEOUT = 120.0


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("dbos", "8. DBOS Transact side by side (alternating rounds, medians)")
    if importlib.util.find_spec("dbos") is None:
        outcome.skipped = "the dbos package is not installed (pip install dbos)"
        return outcome
    database = DATABASE_PREFIX + uuid.uuid4().hex[:8]
    url = sqlalchemy_url(ctx.dsn, database)
    rounds = 1 if ctx.quick else 3
    try:
        latencies(ctx, outcome, url, rounds)
        throughputs(ctx, outcome, url, make_conninfo(ctx.dsn, dbname=database), rounds)
    finally:
        drop_database(ctx.dsn, database)
    outcome.notes.append(f"{rounds} round(s), each hotmesh_sync first, then DBOS")
    return outcome


def latencies(ctx: RunContext, outcome: Outcome, url: str, rounds: int) -> None:
    n = max(1, ctx.sizes.dbos_round_trips // rounds)
    ours: dict[str, list[float]] = {"one_step": [], "three_steps": []}
    theirs: dict[str, list[float]] = {"one_step": [], "three_steps": []}
    functions = {"one_step": workloads.one_step, "three_steps": workloads.three_steps}
    with fresh_app(ctx.dsn, "vsdbos") as mf, WorkerProcess(ctx.dsn, mf.app_id), \
            running_dbos(url) as (_, channel):
        for _ in range(rounds):
            for name, fn in functions.items():
                ours[name] += round_trips(mf, fn, n, ctx.sizes.timeout)
                theirs[name] += call(channel, "latency", name, n)
    for name, label in (("one_step", "one-step"), ("three_steps", "three-step")):
        outcome.add(f"{name}_p50_ms", f"DBOS {label} p50 (in-process start -> result)",
                    1000 * percentile(theirs[name], 0.5), "ms")
        outcome.add(f"{name}_p99_ms", f"DBOS {label} p99", 1000 * percentile(theirs[name], 0.99),
                    "ms")
        outcome.add(f"hotmesh_{name}_p50_ms", f"hotmesh_sync {label} p50, same rounds",
                    1000 * percentile(ours[name], 0.5), "ms")


def throughputs(ctx: RunContext, outcome: Outcome, url: str, dbos_dsn: str, rounds: int) -> None:
    from dbos import DBOSClient

    from .dbos_app import APP_NAME, QUEUE

    n = ctx.sizes.dbos_workflows - ctx.sizes.dbos_workflows % 8
    ours: list[float] = []
    queued: list[float] = []
    closed: list[float] = []
    cpu_ms: list[float] = []
    commits_per_workflow: list[float] = []
    with running_dbos(url):
        pass  # the first launch creates DBOS's database and registers its queue
    for _ in range(rounds):
        with fresh_app(ctx.dsn, "vsdbos") as mf:
            result = drain(mf, n, ctx.sizes.timeout)
        if result.workflows_per_s is not None:
            ours.append(result.workflows_per_s)

        with CommitCounter(dbos_dsn) as counter:
            before = counter.snapshot()
            client = DBOSClient(system_database_url=url, application_name=APP_NAME)
            try:
                options: Any = {"queue_name": QUEUE, "workflow_name": "three_steps"}
                ids = [client.enqueue(options, i).get_workflow_id() for i in range(n)]
            finally:
                client.destroy()
            with running_dbos(url) as (pid, channel):
                meter = CpuMeter(pid)
                cpu_before = meter.sample()
                window, polls = drain_window(dbos_dsn, ids)
                cpu = CpuMeter.report(cpu_before, meter.sample())
                counter.own += polls
                time.sleep(STATS_FLUSH)
                commits, _ = counter.delta(before, counter.snapshot())
                closed.append(n / call(channel, "closed_loop", n, 8))
        if window is None:
            outcome.notes.append(f"DBOS's queue did not finish {n} workflows in "
                                 f"{DBOS_TIMEOUT:.0f}s")
        else:
            queued.append(n / window)
        cpu_ms.append(1000 * cpu["process_s"] / n)
        commits_per_workflow.append(commits / n)

    best = max(median(queued) or 0.0, median(closed) or 0.0) or None
    outcome.add("queue_workflows_per_s", "DBOS queue (8 per executor, 10 ms polls): wf/s",
                median(queued), "wf/s")
    outcome.add("closed_loop_workflows_per_s", "DBOS closed loop, 8 threads: wf/s",
                median(closed), "wf/s")
    outcome.add("best_workflows_per_s", "DBOS best", best, "wf/s")
    outcome.add("hotmesh_workflows_per_s", "hotmesh_sync queue drain, same rounds: wf/s",
                median(ours), "wf/s")
    outcome.add("queue_cpu_ms_per_workflow", "DBOS process CPU per workflow (queue)",
                median(cpu_ms), "ms")
    outcome.add("queue_commits_per_workflow", "DBOS commits per workflow (queue, its polls too)",
                median(commits_per_workflow), "commits")


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def drain_window(dbos_dsn: str, ids: list[str]) -> tuple[float | None, int]:
    """(seconds from the first dequeue to the last completion of the workflows ``ids``,
    or None on timeout; the polls it took)."""
    query = ("SELECT count(*) FILTER (WHERE status NOT IN ('ENQUEUED', 'PENDING', 'DELAYED')),"
             " (max(coalesce(completed_at, updated_at)) - min(started_at_epoch_ms)) / 1000.0"
             " FROM dbos.workflow_status WHERE workflow_uuid = ANY(%s)")
    deadline = time.monotonic() + DBOS_TIMEOUT
    polls = 0
    with psycopg.connect(dbos_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query, [ids]).fetchone()
            polls += 1
            if row is not None and int(row[0]) >= len(ids):
                return float(row[1]), polls
            time.sleep(0.1)
    return None, polls


@contextlib.contextmanager
def running_dbos(url: str) -> Iterator[tuple[int, Connection]]:
    """A launched DBOS process: its pid, and the harness's end of its command pipe."""
    from .dbos_app import serve

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve, args=(url, theirs), name="dbos-bench", daemon=True)
    process.start()
    theirs.close()  # so that its death reads as end of file here
    try:
        try:
            ready = ours.poll(LAUNCH_TIMEOUT) and ours.recv()[0] == "ready"
        except EOFError:
            ready = False
        if not ready:
            raise RuntimeError(f"DBOS did not launch (exit code {process.exitcode})")
        assert process.pid is not None
        yield process.pid, ours
    finally:
        with contextlib.suppress(OSError):
            ours.send(("stop", None))
        process.join(30)
        if process.is_alive():
            process.kill()


def call(channel: Connection, command: str, *args: Any) -> Any:
    channel.send((command, args))
    if not channel.poll(DBOS_TIMEOUT):
        raise TimeoutError(f"DBOS did not answer {command!r} within {DBOS_TIMEOUT:.0f}s")
    status, value = channel.recv()
    if status != "ok":
        raise RuntimeError(f"DBOS {command} failed: {value}")
    return value


def sqlalchemy_url(dsn: str, database: str) -> str:
    """The libpq DSN's server, as the SQLAlchemy URL DBOS takes, for ``database``."""
    from sqlalchemy.engine import URL

    params = conninfo_to_dict(dsn)
    port = params.get("port")
    return URL.create(
        "postgresql", username=_text(params.get("user")), password=_text(params.get("password")),
        host=_text(params.get("host")), port=int(port) if port else None, database=database,
    ).render_as_string(hide_password=False)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def drop_database(dsn: str, database: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(database)))
