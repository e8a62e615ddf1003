"""The dashboard's reads: read-only, bounded, and shaped for its pages.

Every query runs in a ``READ ONLY`` transaction, so no page can write even
if a bug asked it to. The list of workflows is composed here because its
filters vary; the rest are the named queries of ``dashboard_queries.sql``.

Paging is by keyset (``created_at, id``), not OFFSET: the thousandth page
costs what the first does. Counts per status stop at ``COUNT_CAP`` rows so
a broad text search cannot make every page slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .connect import Pool
from .queries import parse_named, read_sql_file, render

#: Counts per status stop here ("10000+"): a count must not cost a full scan.
COUNT_CAP = 10_000
STATUSES = ("pending", "running", "waiting", "completed", "failed", "interrupted")


@dataclass(frozen=True)
class WorkflowFilter:
    """What the workflows page shows: every field optional."""

    status: str | None = None
    entity: str | None = None
    name: str | None = None
    queue: str | None = None
    #: A condition on the entity document (see ``search_condition``).
    search: EntitySearch | None = None


@dataclass(frozen=True)
class EntitySearch:
    """A condition on the entity document, in one of three index-friendly forms:
    ``contains`` (``context @> value``), ``jsonpath`` (``context @? path``),
    or ``text`` (a case-insensitive substring of the document's JSON text)."""

    kind: str
    value: Any


@dataclass
class Page:
    """One page of workflows, newest first, with cursors to its neighbours."""

    rows: list[dict[str, Any]]
    older: tuple[datetime, str] | None = None
    newer: tuple[datetime, str] | None = None
    counts: dict[str, int] = field(default_factory=dict)


@lru_cache(maxsize=64)
def _queries(schema: str) -> dict[str, sql.Composed]:
    named = parse_named(read_sql_file("dashboard_queries.sql"))
    return {name: render(body, schema) for name, body in named.items()}


@contextmanager
def _read_only(pool: Pool) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
    with pool.connection() as conn, conn.transaction(), \
            conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        yield cur


def fetch(pool: Pool, schema: str, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of one named dashboard query."""
    with _read_only(pool) as cur:
        cur.execute(_queries(schema)[name], params)
        return list(cur.fetchall())


def fetch_many(pool: Pool, schema: str,
               wanted: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Several named queries in one read-only transaction (one consistent
    snapshot for a page): ``{key: (query name, params)}`` to ``{key: rows}``."""
    found: dict[str, list[dict[str, Any]]] = {}
    with _read_only(pool) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for key, (name, params) in wanted.items():
            cur.execute(_queries(schema)[name], params)
            found[key] = list(cur.fetchall())
    return found


def list_workflows(pool: Pool, schema: str, where: WorkflowFilter, per_page: int,
                   before: tuple[datetime, str] | None = None,
                   after: tuple[datetime, str] | None = None) -> Page:
    """A page of workflows matching ``where``: those older than ``before``,
    or (going back) newer than ``after``, else the newest."""
    clauses, params = _conditions(where, with_status=True)
    newest_first = after is None
    if before is not None:
        clauses.append(sql.SQL("(created_at, id) < ({}, {})").format(
            sql.Literal(before[0]), sql.Literal(before[1])))
    if after is not None:
        clauses.append(sql.SQL("(created_at, id) > ({}, {})").format(
            sql.Literal(after[0]), sql.Literal(after[1])))
    order = sql.SQL("created_at DESC, id DESC" if newest_first else "created_at, id")
    query = sql.SQL(
        "SELECT id, entity, workflow_name, task_queue, status, created_at, updated_at,"
        " completed_at, waiting_for FROM {schema}.jobs {where} ORDER BY {order} LIMIT {limit}"
    ).format(schema=sql.Identifier(schema), where=_where(clauses), order=order,
             limit=sql.Literal(per_page + 1))
    with _read_only(pool) as cur:
        # Never prepared: a generic plan cannot see that a containment search
        # is selective enough for the GIN index, and scans the whole table.
        cur.execute(query, params, prepare=False)
        rows = list(cur.fetchall())
        full = len(rows) > per_page or before is not None or after is not None
        counts = (_counts(cur, schema, where) if full or where.status is not None
                  else _tally(rows))
    more = len(rows) > per_page
    rows = rows[:per_page]
    if not newest_first:
        rows.reverse()
    page = Page(rows=rows, counts=counts)
    if rows:
        first, last = rows[0], rows[-1]
        # Going back from `after`, there is an older page by construction.
        if (more and newest_first) or after is not None:
            page.older = (last["created_at"], last["id"])
        if before is not None or (more and not newest_first):
            page.newer = (first["created_at"], first["id"])
    return page


def _tally(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Counts per status when the first page holds every match: no second scan."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
    return counts


def _counts(cur: psycopg.Cursor[dict[str, Any]], schema: str,
            where: WorkflowFilter) -> dict[str, int]:
    """Workflows per status under every filter but the status one, each
    count stopping at COUNT_CAP + 1."""
    clauses, params = _conditions(where, with_status=False)
    query = sql.SQL(
        "SELECT status, count(*) AS n FROM (SELECT status FROM {schema}.jobs {where}"
        " LIMIT {cap}) AS capped GROUP BY status"
    ).format(schema=sql.Identifier(schema), where=_where(clauses),
             cap=sql.Literal(COUNT_CAP + 1))
    cur.execute(query, params, prepare=False)
    return {str(row["status"]): int(row["n"]) for row in cur.fetchall()}


def _conditions(where: WorkflowFilter,
                with_status: bool) -> tuple[list[sql.Composable], dict[str, Any]]:
    clauses: list[sql.Composable] = []
    params: dict[str, Any] = {}
    columns = [("entity", where.entity), ("workflow_name", where.name),
               ("task_queue", where.queue)]
    if with_status:
        columns.insert(0, ("status", where.status))
    for column, value in columns:
        if value is not None:
            clauses.append(sql.SQL("{} = {}").format(sql.Identifier(column),
                                                     sql.Placeholder(column)))
            params[column] = value
    if where.search is not None:
        clauses.append(_search_clause(where.search))
        params["search"] = _search_param(where.search)
    return clauses, params


def _search_clause(search: EntitySearch) -> sql.Composable:
    if search.kind == "contains":
        return sql.SQL("context @> {}").format(sql.Placeholder("search"))
    if search.kind == "jsonpath":
        return sql.SQL("context @? {}::jsonpath").format(sql.Placeholder("search"))
    return sql.SQL("context::text ILIKE {} ESCAPE '\\'").format(sql.Placeholder("search"))


def _search_param(search: EntitySearch) -> Any:
    if search.kind == "contains":
        return Jsonb(search.value)
    if search.kind == "jsonpath":
        return search.value
    escaped = str(search.value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(clauses: list[sql.Composable]) -> sql.Composable:
    if not clauses:
        return sql.SQL("")
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses)


def check_jsonpath(pool: Pool, path: str) -> str | None:
    """None when ``path`` is a valid SQL/JSON path, else PostgreSQL's reason."""
    try:
        with _read_only(pool) as cur:
            cur.execute("SELECT %s::jsonpath", [path])
    except psycopg.errors.DataError as exc:  # syntax errors of jsonpath are data errors
        return str(exc.diag.message_primary or exc)
    except psycopg.errors.SyntaxError as exc:
        return str(exc.diag.message_primary or exc)
    return None
