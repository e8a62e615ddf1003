"""Transactional activities on Django's own connection.

``manage.py hotmesh_worker`` gives its worker this runner: a transactional
activity (``workflow.transactional``) then runs inside
``transaction.atomic()`` on the Django connection of its worker thread, and
its step is recorded through that connection before ``atomic()`` commits.
ORM writes the function makes commit with the step, exactly once, or not at
all; the function's ``conn`` argument is that connection's psycopg one.

Django's database must be hotmesh_sync's: PostgreSQL, through psycopg 3
(which Django's backend uses whenever it is installed, as it is here). The
worker checks on each attempt that this connection sees the task it leased,
and fails the activity with ``ConfigurationError`` when it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from ...errors import ConfigurationError
from ...store.store import TransactionRunner
from ...store.transactions import psycopg_connection

T = TypeVar("T")


def django_transactions(using: str = DEFAULT_DB_ALIAS) -> TransactionRunner:
    """A runner that opens ``transaction.atomic(using=using)`` on Django's connection."""

    def run(work: Callable[[Any], T]) -> T:
        connection = connections[using]
        if connection.vendor != "postgresql":
            raise ConfigurationError(
                f"transactional activities run on Django's database {using!r}, which must "
                f"be hotmesh_sync's PostgreSQL database; it is {connection.vendor!r}")
        if not connection.in_atomic_block:
            # What Django does at the start of a request: a worker thread
            # lives long, and its connection may have died or grown too old.
            connection.close_if_unusable_or_obsolete()
        with transaction.atomic(using=using):
            connection.ensure_connection()
            return work(psycopg_connection(connection.connection))

    return run
