"""Provisioning and migrating one app's schema.

``schema.sql`` is the newest schema in one file; ``migrations/NNNN_*.sql``
bring an older schema forward one version at a time. A fresh schema gets
``schema.sql``; an existing one gets the migrations it lacks. An advisory
lock per schema makes concurrent ``init`` calls from many processes safe.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg
from psycopg import sql

from .queries import read_sql_file, render

_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


def migrations() -> list[tuple[int, str]]:
    """(version, file name) of every migration, oldest first."""
    folder = resources.files("hotmesh_sync.store").joinpath("sql").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name))
    return sorted(found)


def newest_version() -> int:
    return migrations()[-1][0]


def provision(conn: psycopg.Connection[object], schema: str) -> int:
    """Create or migrate ``schema`` to the newest version; return that version.

    Runs in its own transaction on ``conn`` (which must not be inside one).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["hotmesh_sync:" + schema])
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            render(
                "CREATE TABLE IF NOT EXISTS {schema}.schema_version ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
        )
        row = conn.execute(
            render("SELECT max(version) FROM {schema}.schema_version", schema)).fetchone()
        current = int(row[0]) if row and row[0] is not None else 0  # type: ignore[index]
        newest = newest_version()
        if current == 0:
            _run_script(conn, read_sql_file("schema.sql"), schema)
            _mark(conn, schema, [v for v, _ in migrations()])
        elif current < newest:
            pending = [(v, f) for v, f in migrations() if v > current]
            for _, filename in pending:
                _run_script(conn, read_sql_file("migrations/" + filename), schema)
            _mark(conn, schema, [v for v, _ in pending])
        return max(current, newest)


def _run_script(conn: psycopg.Connection[object], text: str, schema: str) -> None:
    # The script holds many statements; psycopg sends them as one simple query
    # when no parameters are given.
    conn.execute(render(text, schema))


def _mark(conn: psycopg.Connection[object], schema: str, versions: list[int]) -> None:
    for version in versions:
        conn.execute(
            render("INSERT INTO {schema}.schema_version (version) VALUES (%s)", schema), [version]
        )
