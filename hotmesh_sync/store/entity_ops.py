"""Running compiled entity commands on a connection; documents and history.

The entity side (``entity/execute.py``) checks and compiles a command;
``apply_compiled`` works inside the caller's transaction, so the durable core
can apply a command in the same transaction that records the workflow step
(the command then happens exactly once). It never commits a transaction the
caller opened: it runs in a savepoint there, which also means a refused
command (bad path, wrong type) rolls back alone and leaves the caller's
transaction usable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any, TypeVar

import jsonpatch
import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from ..errors import EntityTypeError, HotMeshError, InvalidPathError, WorkflowNotFoundError
from .connect import Pool
from .queries import Queries

Conn = psycopg.Connection[Any]
T = TypeVar("T")

#: SQLSTATEs raised by the entity_* SQL functions, and the errors they become.
SQLSTATE_ERRORS: dict[str, type[HotMeshError]] = {
    "HM001": EntityTypeError,
    "HM002": InvalidPathError,
}


#: Seconds a command from outside a workflow waits for the document's lock.
OUTSIDE_LOCK_WAIT = 5.0


def apply_compiled(
    conn: Conn,
    schema: str,
    job_id: str,
    params: Mapping[str, Any],
    history_sink: list[tuple[int, list[dict[str, Any]]]] | None = None,
) -> Any:
    """Run one compiled entity command (``CompiledCommand.params``) on the
    document of ``job_id``; the document after it.

    Runs in the caller's transaction (or in a transaction of its own when
    none is open) and writes the history row of the new version there too,
    or hands (version, patch) to ``history_sink`` for the caller to write
    before it commits. Raises WorkflowNotFoundError for an unknown job, and
    InvalidPathError or EntityTypeError for a command the document refuses;
    then nothing has changed.
    """
    queries = Queries(schema)
    # Inside the caller's transaction no savepoint is needed: a refused
    # command comes back as a value and changes nothing. Alone, it is its own
    # transaction.
    outside = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction() if outside else nullcontext(), \
            conn.cursor(row_factory=tuple_row) as cur:
        if outside:
            # A command from outside never queues long behind a running
            # activation that holds the document (API.md §10).
            cur.execute("SELECT set_config('lock_timeout', %s, true)",
                        [f"{int(OUTSIDE_LOCK_WAIT * 1000)}ms"])
        try:
            cur.execute(queries.text("entity_apply", conn), {"job_id": job_id, **params})
        except psycopg.errors.LockNotAvailable:
            raise TimeoutError(
                f"the entity of workflow {job_id!r} is held by a running activation for "
                f"more than {OUTSIDE_LOCK_WAIT:g}s; nothing was changed, try again") from None
        row = cur.fetchone()
        if row is None:
            raise WorkflowNotFoundError(job_id)
        before, after, version, changed, refused, message = row
        if refused is not None:
            raise SQLSTATE_ERRORS[refused](message)
        if changed:
            if history_sink is not None:
                history_sink.append((version, make_patch(before, after)))
            else:
                write_history(conn, schema, job_id, version, before, after)
    return after


def read_document(conn: Conn, schema: str, job_id: str, segments: list[str] | None) -> Any:
    """The value at ``segments`` of the document of ``job_id`` (None when absent);
    the whole document for ``segments=None``."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(Queries(schema)["entity_get"], {"job_id": job_id, "path": segments})
        row = cur.fetchone()
    if row is None:
        raise WorkflowNotFoundError(job_id)
    return row[0]


def history(conn: Conn, schema: str, job_id: str) -> list[dict[str, Any]]:
    """Every version of the document of ``job_id``, oldest first, as
    ``{"version": n, "at": iso time, "patch": [RFC 6902 ops]}``."""
    queries = Queries(schema)
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(queries["entity_history"], {"job_id": job_id})
        rows = cur.fetchall()
        if not rows:
            cur.execute(queries["entity_job_exists"], {"job_id": job_id})
            if cur.fetchone() is None:
                raise WorkflowNotFoundError(job_id)
    return [
        {"version": version, "at": at.isoformat(), "patch": patch} for version, at, patch in rows
    ]


def write_history(
    conn: Conn, schema: str, job_id: str, version: int, before: Any, after: Any
) -> None:
    """Record ``version`` of a document as the patch that turns ``before`` into ``after``."""
    conn.execute(
        Queries(schema)["entity_insert_history"],
        {"job_id": job_id, "version": version, "patch": Jsonb(make_patch(before, after))},
    )


def make_patch(before: Any, after: Any) -> list[dict[str, Any]]:
    """An RFC 6902 patch from ``before`` to ``after``.

    jsonpatch's diff of arrays has had bugs, and Python's ``==`` calls 1,
    1.0 and True equal; a patch that does not rebuild ``after`` exactly is
    replaced by one that replaces the whole document. So is the patch of a
    document too deep for jsonpatch's recursion (each command's value is at
    most 100 levels deep, but a document can grow deeper over many commands).
    """
    replace = [{"op": "replace", "path": "", "value": after}]
    try:
        ops: list[dict[str, Any]] = jsonpatch.make_patch(before, after).patch
        try:
            rebuilt = jsonpatch.apply_patch(before, ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, LookupError,
                TypeError):
            rebuilt = _MISMATCH
        if not same_json(rebuilt, after):
            ops = replace
    except RecursionError:
        ops = replace
    return ops


def same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values that tells booleans from numbers and ints from floats."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def run_on_pool(pool: Pool, work: Callable[[Conn], T]) -> T:
    """``work`` on a connection of ``pool``, for a command from outside a workflow."""
    with pool.connection() as conn:
        return work(conn)


_MISMATCH = object()
