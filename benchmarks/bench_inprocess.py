"""11. In-process: the client and the worker in one process, against DBOS called directly.

The shape of an application that starts its workflows and runs them itself
(a web process with an embedded worker): one spawned process holds one
MemFlow, one worker of 8 threads, and the client. DBOS runs in a process of
its own the same way, and its workflow function is called directly
(``three_steps(i)``, no ``start_workflow``, no queue): DBOS's fastest path.

- Throughput: ours starts N 3-step workflows one after another from one
  thread (the worker runs them meanwhile), then awaits every result; timed
  from the first start to the last result returned. DBOS: 8 threads each
  call the workflow function N/8 times in turn; timed from start to the
  last thread's end.
- Latency: sequential start -> result round trips of the 3-step workflow
  (``mf.workflow.execute`` in the process; DBOS: a direct call), after a
  warm-up -> p50, p99.

Measured in alternating rounds (ours first, then DBOS), medians over the
rounds, like the DBOS benchmark. Commits of our throughput phase are counted
on the benchmark's database (starts, claims, steps, completions, the reads
of the results) and reported per activity step.
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
from pathlib import Path
from typing import Any

from .harness import STATS_FLUSH, CommitCounter, CpuMeter, RunContext, fresh_app, percentile
from .results import Outcome

STEPS = 3
WARMUP = 5
#: Workflows each in-process app runs before it is measured.
WARMUP_WORKFLOWS = 16
#: Seconds the in-process app may take to start, and to answer one command.
START_TIMEOUT = 60.0


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("inprocess", "11. in-process (client + 8-thread worker in one process) "
                                   "vs DBOS called directly")
    n = ctx.sizes.inprocess_workflows - ctx.sizes.inprocess_workflows % 8
    rounds = 1 if ctx.quick else 3
    trips = max(1, ctx.sizes.inprocess_round_trips // rounds)
    have_dbos = importlib.util.find_spec("dbos") is not None
    ours_rate: list[float] = []
    ours_lat: list[float] = []
    ours_cpu: list[float] = []
    commits_per_step: list[float] = []
    theirs_rate: list[float] = []
    theirs_lat: list[float] = []
    database = "hotmesh_bench_dbos_" + uuid.uuid4().hex[:8]
    try:
        if have_dbos:
            from .bench_dbos import running_dbos, sqlalchemy_url

            url = sqlalchemy_url(ctx.dsn, database)
            with running_dbos(url):
                pass  # the first launch creates DBOS's database
        for _ in range(rounds):
            with fresh_app(ctx.dsn, "inproc") as mf, CommitCounter(ctx.dsn) as counter:
                # A backend flushes its commit counters when it ends (or after 10 s
                # idle): the process is stopped before the second reading, and its
                # warm-up workflows count as workflows.
                before = counter.snapshot()
                with in_process_app(ctx.dsn, mf.app_id,
                                    ctx.profile_path("inprocess")) as (pid, channel):
                    call(channel, "throughput", WARMUP_WORKFLOWS)  # imports, pools, caches
                    meter = CpuMeter(pid)
                    cpu_before = meter.sample()
                    seconds = call(channel, "throughput", n)
                    cpu = CpuMeter.report(cpu_before, meter.sample())
                time.sleep(STATS_FLUSH)
                commits, _ = counter.delta(before, counter.snapshot())
                ours_rate.append(n / seconds)
                ours_cpu.append(1000 * cpu["process_s"] / n)
                commits_per_step.append(commits / ((n + WARMUP_WORKFLOWS) * STEPS))
                with in_process_app(ctx.dsn, mf.app_id, None) as (_, channel):
                    ours_lat += call(channel, "latency", trips)
            if have_dbos:
                with running_dbos(url) as (_, dbos):
                    theirs_rate.append(n / dbos_call(dbos, "direct", n, 8))
                    theirs_lat += dbos_call(dbos, "direct_latency", trips)
    finally:
        if have_dbos:
            from .bench_dbos import drop_database

            drop_database(ctx.dsn, database)
    outcome.add("workflows_per_s", "hotmesh_sync: start N, then await all: wf/s",
                median(ours_rate), "wf/s")
    outcome.add("steps_per_s", "hotmesh_sync: durable activity steps/s",
                None if median(ours_rate) is None else STEPS * (median(ours_rate) or 0.0),
                "steps/s")
    outcome.add("commits_per_step", "hotmesh_sync: commits per activity step (all of them)",
                median(commits_per_step), "commits")
    outcome.add("cpu_ms_per_workflow", "hotmesh_sync: process CPU per workflow",
                median(ours_cpu), "ms")
    outcome.add("three_steps_p50_ms", "hotmesh_sync: 3-step execute() p50",
                1000 * percentile(ours_lat, 0.5), "ms")
    outcome.add("three_steps_p99_ms", "hotmesh_sync: 3-step execute() p99",
                1000 * percentile(ours_lat, 0.99), "ms")
    if have_dbos:
        outcome.add("dbos_workflows_per_s", "DBOS: 8 threads calling the workflow: wf/s",
                    median(theirs_rate), "wf/s")
        outcome.add("dbos_three_steps_p50_ms", "DBOS: 3-step direct call p50",
                    1000 * percentile(theirs_lat, 0.5), "ms")
        outcome.add("dbos_three_steps_p99_ms", "DBOS: 3-step direct call p99",
                    1000 * percentile(theirs_lat, 0.99), "ms")
    else:
        outcome.notes.append("the dbos package is not installed: no DBOS figures")
    outcome.notes.append(f"{rounds} round(s) of {n} workflows and {trips} round trips, "
                         "each hotmesh_sync first, then DBOS; medians over rounds")
    if len(ours_rate) > 1:
        outcome.notes.append("hotmesh_sync wf/s by round: "
                             + ", ".join(f"{r:.0f}" for r in ours_rate)
                             + "; DBOS: " + ", ".join(f"{r:.0f}" for r in theirs_rate))
    outcome.unit = ("workflow", WARMUP_WORKFLOWS + n)  # a profile holds the last round
    return outcome


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def dbos_call(channel: Connection, command: str, *args: Any) -> Any:
    from .bench_dbos import call as dbos_command

    return dbos_command(channel, command, *args)


@contextlib.contextmanager
def in_process_app(dsn: str, app_id: str,
                   profile_to: Path | None) -> Iterator[tuple[int, Connection]]:
    """The spawned process of client + worker: its pid and the command pipe."""
    from .profiling import PySpy

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    trace = profile_to is not None
    process = context.Process(target=serve, args=(dsn, app_id, theirs, trace),
                              name=f"hotmesh-bench-inprocess-{app_id}", daemon=True)
    process.start()
    theirs.close()
    profiler: PySpy | None = None
    try:
        if not ours.poll(START_TIMEOUT) or ours.recv()[0] != "ready":
            raise RuntimeError(f"the in-process app did not start ({process.exitcode})")
        assert process.pid is not None
        if profile_to is not None:
            profiler = PySpy(process.pid, profile_to).start()
        yield process.pid, ours
    finally:
        if profiler is not None:
            profiler.stop()
        with contextlib.suppress(OSError):
            ours.send(("stop", ()))
            if trace and profile_to is not None and ours.poll(START_TIMEOUT):
                import json

                status, value = ours.recv()
                if status == "trace":
                    profile_to.with_suffix(".sql.json").write_text(json.dumps(value))
        process.join(30)
        if process.is_alive():
            process.kill()


def call(channel: Connection, command: str, *args: Any) -> Any:
    channel.send((command, args))
    if not channel.poll(600.0):
        raise TimeoutError(f"the in-process app did not answer {command!r}")
    status, value = channel.recv()
    if status != "ok":
        raise RuntimeError(f"in-process {command} failed: {value}")
    return value


def serve(dsn: str, app_id: str, channel: Connection, trace: bool) -> None:
    """The process: one MemFlow, one 8-thread worker, and the client's commands."""
    from hotmesh_sync import MemFlow

    from . import workloads
    from .harness import QUEUE, quiet_logging
    from .sqltrace import StatementTrace

    quiet_logging()
    with MemFlow.init(app_id, dsn) as mf:
        tracer = StatementTrace(mf.schema) if trace else None
        if tracer is not None:
            tracer.install()
        worker = mf.worker(task_queue=QUEUE, workflows=workloads.WORKFLOWS,
                           activities=workloads.ACTIVITIES, concurrency=8).start()

        def throughput(n: int) -> float:
            began = time.perf_counter()
            handles = [mf.workflow.start(workloads.three_steps, [i], task_queue=QUEUE)
                       for i in range(n)]
            for i, handle in enumerate(handles):
                if handle.result(timeout=600) != i + STEPS:
                    raise RuntimeError(f"workflow {i} returned a wrong result")
            return time.perf_counter() - began

        def latency(n: int) -> list[float]:
            samples = []
            for i in range(WARMUP + n):
                began = time.perf_counter()
                mf.workflow.execute(workloads.three_steps, [i], task_queue=QUEUE, timeout=600)
                if i >= WARMUP:
                    samples.append(time.perf_counter() - began)
            return samples

        commands: dict[str, Any] = {"throughput": throughput, "latency": latency}
        channel.send(("ready", None))
        try:
            while True:
                command, args = channel.recv()
                if command == "stop":
                    break
                try:
                    channel.send(("ok", commands[command](*args)))
                except Exception as exc:
                    channel.send(("error", repr(exc)))
        finally:
            worker.stop()
            if tracer is not None:
                channel.send(("trace", tracer.snapshot()))
