"""The SQL of the finders: one SELECT over many entities, by id, and indexes.

The entity side (``entity/finders.py``) parses and checks every condition;
here each arrives as a ``Condition`` (parsed path, ``$`` operator, value) and
becomes SQL. A field reaches SQL as a bound ``text[]`` in ``context #> path``,
the same expression ``create_index`` indexes, so a find on an indexed field
can use the index. Values are bound as jsonb, and the comparison is chosen by
the value's Python type: numbers compare as numbers, booleans as booleans,
strings as text, and an ordering comparison only matches values of one JSON type.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from psycopg import sql
from psycopg.rows import dict_row

from ..jsonvalue import dumps
from .connect import Pool
from .queries import Queries

_ORDERING = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
#: Every operator a condition may use.
OPERATORS = frozenset({"$eq", "$ne", "$in", "$like", *_ORDERING})


class Condition(NamedTuple):
    """One checked condition: the field's path segments, a ``$`` operator, a value."""

    segments: list[str]
    operator: str
    value: Any


def select_query(schema: str, entity: str, conditions: list[Condition], limit: int,
                 offset: int) -> tuple[sql.Composed, dict[str, Any]]:
    """The SELECT for entities of kind ``entity`` meeting every condition, and its
    parameters. TypeError for a value a condition cannot compare."""
    params = Params()
    clauses = [condition(params, c.segments, c.operator, c.value) for c in conditions]
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
    return query, params.values


def fetch(pool: Pool, query: sql.Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a query from ``select_query``; its rows as dicts."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        rows: list[dict[str, Any]] = cur.fetchall()
    return rows


def select_by_id(pool: Pool, schema: str, entity: str, id: str) -> dict[str, Any] | None:
    """The row ``{"id", "context", "status"}`` of entity ``id`` of kind ``entity``, or None."""
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(Queries(schema)["entity_find_by_id"], {"entity": entity, "id": id})
        row: dict[str, Any] | None = cur.fetchone()
    return row


def create_index(pool: Pool, schema: str, entity: str, segments: list[str], kind: str,
                 name: str) -> None:
    """CREATE INDEX ``name`` (``kind``: btree or gin, checked by the caller) on
    ``context #> segments`` for rows of ``entity``; idempotent, safe when racing."""
    path = sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, segments)))
    statement = sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON {schema}.jobs USING {kind} ((context #> {path}))"
        " WHERE entity = {entity}"
    ).format(
        name=sql.Identifier(name),
        schema=sql.Identifier(schema),
        kind=sql.SQL(kind),
        path=path,
        entity=sql.Literal(entity),
    )
    with pool.connection() as conn, conn.transaction():
        # IF NOT EXISTS alone still fails when two sessions create the same index at once.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"hotmesh_sync:{schema}.{name}"]
        )
        conn.execute(statement)


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


def _json_type(operator: str, value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    raise TypeError(f"{operator} compares numbers, strings or booleans, not {type(value).__name__}")


def _json(value: Any) -> str:
    return dumps(value, "a condition value")
