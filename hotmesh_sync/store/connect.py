"""Opening connections: the first one (which provisions the schema) and pools.

Every failure of a DSN, or of the server it names, becomes a
``ConfigurationError`` here with the DSN's password masked: psycopg's own
errors never reach the caller of ``MemFlow.init``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
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
        conn = psycopg.connect(dsn, autocommit=True)
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


def make_pool(dsn: str, max_size: int, name: str,
              idle_in_transaction: float | None = None) -> Pool:
    """A pool of autocommit connections, not yet open.

    With ``idle_in_transaction`` (seconds) the server ends a session that sits
    in an open transaction without sending anything for that long, which
    releases every lock it held: the backstop for workflow code that spins
    without a durable call, which nothing inside its thread can stop.
    """
    configure: Callable[[Any], None] | None = None
    if idle_in_transaction is not None:
        setting = f"{int(idle_in_transaction * 1000)}ms"

        def configure(conn: Any) -> None:
            conn.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                         [setting])

    return ConnectionPool(dsn, min_size=1, max_size=max_size, open=False,
                          kwargs={"autocommit": True}, name=name, configure=configure)


def open_pool(pool: Pool, timeout: float = 30.0) -> None:
    """Open ``pool`` and wait for its first connection; ConfigurationError if none comes."""
    try:
        pool.open(wait=True, timeout=timeout)
    except psycopg.OperationalError as exc:  # PoolTimeout: the server refused the pool
        raise ConfigurationError(f"cannot connect to PostgreSQL: {masked(exc)}") from exc
