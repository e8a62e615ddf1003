"""Opening connections: the first one (which provisions the schema) and pools.

Every failure of a DSN, or of the server it names, becomes a
``ConfigurationError`` here with the DSN's password masked: psycopg's own
errors never reach the caller of ``MemFlow.init``.

Behind PgBouncer in transaction pooling mode (``HOTMESH_PGBOUNCER``) each
transaction may run on another server session, shared with other clients:
nothing may live in the session. So pools then send no server-side prepared
statements (PgBouncer before 1.21 mixes them up between clients) and set
their timeouts local to each transaction instead of once per connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Transaction
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from ..errors import ConfigurationError
from .schema import provision

Pool = ConnectionPool[Any]

_PASSWORD_IN_URI = re.compile(r"(://[^:/@\s]*:)[^\s\"']*@")
_PASSWORD_OPTION = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def masked(exc: Exception) -> str:
    """An error's message without a password that libpq quoted from the DSN."""
    return _PASSWORD_OPTION.sub(r"\1***", _PASSWORD_IN_URI.sub(r"\1***@", str(exc)))


def provision_schema(dsn: str, schema: str) -> int:
    """Connect once, create or migrate ``schema``; the schema version."""
    if not isinstance(dsn, str) or "\x00" in dsn:
        # libpq would silently cut the string at a NUL.
        raise ConfigurationError("dsn must be a libpq connection string without NUL")
    try:
        # No server-side prepares: this may go through PgBouncer (and runs once).
        conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
    except psycopg.ProgrammingError as exc:  # libpq could not parse the string
        raise ConfigurationError(f"invalid dsn: {masked(exc)}") from exc
    except psycopg.Error as exc:
        raise ConfigurationError(f"cannot connect to PostgreSQL: {masked(exc)}") from exc
    with conn:
        try:
            return provision(conn, schema)
        except (psycopg.OperationalError, psycopg.errors.InsufficientPrivilege,
                psycopg.errors.ReservedName) as exc:
            # Lost connection, no right to create the schema, or a name PostgreSQL keeps.
            raise ConfigurationError(
                f"cannot set up schema {schema!r}: {masked(exc)}") from exc


class TransactionScopedConnection(psycopg.Connection[Any]):
    """A connection that applies ``local_settings`` at the start of each
    outermost transaction, where a session SET would outlive the transaction
    on a server session that PgBouncer then hands to other clients."""

    #: (name, value) pairs set with ``set_config(name, value, true)``.
    local_settings: tuple[tuple[str, str], ...] = ()

    @contextmanager
    def transaction(self, savepoint_name: str | None = None,
                    force_rollback: bool = False) -> Iterator[Transaction]:
        outermost = self.info.transaction_status == TransactionStatus.IDLE
        with super().transaction(savepoint_name, force_rollback) as tx:
            if outermost:
                for name, value in self.local_settings:
                    self.execute("SELECT set_config(%s, %s, true)", [name, value])
            yield tx


def make_pool(dsn: str, max_size: int, name: str,
              idle_in_transaction: float | None = None, *, pgbouncer: bool = False) -> Pool:
    """A pool of autocommit connections, not yet open.

    With ``idle_in_transaction`` (seconds) the server ends a session that sits
    in an open transaction without sending anything for that long, which
    releases every lock it held: the backstop for workflow code that spins
    without a durable call, which nothing inside its thread can stop.
    With ``pgbouncer`` the connections prepare nothing on the server and that
    timeout is set in each transaction (``TransactionScopedConnection``).
    """
    configure: Callable[[Any], None] | None = None
    if idle_in_transaction is not None:
        setting = ("idle_in_transaction_session_timeout", f"{int(idle_in_transaction * 1000)}ms")
        if pgbouncer:
            def configure(conn: Any) -> None:
                conn.local_settings = (setting,)
        else:
            def configure(conn: Any) -> None:
                conn.execute("SELECT set_config(%s, %s, false)", list(setting))

    if pgbouncer:
        return ConnectionPool(dsn, min_size=1, max_size=max_size, open=False,
                              connection_class=TransactionScopedConnection,
                              kwargs={"autocommit": True, "prepare_threshold": None},
                              name=name, configure=configure)
    return ConnectionPool(dsn, min_size=1, max_size=max_size, open=False,
                          kwargs={"autocommit": True}, name=name, configure=configure)


def open_pool(pool: Pool, timeout: float = 30.0) -> None:
    """Open ``pool`` and wait for its first connection; ConfigurationError if none comes."""
    try:
        pool.open(wait=True, timeout=timeout)
    except psycopg.OperationalError as exc:  # PoolTimeout: the server refused the pool
        raise ConfigurationError(f"cannot connect to PostgreSQL: {masked(exc)}") from exc
