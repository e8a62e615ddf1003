"""Queries over many entities: find by conditions, by id, and expression indexes.

This module parses and checks; ``store/finders.py`` turns the checked
conditions into SQL. A value compares with stored values of its own JSON
type: numbers as numbers, booleans as booleans, strings as text.

So a number stored as a string (``{"age": "42"}``) is a string: a numeric
condition (``{"age": {"$gt": 30}}``) never matches it, and a string
condition compares it as text (``"100" < "42"``). Store numbers as JSON
numbers, or query such documents with SQL of your own and a cast
(``(context->>'age')::numeric > 30``).

Everything is checked before any SQL runs: ``limit`` is an int from 0 to
MAX_LIMIT and ``offset`` one from 0 to MAX_OFFSET (ValueError otherwise);
entity labels and ids are text without NUL or lone surrogates (ValueError);
fields are paths (InvalidPathError, a ValueError); values, LIKE patterns
included, are JSON without NUL or lone surrogates (TypeError).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..store import finders as sql_finders
from ..store.connect import Pool
from ..store.finders import OPERATORS, Condition
from .paths import parse

__all__ = ["MAX_LIMIT", "MAX_OFFSET", "OPERATORS", "SYMBOLS", "Entities", "check_page",
           "create_index", "find", "find_by_condition", "find_by_id", "find_query",
           "index_name"]

#: find_by_condition's operators, as find's ``$`` operators.
SYMBOLS = {
    "=": "$eq",
    "==": "$eq",
    "!=": "$ne",
    "<>": "$ne",
    ">": "$gt",
    ">=": "$gte",
    "<": "$lt",
    "<=": "$lte",
    "LIKE": "$like",
    "IN": "$in",
}
INDEX_KINDS = frozenset({"btree", "gin"})
#: The most rows one query may ask for.
MAX_LIMIT = 100_000
#: The largest offset one query may skip (the range of a PostgreSQL integer).
MAX_OFFSET = 2**31 - 1


def find(
    pool: Pool,
    schema: str,
    entity: str,
    conditions: Mapping[Any, Any],
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Entities of kind ``entity`` that meet every condition, newest first.

    ``conditions`` maps a field (dotted text, or a tuple of segments) to a
    value (equality) or to ``{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte"|"$in"|"$like": value}``.
    A value compares with stored values of its own JSON type only: a number
    stored as a string (``"42"``) is text, compared as text (see the module
    docstring). ``limit`` is 0..MAX_LIMIT, ``offset`` 0..MAX_OFFSET.
    """
    return sql_finders.fetch(pool, *find_query(schema, entity, conditions, limit, offset))


def find_query(
    schema: str, entity: str, conditions: Mapping[Any, Any], limit: int = 100, offset: int = 0
) -> tuple[Any, dict[str, Any]]:
    """The SELECT that ``find`` runs, and its parameters (for EXPLAIN, or a cursor of your own)."""
    if not isinstance(conditions, Mapping):
        raise TypeError(f"conditions are a dict, not {type(conditions).__name__}")
    parsed = [
        Condition(parse(list(field) if isinstance(field, tuple) else field), operator, value)
        for field, wanted in conditions.items()
        for operator, value in _operators(wanted)
    ]
    _check_query(entity, limit, offset)
    return sql_finders.select_query(schema, entity, parsed, limit, offset)


def find_by_condition(
    pool: Pool,
    schema: str,
    entity: str,
    field: Any,
    value: Any,
    operator: str = "=",
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Entities whose ``field`` compares to ``value`` by ``operator``
    (= != > >= < <= LIKE IN), newest first."""
    if not isinstance(operator, str) or operator.upper() not in SYMBOLS:
        raise ValueError(f"unknown operator {operator!r}; one of {sorted(SYMBOLS)}")
    parsed = [Condition(parse(field), SYMBOLS[operator.upper()], value)]
    _check_query(entity, limit, offset)
    return sql_finders.fetch(
        pool, *sql_finders.select_query(schema, entity, parsed, limit, offset))


def find_by_id(pool: Pool, schema: str, entity: str, id: str) -> dict[str, Any] | None:
    """The entity ``id`` of kind ``entity`` as ``{"id", "context", "status"}``, or None."""
    _text(entity, "entity")
    _text(id, "id")
    return sql_finders.select_by_id(pool, schema, entity, id)


def create_index(pool: Pool, schema: str, entity: str, field: Any, *, kind: str = "btree") -> str:
    """Index ``field`` for entities of kind ``entity``; idempotent. Returns the index name.

    A partial expression index on ``context #> path`` for rows of that
    entity: btree (equality and ranges, what ``find`` uses) or gin (jsonb
    containment, ``@>``, for queries of your own). Plain CREATE INDEX: it
    holds writes to the jobs table off while it builds.
    """
    _text(entity, "entity")
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; one of {sorted(INDEX_KINDS)}")
    segments = parse(field)
    name = index_name(entity, segments, kind)
    sql_finders.create_index(pool, schema, entity, segments, kind, name)
    return name


def index_name(entity: str, segments: list[str], kind: str) -> str:
    """A name for the index of (entity, field, kind): a hash, so any text fits in 63 bytes."""
    digest = hashlib.sha256(json.dumps([entity, segments, kind]).encode()).hexdigest()
    return f"jobs_entity_{kind}_{digest[:24]}"


class Entities:
    """``mf.entities``: the finders, bound to one pool and schema."""

    def __init__(self, pool: Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema

    def find(
        self, entity: str, conditions: Mapping[Any, Any], limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        return find(self.pool, self.schema, entity, conditions, limit, offset)

    def find_by_condition(
        self,
        entity: str,
        field: Any,
        value: Any,
        operator: str = "=",
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        return find_by_condition(
            self.pool, self.schema, entity, field, value, operator, limit, offset
        )

    def find_by_id(self, entity: str, id: str) -> dict[str, Any] | None:
        return find_by_id(self.pool, self.schema, entity, id)

    def create_index(self, entity: str, field: Any, *, kind: str = "btree") -> str:
        return create_index(self.pool, self.schema, entity, field, kind=kind)


def _operators(wanted: Any) -> list[tuple[str, Any]]:
    # A dict whose keys all start with "$" holds operators; any other value
    # (an object included) is compared for equality.
    if (
        isinstance(wanted, Mapping)
        and wanted
        and all(isinstance(k, str) and k.startswith("$") for k in wanted)
    ):
        unknown = set(wanted) - OPERATORS
        if unknown:
            raise ValueError(f"unknown operator(s) {sorted(unknown)}; one of {sorted(OPERATORS)}")
        return list(wanted.items())
    if isinstance(wanted, Mapping) and any(
        isinstance(k, str) and k.startswith("$") for k in wanted
    ):
        raise ValueError("a condition mixes $operators with plain keys")
    return [("$eq", wanted)]


def _check_query(entity: str, limit: int, offset: int) -> None:
    _text(entity, "entity")
    check_page(limit, offset)


def check_page(limit: Any, offset: Any = 0) -> None:
    """ValueError unless ``limit`` is an int in 0..MAX_LIMIT and ``offset`` one
    in 0..MAX_OFFSET (bools are not ints here)."""
    for name, number, most in (("limit", limit, MAX_LIMIT), ("offset", offset, MAX_OFFSET)):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= most:
            shown = repr(number) if len(repr(number)) <= 40 else repr(number)[:37] + "..."
            raise ValueError(f"{name} must be an integer from 0 to {most}, not {shown}")


def _text(value: Any, what: str) -> None:
    # Not text: TypeError. Text PostgreSQL cannot hold (NUL, a lone
    # surrogate): ValueError, as for names everywhere (API.md §10). Other
    # text is looked for as it is: rows written with SQL may hold any label.
    if not isinstance(value, str):
        raise TypeError(f"{what} is text, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains a lone surrogate, which cannot be stored") from None
