"""10. Retention at scale: what purging finished workflows costs at N workflows,
and what dropping a time partition holding the same rows would cost instead.

N finished workflows (default 1,000,000; ``--quick`` 20,000) are written
straight into a fresh app schema with ``generate_series``: each one a job row
(an entity document, args, result), its coordinator's run row, five steps
(two entity commands, three activities) and two history rows — what the
library leaves behind for a small entity workflow. Their completion times
are spread evenly over ``DAYS`` days, and their ids are random (md5), as
generated ids are, so one day's rows are scattered over every index.

Then, one day at a time (the oldest first):

1. the library's purge path, ``mf.purge(older_than=..., batch=500)``, removes
   day 1; afterwards ``VACUUM`` of the tables it deleted from (what autovacuum
   would have to do next);
2. the same statements split apart remove day 2, each timed: finding the
   batch, each table's DELETE, the commit — where a purge's time goes;
3. ``purge_finished`` with a batch as large as a day removes day 3 in one
   statement;
4. a purge that finds nothing to remove, with ``older_than`` and as the
   workers' maintenance loop runs it (``older_than=None``: expired ones only).

Beside it, in a scratch schema: the four tables partitioned by day, with the
same indexes, and day 1's rows copied into one partition each; detaching and
dropping those four partitions is timed — what a partitioned schema would pay
instead of steps 1 (and the VACUUM after it).

``python -m benchmarks --only retention`` runs it with the harness;
``python -m benchmarks.bench_retention --dsn DSN [--workflows N]`` alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from hotmesh_sync.store.store import purge

from .harness import CpuMeter, RunContext, drop_schema, fresh_app, quiet_logging
from .report import render_table
from .results import Outcome
from .sizes import FULL, QUICK

#: Days the completion times are spread over; one day is what one purge removes.
DAYS = 30
#: The library's default purge batch (``MemFlow.purge``).
BATCH = 500
#: Jobs written per statement (and per transaction) while loading.
CHUNK = 100_000
#: The tables a finished workflow leaves rows in, and that a partition would hold.
TABLES = ("jobs", "runs", "steps", "history")
#: Every table ``purge_finished`` deletes from, in its order, jobs last.
PURGED = ("steps", "history", "signals", "waits", "tasks", "runs", "workflow_runs",
          "watchers")

_JOB = "'wf-' || md5(g::text)"
_TIME = "%(start)s::timestamptz + (g - 1) * make_interval(secs => %(spacing)s)"

LOAD_JOBS = f"""
INSERT INTO {{schema}}.jobs (id, entity, workflow_name, task_queue, status, context, version,
                           args, result, attempt, created_at, updated_at, completed_at,
                           run_started_at, run_id)
SELECT {_JOB}, 'order', 'process_order', 'default', 'completed',
       jsonb_build_object('order', g, 'status', 'shipped',
                          'lines', jsonb_build_array(g %% 7, g %% 11)),
       2, jsonb_build_array(jsonb_build_object('order', g)),
       jsonb_build_object('ok', true, 'order', g), 1,
       t - interval '3 seconds', t, t, t - interval '3 seconds', md5('run' || g::text)
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
CROSS JOIN LATERAL (SELECT {_TIME} AS t) AS x
"""

LOAD_RUNS = f"""
INSERT INTO {{schema}}.runs (job_id, run_id, workflow_name, task_queue, args, status, result,
                           activations, created_at, updated_at)
SELECT {_JOB}, '', 'process_order', 'default', jsonb_build_array(jsonb_build_object('order', g)),
       'completed', jsonb_build_object('ok', true, 'order', g), 4, t - interval '3 seconds', t
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
CROSS JOIN LATERAL (SELECT {_TIME} AS t) AS x
"""

LOAD_STEPS = f"""
INSERT INTO {{schema}}.steps (job_id, run_id, step_key, kind, name, result, created_at)
SELECT {_JOB}, '', k.step_key, k.kind, k.name,
       CASE k.name WHEN 'set' THEN jsonb_build_object('order', g, 'status', 'new')
                   WHEN 'increment' THEN to_jsonb(1)
                   ELSE jsonb_build_object('ok', true, 'ref', md5(k.step_key || g::text)) END,
       t - interval '3 seconds' + k.ordinal * interval '500 milliseconds'
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
CROSS JOIN LATERAL (SELECT {_TIME} AS t) AS x
CROSS JOIN (VALUES ('0', 'entity', 'set', 1), ('1', 'entity', 'increment', 2),
                   ('2', 'activity', 'reserve_stock', 3), ('3', 'activity', 'charge_card', 4),
                   ('4', 'activity', 'ship', 5)) AS k(step_key, kind, name, ordinal)
ORDER BY g, k.ordinal
"""

LOAD_HISTORY = f"""
INSERT INTO {{schema}}.history (job_id, version, patch, at)
SELECT {_JOB}, v.version,
       CASE v.version
           WHEN 1 THEN jsonb_build_array(
               jsonb_build_object('op', 'add', 'path', '/order', 'value', g),
               jsonb_build_object('op', 'add', 'path', '/status', 'value', 'new'))
           ELSE jsonb_build_array(
               jsonb_build_object('op', 'replace', 'path', '/status', 'value', 'shipped'))
       END,
       t - interval '3 seconds' + v.version * interval '1 second'
FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
CROSS JOIN LATERAL (SELECT {_TIME} AS t) AS x
CROSS JOIN (VALUES (1), (2)) AS v(version)
ORDER BY g, v.version
"""

#: The purge's first step alone: the batch ``purge_finished`` locks (its
#: ``doomed`` CTE), for the split measurement.
FIND_BATCH = """
SELECT id FROM {schema}.jobs
WHERE status IN ('completed', 'failed', 'interrupted')
  AND ((%(older_than)s::float8 IS NOT NULL
        AND extract(epoch FROM now() - completed_at) > %(older_than)s::float8)
       OR (expire_seconds IS NOT NULL
           AND extract(epoch FROM now() - completed_at) > expire_seconds))
ORDER BY completed_at
LIMIT %(batch)s
FOR UPDATE SKIP LOCKED
"""


@dataclasses.dataclass
class Clock:
    """Wall time, PostgreSQL CPU time and WAL written between two readings."""

    conn: psycopg.Connection[Any]
    meter: CpuMeter

    def read(self) -> tuple[float, float, int]:
        row = self.conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()
        assert row is not None
        return time.perf_counter(), self.meter.sample().postgres, int(row[0])

    @staticmethod
    def since(before: tuple[float, float, int],
              after: tuple[float, float, int]) -> tuple[float, float, float]:
        """(seconds, PostgreSQL CPU seconds, WAL megabytes)."""
        return after[0] - before[0], after[1] - before[1], (after[2] - before[2]) / 2**20


def run(ctx: RunContext) -> Outcome:
    return measure(ctx.dsn, ctx.sizes.retention_workflows)


def measure(dsn: str, workflows: int, days: int = DAYS) -> Outcome:
    outcome = Outcome("retention", f"10. retention ({workflows:,} finished workflows over "
                                   f"{days} days; purge one day vs drop its partitions)")
    if workflows < days * 10:
        raise ValueError(f"retention needs at least {days * 10} workflows")
    with fresh_app(dsn, "retention", pool_size=2) as mf, \
            psycopg.connect(dsn, autocommit=True) as conn:
        schema = mf.schema
        scratch = f"{schema}_parts"
        clock = Clock(conn, CpuMeter(os.getpid()))
        conn.execute("SET statement_timeout = 0")
        try:
            began = time.perf_counter()
            start = load(conn, schema, workflows, days)
            outcome.add("load_s", f"load {workflows:,} workflows (5 steps, 2 history rows "
                                  "each) and VACUUM ANALYZE", time.perf_counter() - began, "s")
            outcome.add("data_mb", "jobs, runs, steps, history with their indexes",
                        total_mb(conn, schema, TABLES), "MB")
            build_partitions(conn, schema, scratch, start)
            day_rows = count_rows(conn, scratch, [f"{t}_day1" for t in TABLES])
            outcome.add("partition_rows", "rows of one day (all four tables)",
                        sum(day_rows.values()), "rows")

            # 1. the library's purge path, one day
            before_rows = count_rows(conn, schema, TABLES)
            before = clock.read()
            removed = mf.purge(older_than=age_of(conn, start + timedelta(days=1)), batch=BATCH)
            seconds, cpu, wal = Clock.since(before, clock.read())
            after_rows = count_rows(conn, schema, TABLES)
            deleted = sum(before_rows[t] - after_rows[t] for t in TABLES)
            outcome.add("day_workflows", "day 1: workflows purged", removed, "workflows")
            outcome.add("purge_s", f"day 1: mf.purge(older_than, batch={BATCH})", seconds, "s")
            outcome.add("purge_wf_per_s", "day 1: purge rate", removed / seconds, "wf/s")
            outcome.add("purge_ms_per_wf", "day 1: purge wall time per workflow",
                        1000 * seconds / removed, "ms")
            outcome.add("purge_pg_cpu_ms_per_wf", "day 1: PostgreSQL CPU per purged workflow",
                        1000 * cpu / removed, "ms")
            outcome.add("purge_rows", "day 1: rows deleted (all tables)", deleted, "rows")
            outcome.add("purge_wal_mb", "day 1: WAL written by the purge", wal, "MB")
            if removed <= 0:
                raise RuntimeError("the purge removed nothing")

            before = clock.read()
            for table in (*PURGED, "jobs"):
                conn.execute(sql.SQL("VACUUM {}").format(sql.Identifier(schema, table)))
            seconds, cpu, wal = Clock.since(before, clock.read())
            outcome.add("vacuum_s", "VACUUM of the purged tables afterwards", seconds, "s")
            outcome.add("vacuum_wal_mb", "WAL written by that VACUUM", wal, "MB")

            # 2. the same statements split apart, day 2
            shares, batches, last_find = split_purge(
                conn, schema, age_of(conn, start + timedelta(days=2)))
            total = sum(shares.values())
            outcome.add("split_s", f"day 2: the same statements split ({batches} batches)",
                        total, "s")
            outcome.add("find_share", "day 2: share finding the batches (doomed)",
                        100 * shares["find"] / total, "%")
            outcome.add("delete_share", "day 2: share in the DELETEs (all tables)",
                        100 * sum(v for k, v in shares.items() if k.startswith("delete "))
                        / total, "%")
            outcome.add("commit_share", "day 2: share committing", 100 * shares["commit"] / total,
                        "%")
            outcome.add("last_find_ms", "day 2: the last find (nothing older left)",
                        1000 * last_find, "ms")
            outcome.notes.append("day 2, seconds by statement: " + ", ".join(
                f"{name} {value:.2f}" for name, value in
                sorted(shares.items(), key=lambda item: -item[1])))

            # 3. one statement for a whole day, day 3
            older = age_of(conn, start + timedelta(days=3))
            before = clock.read()
            rows = mf.store.fetch_dicts("purge_finished",
                                        {"older_than": older, "batch": 10 * workflows})
            seconds, cpu, wal = Clock.since(before, clock.read())
            outcome.add("one_statement_s", f"day 3: purge_finished, one statement "
                                           f"({len(rows):,} workflows)", seconds, "s")

            # 4. a purge with nothing to remove
            before = clock.read()
            nothing = mf.purge(older_than=age_of(conn, start + timedelta(days=3)), batch=BATCH)
            outcome.add("empty_purge_ms", "a purge(older_than) that finds nothing",
                        1000 * Clock.since(before, clock.read())[0], "ms")
            before = clock.read()
            nothing += purge(mf.store, None)
            outcome.add("maintenance_purge_ms",
                        "the maintenance loop's purge (expired only), nothing expired",
                        1000 * Clock.since(before, clock.read())[0], "ms")
            if nothing:
                raise RuntimeError(f"the empty purges removed {nothing} workflows")
            outcome.notes.append("plan of a purge that finds nothing: "
                                 + empty_plan(conn, mf.store.queries["purge_finished"]))

            # the alternative: detach and drop day 1's partitions
            before = clock.read()
            with conn.transaction():
                for table in TABLES:
                    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                        sql.Identifier(scratch, table), sql.Identifier(scratch, f"{table}_day1")))
                    conn.execute(sql.SQL("DROP TABLE {}").format(
                        sql.Identifier(scratch, f"{table}_day1")))
            seconds, cpu, wal = Clock.since(before, clock.read())
            outcome.add("drop_ms", "detach + DROP one day's 4 partitions (one transaction)",
                        1000 * seconds, "ms")
            outcome.add("drop_wal_kb", "WAL written by the drop", wal * 1024, "kB")
            purge_s = outcome.value("purge_s") or 0.0
            vacuum_s = outcome.value("vacuum_s") or 0.0
            outcome.add("purge_over_drop", "day 1: purge + VACUUM time / partition drop time",
                        (purge_s + vacuum_s) / seconds if seconds else None, "x")
        finally:
            drop_schema(dsn, scratch)
    outcome.unit = ("purged workflow", int(outcome.value("day_workflows") or 1))
    return outcome


def load(conn: psycopg.Connection[Any], schema: str, workflows: int, days: int) -> datetime:
    """Write ``workflows`` finished workflows ending over the last ``days`` days,
    then VACUUM ANALYZE; the start of the first day."""
    row = conn.execute("SELECT date_trunc('second', now()) - make_interval(days => %s)",
                       [days]).fetchone()
    assert row is not None
    start: datetime = row[0]
    spacing = days * 86400.0 / workflows
    conn.execute("SET synchronous_commit = off")
    for low in range(1, workflows + 1, CHUNK):
        params = {"low": low, "high": min(workflows, low + CHUNK - 1), "start": start,
                  "spacing": spacing}
        with conn.transaction():
            for text in (LOAD_JOBS, LOAD_RUNS, LOAD_STEPS, LOAD_HISTORY):
                conn.execute(sql.SQL(text).format(schema=sql.Identifier(schema)), params)
    conn.execute("SET synchronous_commit = on")
    for table in TABLES:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(schema, table)))
    return start


def build_partitions(conn: psycopg.Connection[Any], schema: str, scratch: str,
                     start: datetime) -> None:
    """In ``scratch``: each of TABLES partitioned by an integer day, with the
    source's indexes (unique ones extended by the day), day 1's rows in
    partition ``<table>_day1``; the other days' partition stays empty (the
    cost of dropping a partition does not depend on its siblings)."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
    window = {"low": start, "high": start + timedelta(days=1)}
    for table in TABLES:
        source, target = sql.Identifier(schema, table), sql.Identifier(scratch, table)
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {}, day integer NOT NULL)"
                             " PARTITION BY RANGE (day)").format(target, source))
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM (1) TO (2)")
                     .format(sql.Identifier(scratch, f"{table}_day1"), target))
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT")
                     .format(sql.Identifier(scratch, f"{table}_other"), target))
        for statement in index_copies(conn, schema, table, scratch):
            conn.execute(statement)
        if table == "jobs":
            select = sql.SQL("SELECT j.*, 1 FROM {} j"
                             " WHERE j.completed_at >= %(low)s AND j.completed_at < %(high)s"
                             ).format(source)
        else:
            select = sql.SQL("SELECT c.*, 1 FROM {} c JOIN {} j ON j.id = c.job_id"
                             " WHERE j.completed_at >= %(low)s AND j.completed_at < %(high)s"
                             ).format(source, sql.Identifier(schema, "jobs"))
        conn.execute(sql.SQL("INSERT INTO {} ").format(target) + select, window)
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(
            sql.Identifier(scratch, f"{table}_day1")))


def index_copies(conn: psycopg.Connection[Any], schema: str, table: str,
                 scratch: str) -> list[sql.Composed]:
    """CREATE INDEX statements giving ``scratch.table`` the indexes of
    ``schema.table`` (the same access method, key columns and predicate; a
    unique one also keyed by the day, as a partitioned table requires)."""
    rows = conn.execute(
        "SELECT i.indisunique, am.amname, pg_get_expr(i.indpred, i.indrelid),"
        "       array(SELECT pg_get_indexdef(i.indexrelid, k, true)"
        "             FROM generate_series(1, i.indnkeyatts) AS k)"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am am ON am.oid = c.relam"
        " WHERE i.indrelid = %s::regclass ORDER BY c.relname",
        [f'"{schema}"."{table}"']).fetchall()
    statements = []
    for unique, method, predicate, columns in rows:
        keys = [sql.SQL(column) for column in columns] + ([sql.SQL("day")] if unique else [])
        statement = sql.SQL("CREATE {unique}INDEX ON {table} USING {method} ({keys})").format(
            unique=sql.SQL("UNIQUE " if unique else ""), table=sql.Identifier(scratch, table),
            method=sql.Identifier(method), keys=sql.SQL(", ").join(keys))
        if predicate:
            statement += sql.SQL(" WHERE {}").format(sql.SQL(predicate))
        statements.append(statement)
    return statements


def split_purge(conn: psycopg.Connection[Any], schema: str,
                older_than: float) -> tuple[dict[str, float], int, float]:
    """Purge as ``purge_finished`` does, one statement at a time: seconds spent
    per statement, batches, and the seconds of the last (short) find."""
    find = sql.SQL(FIND_BATCH).format(schema=sql.Identifier(schema))
    deletes = [(table, sql.SQL("DELETE FROM {} WHERE job_id = ANY(%s)").format(
        sql.Identifier(schema, table))) for table in PURGED]
    deletes.append(("jobs", sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(
        sql.Identifier(schema, "jobs"))))
    spent: dict[str, float] = defaultdict(float)
    batches = 0
    last_find = 0.0
    while True:
        with conn.transaction():
            began = time.perf_counter()
            ids = [r[0] for r in conn.execute(find, {"older_than": older_than,
                                                     "batch": BATCH}).fetchall()]
            last_find = time.perf_counter() - began
            spent["find"] += last_find
            for table, statement in deletes:
                began = time.perf_counter()
                conn.execute(statement, [ids])
                spent[f"delete {table}"] += time.perf_counter() - began
            began = time.perf_counter()
        spent["commit"] += time.perf_counter() - began
        batches += 1
        if len(ids) < BATCH:
            return dict(spent), batches, last_find


def empty_plan(conn: psycopg.Connection[Any], query: sql.Composed) -> str:
    """The doomed-batch scan of ``purge_finished`` with nothing to remove:
    its node, index, rows filtered out and buffers (run and rolled back)."""
    explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query
    with conn.transaction(force_rollback=True):
        row = conn.execute(explain, {"older_than": None, "batch": BATCH}).fetchone()
    assert row is not None
    document = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Subplan Name") == "CTE doomed" or found:
            scan = node
            while "Plans" in scan and not scan.get("Index Name") and scan.get(
                    "Node Type") not in ("Seq Scan", "Bitmap Heap Scan"):
                scan = scan["Plans"][0]
            found.append(
                f"{scan.get('Node Type')} ({scan.get('Index Name') or scan.get('Relation Name')})"
                f", {scan.get('Rows Removed by Filter', 0):,} rows filtered out, "
                f"{scan.get('Shared Hit Blocks', 0) + scan.get('Shared Read Blocks', 0):,} "
                f"buffers, {scan.get('Actual Total Time', 0.0):.0f} ms")
            return
        for child in node.get("Plans", []):
            walk(child)

    walk(document[0]["Plan"])
    return found[0] if found else "(no doomed scan found in the plan)"


def age_of(conn: psycopg.Connection[Any], moment: datetime) -> float:
    """Seconds from ``moment`` to the database's now: ``older_than`` for a cut there."""
    row = conn.execute("SELECT extract(epoch FROM now() - %s::timestamptz)::float8",
                       [moment]).fetchone()
    assert row is not None
    return float(row[0])


def count_rows(conn: psycopg.Connection[Any], schema: str,
               tables: list[str] | tuple[str, ...]) -> dict[str, int]:
    counts = {}
    for table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(schema, table))).fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def total_mb(conn: psycopg.Connection[Any], schema: str, tables: tuple[str, ...]) -> float:
    row = conn.execute(
        "SELECT sum(pg_total_relation_size(format('%%I.%%I', %s::text, t)::regclass))"
        " FROM unnest(%s::text[]) AS t", [schema, list(tables)]).fetchone()
    assert row is not None
    return float(row[0]) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_retention",
        description="Purge one day of N finished workflows vs drop its partitions.")
    parser.add_argument("--dsn", default=os.environ.get("HOTMESH_DSN"),
                        help="libpq connection string (default: $HOTMESH_DSN)")
    parser.add_argument("--workflows", type=int, default=None,
                        help=f"finished workflows to load (default {FULL.retention_workflows:,}; "
                             f"--quick {QUICK.retention_workflows:,})")
    parser.add_argument("--quick", action="store_true", help="the quick size")
    parser.add_argument("--json", type=Path, default=None, help="write the outcome here too")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn is required (or set $HOTMESH_DSN)")
    sizes = QUICK if args.quick else FULL
    workflows = args.workflows or sizes.retention_workflows
    quiet_logging()
    began = time.perf_counter()
    outcome = measure(args.dsn, workflows)
    outcome.seconds = time.perf_counter() - began
    print(render_table([outcome], []))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(outcome.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
