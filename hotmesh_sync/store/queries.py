"""Named SQL queries, loaded from the .sql files beside this module.

A file holds blocks that start with ``-- name: some_name``; each block is one
statement (or several, for schema scripts). ``{schema}`` in the text becomes the
app's quoted schema name through ``psycopg.sql``, so no user text is ever
formatted into SQL.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def read_sql_file(name: str) -> str:
    """The text of one file under ``store/sql``, e.g. ``"migrations/0001_initial.sql"``."""
    path = resources.files("hotmesh_sync.store").joinpath("sql")
    for part in name.split("/"):
        path = path.joinpath(part)
    return path.read_text(encoding="utf-8")


def parse_named(text: str) -> dict[str, str]:
    """Split a file of ``-- name:`` blocks into {name: sql text}."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for i in range(1, len(parts), 2):
        name, body = parts[i], parts[i + 1].strip()
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = body
    return queries


def render(text: str, schema: str) -> sql.Composed:
    """Bind ``{schema}`` in ``text`` to the quoted identifier ``schema``."""
    return sql.SQL(text).format(schema=sql.Identifier(schema))


class Queries:
    """Every named query of ``queries.sql``, rendered for one schema."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._rendered = _rendered_for(schema)
        self._bytes = _BYTES.setdefault(schema, {})

    def __getitem__(self, name: str) -> sql.Composed:
        return self._rendered[name]

    def text(self, name: str, conn: psycopg.Connection[Any]) -> bytes:
        """The query as bytes, rendered once: composing it on every execute
        costs the hot path more than the round trip itself."""
        found = self._bytes.get(name)
        if found is None:
            found = self._bytes[name] = self._rendered[name].as_bytes(conn)
        return found

    def __contains__(self, name: str) -> bool:
        return name in self._rendered

    def rendered_bytes(self) -> list[tuple[str, bytes]]:
        """(name, text) of every query rendered to bytes so far (for tracing)."""
        return list(self._bytes.items())


#: Rendered query bytes, per schema and name, shared by every Queries.
_BYTES: dict[str, dict[str, bytes]] = {}


@lru_cache(maxsize=64)
def _rendered_for(schema: str) -> dict[str, sql.Composed]:
    named: dict[str, str] = {}
    for filename in ("queries.sql", "entity_queries.sql", "schedule_queries.sql"):
        try:
            text = read_sql_file(filename)
        except FileNotFoundError:
            continue
        for name, body in parse_named(text).items():
            if name in named:
                raise ValueError(f"query {name!r} is defined twice")
            named[name] = body
    return {name: render(body, schema) for name, body in named.items()}
