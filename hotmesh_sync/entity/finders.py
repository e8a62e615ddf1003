"""Queries over many entities: find by conditions, by id, and expression indexes.

A condition's field is an entity path; it reaches SQL as a bound ``text[]``
in ``context #> path``, the same expression ``create_index`` indexes, so a
find on an indexed field can use the index. Values are bound as jsonb, and
the comparison is chosen by the value's Python type: numbers compare as
numbers, booleans as booleans, strings as text, and an ordering comparison
only ever matches values of the same JSON type.

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

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ..jsonvalue import dumps
from ..store.queries import Queries
from .paths import parse

Pool = ConnectionPool[Any]

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
_ORDERING = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
#: Every operator a condition may use.
OPERATORS = frozenset({"$eq", "$ne", "$in", "$like", *_ORDERING})
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
    return _fetch(pool, *find_query(schema, entity, conditions, limit, offset))


def find_query(
    schema: str, entity: str, conditions: Mapping[Any, Any], limit: int = 100, offset: int = 0
) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT that ``find`` runs, and its parameters (for EXPLAIN, or a cursor of your own)."""
    if not isinstance(conditions, Mapping):
        raise TypeError(f"conditions are a dict, not {type(conditions).__name__}")
    params = Params()
    clauses: list[sql.Composable] = []
    for field, wanted in conditions.items():
        segments = parse(list(field) if isinstance(field, tuple) else field)
        for operator, value in _operators(wanted):
            clauses.append(condition(params, segments, operator, value))
    return _query(schema, entity, params, clauses, limit, offset), params.values


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
    params = Params()
    clause = condition(params, parse(field), SYMBOLS[operator.upper()], value)
    return _fetch(pool, _query(schema, entity, params, [clause], limit, offset), params.values)


def find_by_id(pool: Pool, schema: str, entity: str, id: str) -> dict[str, Any] | None:
    """The entity ``id`` of kind ``entity`` as ``{"id", "context", "status"}``, or None."""
    _text(entity, "entity")
    _text(id, "id")
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(Queries(schema)["entity_find_by_id"], {"entity": entity, "id": id})
        row: dict[str, Any] | None = cur.fetchone()
    return row


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
    path = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, segments)))
    statement = sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON {schema}.jobs USING {kind} ((context #> {path}))"
        " WHERE entity = {entity}"
    ).format(
        name=sql.Identifier(name),
        schema=sql.Identifier(schema),
        kind=sql.SQL(kind),  # one of INDEX_KINDS, checked above
        path=path,
        entity=sql.Literal(entity),
    )
    with pool.connection() as conn, conn.transaction():
        # IF NOT EXISTS alone still fails when two sessions create the same index at once.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"hotmesh_sync:{schema}.{name}"]
        )
        conn.execute(statement)
    return name


def index_name(entity: str, segments: list[str], kind: str) -> str:
    """A name for the index of (entity, field, kind): a hash, so any text fits in 63 bytes."""
    digest = hashlib.sha256(json.dumps([entity, segments, kind]).encode()).hexdigest()
    return f"jobs_entity_{kind}_{digest[:24]}"


class Params:
    """Bound parameters of one query, each under a name of its own, so pieces
    of SQL can be composed in any order."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def bind(self, value: Any) -> sql.Placeholder:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


def condition(params: Params, segments: list[str], operator: str, value: Any) -> sql.Composable:
    """One condition on the field at ``segments``; its values go to ``params``."""
    field = sql.SQL("(context #> {}::text[])").format(params.bind(segments))
    if operator in ("$eq", "$ne") and value is None:
        # A missing field and a null one are the same thing in a document.
        text = (
            "({f} IS NULL OR {f} = 'null'::jsonb)"
            if operator == "$eq"
            else ("({f} IS NOT NULL AND {f} <> 'null'::jsonb)")
        )
        return sql.SQL(text).format(f=field)
    if operator == "$eq":
        return sql.SQL("{} = {}::jsonb").format(field, params.bind(_json(value)))
    if operator == "$ne":
        return sql.SQL("{} IS DISTINCT FROM {}::jsonb").format(field, params.bind(_json(value)))
    if operator == "$in":
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"$in needs a list of values, not {type(value).__name__}")
        wanted = [_json(item) for item in value if item is not None]
        clause = sql.SQL("{} = ANY({}::jsonb[])").format(field, params.bind(wanted))
        if len(wanted) < len(value):
            clause = sql.SQL("({} OR {} IS NULL OR {} = 'null'::jsonb)").format(
                clause, field, field
            )
        return clause
    if operator == "$like":
        if not isinstance(value, str):
            raise TypeError(f"LIKE needs a text pattern, not {type(value).__name__}")
        dumps(value, "a LIKE pattern")  # TypeError for NUL or a lone surrogate
        return sql.SQL("(jsonb_typeof({f}) = 'string' AND {f} #>> '{{}}' LIKE {v})").format(
            f=field, v=params.bind(value)
        )
    if operator in _ORDERING:
        # jsonb orders values of different types too (strings < numbers <
        # booleans); the type test keeps a comparison within one type.
        return sql.SQL("(jsonb_typeof({f}) = {t} AND {f} {op} {v}::jsonb)").format(
            f=field,
            t=sql.Literal(_json_type(operator, value)),
            op=sql.SQL(_ORDERING[operator]),
            v=params.bind(_json(value)),
        )
    raise ValueError(f"unknown operator {operator!r}; one of {sorted(OPERATORS)}")


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


def _json_type(operator: str, value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    raise TypeError(f"{operator} compares numbers, strings or booleans, not {type(value).__name__}")


def _query(
    schema: str,
    entity: str,
    params: Params,
    clauses: list[sql.Composable],
    limit: int,
    offset: int,
) -> sql.Composed:
    _text(entity, "entity")
    check_page(limit, offset)
    where = sql.SQL(" AND ").join([sql.SQL("entity = {}").format(params.bind(entity)), *clauses])
    query = sql.SQL(
        "SELECT id, context, status FROM {schema}.jobs WHERE {where}"
        " ORDER BY created_at DESC, id LIMIT {limit} OFFSET {offset}"
    ).format(
        schema=sql.Identifier(schema),
        where=where,
        limit=params.bind(limit),
        offset=params.bind(offset),
    )
    return query


def check_page(limit: Any, offset: Any = 0) -> None:
    """ValueError unless ``limit`` is an int in 0..MAX_LIMIT and ``offset`` one
    in 0..MAX_OFFSET (bools are not ints here)."""
    for name, number, most in (("limit", limit, MAX_LIMIT), ("offset", offset, MAX_OFFSET)):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= most:
            shown = repr(number) if len(repr(number)) <= 40 else repr(number)[:37] + "..."
            raise ValueError(f"{name} must be an integer from 0 to {most}, not {shown}")


def _fetch(pool: Pool, query: sql.Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        rows: list[dict[str, Any]] = cur.fetchall()
    return rows


def _json(value: Any) -> str:
    return dumps(value, "a condition value")


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
