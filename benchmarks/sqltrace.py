"""Counting and timing the worker's SQL statements, by their name in queries.sql.

Installed only in a benchmark's worker process, and only when asked
(``--profile``): it wraps ``psycopg.Cursor.execute`` and the enter/exit of
``psycopg.Transaction`` (BEGIN/SAVEPOINT, COMMIT/RELEASE) with a timer. A
statement is named by matching the composed query object against the named
queries the store renders for the schema (they are cached, so it is the
same object); anything else is named by its first words.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from hotmesh_sync.store.queries import Queries, parse_named, read_sql_file

#: Files of named queries, as the store loads them.
NAMED_FILES = ("queries.sql", "entity_queries.sql", "schedule_queries.sql")

Trace = dict[str, tuple[int, float]]   # name -> (count, total seconds)


class StatementTrace:
    def __init__(self, schema: str) -> None:
        queries = Queries(schema)
        self._queries = queries
        #: The store executes a named query as the bytes it rendered once.
        self._by_bytes: dict[bytes, str] = {}
        self._names: dict[int, str] = {}
        for filename in NAMED_FILES:
            try:
                names = parse_named(read_sql_file(filename))
            except FileNotFoundError:
                continue
            for name in names:
                self._names[id(queries[name])] = name
        self._lock = threading.Lock()
        self._totals: dict[str, list[float]] = {}

    def install(self) -> None:
        """Wrap psycopg's execute and transaction blocks in this process."""
        trace = self
        execute = psycopg.Cursor.execute
        enter = psycopg.Transaction.__enter__
        leave = psycopg.Transaction.__exit__

        def timed_execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return execute(cursor, query, *args, **kwargs)
            finally:
                trace.add(trace.name_of(query), time.perf_counter() - began)

        def timed_enter(tx: Any) -> Any:
            return trace.timed("tx: begin/savepoint", lambda: enter(tx))

        def timed_exit(tx: Any, *exc: Any) -> Any:
            return trace.timed("tx: commit/release", lambda: leave(tx, *exc))

        psycopg.Cursor.execute = timed_execute  # type: ignore[method-assign, assignment]
        psycopg.Transaction.__enter__ = timed_enter  # type: ignore[method-assign]
        psycopg.Transaction.__exit__ = timed_exit  # type: ignore[method-assign]

    def name_of(self, query: Any) -> str:
        if isinstance(query, bytes):
            found = self._by_bytes.get(query)
            if found is None:  # rendered since the last look
                self._by_bytes = {text: name for name, text in self._queries.rendered_bytes()}
                found = self._by_bytes.get(query)
            if found is not None:
                return found
            return "other: " + " ".join(query.decode("utf-8", "replace").split()[:3])
        name = self._names.get(id(query))
        if name is not None:
            return name
        if isinstance(query, sql.Composable):
            return "other: composed"
        return "other: " + " ".join(str(query).split()[:3])

    def timed(self, name: str, action: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        try:
            return action()
        finally:
            self.add(name, time.perf_counter() - began)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            entry = self._totals.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def snapshot(self) -> Trace:
        with self._lock:
            return {name: (int(c), s) for name, (c, s) in self._totals.items()}


def render(trace: Trace, per: int, title: str) -> str:
    """The statements, most time first, as counts and milliseconds per ``per`` workflows."""
    rows = sorted(trace.items(), key=lambda item: -item[1][1])
    total = sum(seconds for _, seconds in trace.values()) or 1.0
    lines = [title, f"{'per wf':>8} {'ms/wf':>8} {'mean ms':>8} {'% time':>7}  statement"]
    for name, (count, seconds) in rows:
        lines.append(f"{count / per:8.2f} {1000 * seconds / per:8.3f} "
                     f"{1000 * seconds / count:8.3f} {100 * seconds / total:7.1f}  {name}")
    return "\n".join(lines)
