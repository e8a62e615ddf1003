"""Transactions the store shares with application code: a transactional
activity's (``workflow.transactional``).

The worker runs the activity's function and records its step on one
connection, in one transaction. This module is the psycopg side of that: the
default ``TransactionRunner`` (the worker's own pool), the savepoint around
the function with its statement timeout, and a ``Tx`` over a connection that
someone else opened, such as Django's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.abc import Loader
from psycopg.pq import Format, TransactionStatus

from ..errors import ConfigurationError
from .store import Conn, Store, TransactionRunner, Tx

T = TypeVar("T")

#: The types whose loaders a framework may change on its own connections
#: (Django's backend loads jsonb as text) while the store needs psycopg's own.
_STORE_TYPES = ("json", "jsonb")


def pool_transactions(store: Store) -> TransactionRunner:
    """The default runner: a transaction on a connection of ``store``'s pool,
    committed when ``work`` returns, rolled back when it raises."""

    def run(work: Callable[[Conn], T]) -> T:
        with store.pool.connection() as conn, conn.transaction():
            return work(conn)

    return run


def psycopg_connection(connection: Any) -> Conn:
    """The psycopg 3 connection itself; ConfigurationError for anything else
    (a psycopg2 connection, another database's driver)."""
    if not isinstance(connection, psycopg.Connection):
        raise ConfigurationError(
            "transactional activities need a psycopg 3 connection to PostgreSQL, "
            f"got {type(connection).__module__}.{type(connection).__name__}")
    return connection


def begin(conn: Conn) -> None:
    """Make sure ``conn`` is inside a transaction.

    A runner hands over a connection in one, but it may begin lazily: Django's
    ``atomic()`` turns autocommit off and sends nothing until the first
    statement. Starting it here makes the savepoint below a savepoint, not a
    transaction of its own that psycopg would commit at its end.
    """
    status = conn.info.transaction_status
    if status == TransactionStatus.IDLE:
        if conn.autocommit:
            raise ConfigurationError(
                "a TransactionRunner must call its work inside a transaction; "
                "this connection is in autocommit mode with none open")
        conn.execute("SELECT 1")


@contextmanager
def savepoint(conn: Conn, timeout: float | None) -> Iterator[None]:
    """A savepoint around the caller's code: an exception rolls back exactly
    its writes, and the transaction stays usable.

    With ``timeout`` (seconds) each statement inside is bounded by it
    (``statement_timeout``, local to the savepoint); a statement it cancels
    raises TimeoutError. The previous setting is back once the block ends.
    """
    try:
        with conn.transaction():
            previous = None if timeout is None else _statement_timeout(
                conn, f"{max(1, round(timeout * 1000))}ms")
            yield
            if previous is not None:
                _statement_timeout(conn, previous)
    except pg_errors.QueryCanceled as exc:
        if timeout is None:
            raise
        raise TimeoutError(
            f"a statement of the activity ran longer than its timeout of {timeout}s") from exc


def _statement_timeout(conn: Conn, value: str) -> str:
    """Set ``statement_timeout`` for the rest of the transaction (or until the
    enclosing savepoint rolls back); the value it had."""
    row = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
    conn.execute("SELECT set_config('statement_timeout', %s, true)", [value])
    assert row is not None
    return str(row[0])


@contextmanager
def shared_tx(store: Store, conn: Conn) -> Iterator[Tx]:
    """A ``Tx`` on ``conn``, a connection its owner holds inside a transaction.

    While the Tx is in use, json and jsonb are read with psycopg's own loaders
    (the store reads documents, not text); the connection's own are put back
    afterwards, so the owner's code (Django's ORM) sees what it expects.
    """
    replaced: list[tuple[int, type[Loader]]] = []
    for name in _STORE_TYPES:
        info = psycopg.adapters.types.get(name)
        if info is None:
            continue
        ours = psycopg.adapters.get_loader(info.oid, Format.TEXT)
        theirs = conn.adapters.get_loader(info.oid, Format.TEXT)
        if ours is not None and theirs is not None and theirs is not ours:
            conn.adapters.register_loader(info.oid, ours)
            replaced.append((info.oid, theirs))
    try:
        yield Tx(conn, store.queries)
    finally:
        for oid, loader in replaced:
            conn.adapters.register_loader(oid, loader)
