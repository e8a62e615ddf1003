"""What every benchmark needs: a run context, fresh apps, timing, and commit counting."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import structlog
from psycopg import sql

from hotmesh_sync import MemFlow

from .sizes import Sizes

#: The task queue every benchmark workflow runs on.
QUEUE = "bench"
#: How long the stats of an idle PostgreSQL backend may lag behind (PG 15 flushes
#: a backend's counters at most once a second, and when it exits).
STATS_FLUSH = 1.2


@dataclass(frozen=True)
class RunContext:
    """What one invocation of the harness was asked to do."""

    dsn: str
    sizes: Sizes
    quick: bool
    results_dir: Path
    profile: bool = False

    def profile_path(self, name: str) -> Path | None:
        """Where to write the py-spy profile of ``name``'s worker, when profiling."""
        if not self.profile:
            return None
        self.results_dir.mkdir(parents=True, exist_ok=True)
        return self.results_dir / f"profile-{name}.folded"


def quiet_logging() -> None:
    """Only warnings and errors of the library (and DBOS) reach stderr."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


def new_app_id(label: str) -> str:
    """A fresh app id (and so a fresh schema) for one benchmark."""
    return f"bench_{label}_{uuid.uuid4().hex[:8]}"


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def fresh_app(dsn: str, label: str, pool_size: int = 4) -> Iterator[MemFlow]:
    """A MemFlow on a new app schema, closed and dropped on exit."""
    memflow = MemFlow.init(new_app_id(label), dsn, pool_size=pool_size)
    try:
        yield memflow
    finally:
        memflow.close()
        drop_schema(dsn, memflow.schema)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th quantile (0..1) of ``values``, interpolated between ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def wait_until_finished(dsn: str, schema: str, expected: int, timeout: float,
                        poll: float = 0.1) -> int:
    """Block until ``expected`` workflows of ``schema`` have ended; the queries it took.

    Raises RuntimeError when any failed, TimeoutError when time runs out.
    """
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed', 'interrupted')),"
        " count(*) FILTER (WHERE status IN ('failed', 'interrupted')) FROM {}.jobs"
    ).format(sql.Identifier(schema))
    deadline = time.monotonic() + timeout
    queries = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(query).fetchone()
            queries += 1
            ended, failed = (int(row[0]), int(row[1])) if row else (0, 0)
            if failed:
                raise RuntimeError(f"{failed} benchmark workflows failed in {schema}")
            if ended >= expected:
                return queries
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {ended} of {expected} workflows ended in {timeout:.0f}s")
            time.sleep(poll)


def last_completion(dsn: str, schema: str) -> float:
    """The epoch time at which the last workflow of ``schema`` completed."""
    query = sql.SQL("SELECT extract(epoch FROM max(completed_at)) FROM {}.jobs").format(
        sql.Identifier(schema))
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"no workflow of {schema} completed")
    return float(row[0])


@dataclass(frozen=True)
class CommitSnapshot:
    commits: int     # pg_stat_database.xact_commit of this database
    next_xid: int    # the cluster's next transaction id: one per writing transaction
    at: float        # time.monotonic()


class CommitCounter:
    """Counts commits in the benchmark's database between two snapshots.

    ``xact_commit`` counts every committed transaction of the database, read-only
    ones included, by anybody: on a shared server the background rate is
    measured first and reported beside. The next transaction id counts writing
    transactions of the whole cluster. Each snapshot is one statement (one commit),
    which ``delta`` leaves out.
    """

    _QUERY = ("SELECT xact_commit, txid_snapshot_xmax(txid_current_snapshot())"
              " FROM pg_stat_database WHERE datname = current_database()")

    def __init__(self, dsn: str) -> None:
        self._conn = psycopg.connect(dsn, autocommit=True)
        self.own = 0  # statements of ours between the snapshots, e.g. completion polls

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CommitCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> CommitSnapshot:
        row = self._conn.execute(self._QUERY).fetchone()
        assert row is not None
        return CommitSnapshot(int(row[0]), int(row[1]), time.monotonic())

    def delta(self, before: CommitSnapshot, after: CommitSnapshot) -> tuple[int, int]:
        """(commits, writing transactions) between two snapshots, less our own."""
        commits = after.commits - before.commits - 1 - self.own
        return commits, after.next_xid - before.next_xid

    def background_rate(self, seconds: float) -> float:
        """Commits per second in this database while the benchmark does nothing."""
        time.sleep(STATS_FLUSH)
        before = self.snapshot()
        time.sleep(seconds)
        after = self.snapshot()
        commits = after.commits - before.commits - 1
        return max(0, commits) / (after.at - before.at)


@dataclass(frozen=True)
class CpuSample:
    process: float     # CPU seconds of the measured process (user + system)
    postgres: float    # CPU seconds of every live postgres process on this machine
    busy: float        # CPU seconds the whole machine was not idle
    at: float          # time.monotonic()


class CpuMeter:
    """Where CPU time goes while a process works: its own, PostgreSQL's, the machine's.

    PostgreSQL's share counts backends that are alive at both samples (take
    the second before the worker closes its connections), and other traffic too.
    """

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)

    def sample(self) -> CpuSample:
        own = self._process.cpu_times()
        postgres = 0.0
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if proc.info["name"] == "postgres" and times is not None:
                postgres += times.user + times.system
        machine = psutil.cpu_times()
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        return CpuSample(own.user + own.system, postgres, sum(machine) - idle, time.monotonic())

    @staticmethod
    def report(before: CpuSample, after: CpuSample) -> dict[str, float]:
        """CPU seconds of the process and of PostgreSQL, and machine busy (cores)."""
        wall = after.at - before.at
        return {
            "process_s": after.process - before.process,
            "postgres_s": max(0.0, after.postgres - before.postgres),
            "busy_cores": (after.busy - before.busy) / wall if wall > 0 else 0.0,
        }


def server_facts(dsn: str) -> dict[str, Any]:
    """The server settings that bound commit rates, for the report."""
    names = ("server_version", "synchronous_commit", "fsync", "wal_sync_method",
             "shared_buffers", "max_connections", "commit_delay")
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name",
            [list(names)]).fetchall()
        facts: dict[str, Any] = {name: value for name, value in rows}
        row = conn.execute("SELECT current_database()").fetchone()
        facts["database"] = row[0] if row else None
    return facts
