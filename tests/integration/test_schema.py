"""Schema provisioning: idempotent, safe when concurrent, equal to its migrations."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync.store.queries import read_sql_file, render
from hotmesh_sync.store.schema import migrations, newest_version, provision


@pytest.fixture
def schemas(pg_dsn: str) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def describe(conn: psycopg.Connection[Any], schema: str) -> dict[str, Any]:
    """Everything that makes up a schema, in a comparable form."""
    columns = conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity"
        " FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2",
        [schema]).fetchall()
    indexes = conn.execute(
        "SELECT indexname, replace(indexdef, %s, 'S') FROM pg_indexes"
        " WHERE schemaname = %s ORDER BY 1", [schema + ".", schema]).fetchall()
    functions = conn.execute(
        "SELECT p.proname, md5(replace(p.prosrc, %s, 'S')), pg_get_function_arguments(p.oid)"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s ORDER BY 1, 3", [schema, schema]).fetchall()
    triggers = conn.execute(
        "SELECT event_object_table, trigger_name, event_manipulation, action_timing"
        " FROM information_schema.triggers WHERE trigger_schema = %s ORDER BY 1, 2, 3",
        [schema]).fetchall()
    return {"columns": columns, "indexes": indexes, "functions": functions,
            "triggers": triggers}


def test_schema_sql_equals_all_migrations_in_order(pg_dsn: str, schemas: list[str]) -> None:
    fresh, migrated = f"s_{uuid.uuid4().hex[:10]}", f"m_{uuid.uuid4().hex[:10]}"
    schemas += [fresh, migrated]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        provision(conn, fresh)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(migrated)))
        for _, filename in migrations():
            conn.execute(render(read_sql_file("migrations/" + filename), migrated))
        a, b = describe(conn, fresh), describe(conn, migrated)
    # Only provisioning keeps the version table; the rest must be identical.
    a["columns"] = [c for c in a["columns"] if c[0] != "schema_version"]
    a["indexes"] = [i for i in a["indexes"] if not i[0].startswith("schema_version")]
    assert a == b


def test_provision_is_idempotent_and_records_the_version(pg_dsn: str,
                                                         schemas: list[str]) -> None:
    name = f"i_{uuid.uuid4().hex[:10]}"
    schemas.append(name)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert provision(conn, name) == newest_version()
        assert provision(conn, name) == newest_version()
        versions = conn.execute(sql.SQL("SELECT version FROM {}.schema_version").format(
            sql.Identifier(name))).fetchall()
    assert versions == [(v,) for v, _ in migrations()]


def test_concurrent_provisioning_from_many_connections(pg_dsn: str,
                                                       schemas: list[str]) -> None:
    name = f"c_{uuid.uuid4().hex[:10]}"
    schemas.append(name)
    failures: list[BaseException] = []
    barrier = threading.Barrier(6)

    def init() -> None:
        try:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                barrier.wait()
                provision(conn, name)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=init) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_an_older_schema_is_migrated_forward(pg_dsn: str, schemas: list[str]) -> None:
    """A schema at version 1 gets the later migrations, once, and ends up like a new one."""
    old, fresh = f"o_{uuid.uuid4().hex[:10]}", f"n_{uuid.uuid4().hex[:10]}"
    schemas += [old, fresh]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(old)))
        conn.execute(render("CREATE TABLE {schema}.schema_version (version integer PRIMARY KEY,"
                            " applied_at timestamptz NOT NULL DEFAULT now())", old))
        conn.execute(render(read_sql_file("migrations/" + migrations()[0][1]), old))
        conn.execute(render("INSERT INTO {schema}.schema_version VALUES (1)", old))
        assert provision(conn, old) == newest_version()
        assert provision(conn, old) == newest_version()
        provision(conn, fresh)
        versions = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(
            sql.Identifier(old, "schema_version"))).fetchall()
        assert versions == [(v,) for v, _ in migrations()]
        a, b = describe(conn, old), describe(conn, fresh)
    assert a == b
