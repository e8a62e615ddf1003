"""1. The commit limit: how many one-row UPDATE commits this server takes per second.

T threads, each on its own connection and its own row, commit
``UPDATE ... SET n = n + 1`` in a loop for a fixed time. With T = 1 that is
the round trip plus one WAL flush; with T = 8 group commit shares flushes.
Every durable engine on this server pays at least one such commit per step,
so this is the ceiling the other figures are held against.
"""

from __future__ import annotations

import threading
import time

import psycopg
from psycopg import sql

from .harness import RunContext, drop_schema, new_app_id
from .results import Outcome

THREAD_COUNTS = (1, 8)


def run(ctx: RunContext) -> Outcome:
    outcome = Outcome("commit_limit", "1. commit limit (one-row UPDATE per commit)")
    schema = new_app_id("commit")
    table = sql.Identifier(schema, "counters")
    try:
        with psycopg.connect(ctx.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, n bigint NOT NULL)")
                         .format(table))
            conn.execute(sql.SQL("INSERT INTO {} SELECT g, 0 FROM generate_series(1, %s) g")
                         .format(table), [max(THREAD_COUNTS)])
        for threads in THREAD_COUNTS:
            commits, seconds = hammer(ctx.dsn, table, threads, ctx.sizes.commit_seconds)
            outcome.add(f"t{threads}_commits_per_s", f"T={threads} threads", commits / seconds,
                        "commits/s")
    finally:
        drop_schema(ctx.dsn, schema)
    return outcome


def hammer(dsn: str, table: sql.Identifier, threads: int, seconds: float) -> tuple[int, float]:
    """(commits, seconds) of ``threads`` threads committing one-row UPDATEs."""
    update = sql.SQL("UPDATE {} SET n = n + 1 WHERE id = %s").format(table)
    connections = [psycopg.connect(dsn, autocommit=True) for _ in range(threads)]
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def loop(index: int) -> None:
        conn = connections[index]
        start.wait()
        while not stop.is_set():
            conn.execute(update, [index + 1], prepare=True)
            counts[index] += 1

    workers = [threading.Thread(target=loop, args=(i,), name=f"commit-{i}")
               for i in range(threads)]
    try:
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - began
    finally:
        for conn in connections:
            conn.close()
    return sum(counts), elapsed
