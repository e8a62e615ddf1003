"""The DBOS Transact side of the comparison: the same workflows, in a process of its own.

Imported only by that process (``serve``), which takes commands from the
harness over a pipe: round-trip latencies, and a closed-loop throughput run
with 8 threads. Its queue (``QUEUE``, 8 workflows at a time on this
executor) is also fed from the harness's process through ``DBOSClient``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from dbos import DBOS

APP_NAME = "hotmesh-bench"
QUEUE = "bench"
#: How often DBOS's queue worker looks for work (its default is 1 s).
QUEUE_POLL = 0.01
WARMUP = 5


@DBOS.step()
def step(x: int) -> int:
    return x + 1


@DBOS.workflow(name="one_step")
def one_step(x: int) -> int:
    return step(x)


@DBOS.workflow(name="three_steps")
def three_steps(x: int) -> int:
    return step(step(step(x)))


WORKFLOWS: dict[str, Callable[[int], int]] = {"one_step": one_step, "three_steps": three_steps}


def latency(name: str, n: int) -> list[float]:
    """Seconds of each of ``n`` sequential start -> result round trips, in this process."""
    fn = WORKFLOWS[name]
    samples = []
    for i in range(WARMUP + n):
        began = time.perf_counter()
        DBOS.start_workflow(fn, i).get_result()
        if i >= WARMUP:
            samples.append(time.perf_counter() - began)
    return samples


def closed_loop(n: int, threads: int) -> float:
    """Seconds for ``threads`` threads to run ``n`` 3-step workflows, one at a time each."""
    share = n // threads
    barrier = threading.Barrier(threads + 1)

    def loop() -> None:
        barrier.wait()
        for i in range(share):
            DBOS.start_workflow(three_steps, i).get_result()

    workers = [threading.Thread(target=loop, name=f"dbos-loop-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def direct(n: int, threads: int) -> float:
    """Seconds for ``threads`` threads to call the 3-step workflow function
    directly ``n`` times in all (no start_workflow, no queue)."""
    share = n // threads
    barrier = threading.Barrier(threads + 1)

    def loop() -> None:
        barrier.wait()
        for i in range(share):
            three_steps(i)

    workers = [threading.Thread(target=loop, name=f"dbos-direct-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def direct_latency(n: int) -> list[float]:
    """Seconds of each of ``n`` sequential direct calls of the 3-step workflow."""
    samples = []
    for i in range(WARMUP + n):
        began = time.perf_counter()
        three_steps(i)
        if i >= WARMUP:
            samples.append(time.perf_counter() - began)
    return samples


COMMANDS: dict[str, Callable[..., Any]] = {"latency": latency, "closed_loop": closed_loop,
                                           "direct": direct, "direct_latency": direct_latency}


def serve(url: str, channel: Connection) -> None:
    """Launch DBOS on ``url`` and answer the harness's commands until "stop"."""
    from .harness import quiet_logging

    quiet_logging()
    DBOS(config={"name": APP_NAME, "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    DBOS.register_queue(QUEUE, worker_concurrency=8, polling_interval_sec=QUEUE_POLL)
    channel.send(("ready", None))
    try:
        while True:
            command, args = channel.recv()
            if command == "stop":
                break
            try:
                channel.send(("ok", COMMANDS[command](*args)))
            except Exception as exc:
                channel.send(("error", repr(exc)))
    finally:
        DBOS.destroy()
