"""Finding entities by their documents, and indexing the fields found by."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from hotmesh_sync.entity import Entities, Entity
from hotmesh_sync.entity.finders import find_query, index_name
from hotmesh_sync.errors import InvalidPathError
from hotmesh_sync.store.queries import render
from hotmesh_sync.store.schema import provision

Conn = psycopg.Connection[Any]
JobMaker = Callable[..., str]

USERS = [
    # id, context, status; u1 is the oldest, u6 the newest
    (
        "u1",
        {"name": "ann", "age": 30, "active": True, "plan": {"tier": "gold"}, "tags": ["a"]},
        "completed",
    ),
    ("u2", {"name": "bob", "age": 25, "active": False, "plan": {"tier": "free"}}, "running"),
    ("u3", {"name": "cy", "age": 41.5, "active": True, "plan": {"tier": "gold"}}, "running"),
    ("u4", {"name": "dee", "age": "thirty", "active": "yes", "plan": None}, "pending"),
    ("u5", {"name": "eve", "active": True, "nickname": None}, "failed"),
    ("u6", {"name": "ann", "age": 30.0, "active": True, "plan": {"tier": "silver"}}, "completed"),
]


@pytest.fixture
def entities(
    entity_pool: ConnectionPool[Any], entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> Entities:
    """Six users and one order, created a minute apart in the order of USERS."""
    for minutes, (job_id, context, status) in enumerate(USERS):
        make_job(job_id, entity="user", context=context, status=status)
        entity_conn.execute(
            render(
                "UPDATE {schema}.jobs SET created_at = now() - make_interval(mins => %s)"
                " WHERE id = %s",
                entity_schema,
            ),
            [60 - minutes, job_id],
        )
    make_job("o1", entity="order", context={"name": "ann", "age": 30, "total_amount": 1200})
    return Entities(entity_pool, entity_schema)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


def test_find_returns_id_context_status_newest_first(entities: Entities) -> None:
    """Rows come as {"id", "context", "status"}, newest first, of the named entity only."""
    rows = entities.find("user", {"name": "ann"})
    assert rows == [
        {"id": "u6", "context": USERS[5][1], "status": "completed"},
        {"id": "u1", "context": USERS[0][1], "status": "completed"},
    ]
    assert ids(entities.find("user", {})) == ["u6", "u5", "u4", "u3", "u2", "u1"]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"age": 30}, ["u6", "u1"]),  # 30 and 30.0 are the same number
        ({"age": {"$eq": 30.0}}, ["u6", "u1"]),
        ({"age": "thirty"}, ["u4"]),
        ({"active": True}, ["u6", "u5", "u3", "u1"]),  # not the string "yes"
        ({"active": False}, ["u2"]),
        ({"plan.tier": "gold"}, ["u3", "u1"]),
        ({("plan", "tier"): "gold", "age": {"$gt": 35}}, ["u3"]),
        ({"plan": {"tier": "free"}}, ["u2"]),  # a plain object: equality
        ({"tags": ["a"]}, ["u1"]),
        ({"nickname": None}, ["u6", "u5", "u4", "u3", "u2", "u1"]),  # null or missing
        ({"plan": None}, ["u5", "u4"]),
        ({"plan": {"$ne": None}}, ["u6", "u3", "u2", "u1"]),
        ({"name": {"$ne": "ann"}}, ["u5", "u4", "u3", "u2"]),
        ({"age": {"$ne": 30}}, ["u5", "u4", "u3", "u2"]),  # missing counts as not equal
        ({"age": {"$gt": 25}}, ["u6", "u3", "u1"]),  # the string "thirty" never matches
        ({"age": {"$gte": 25}}, ["u6", "u3", "u2", "u1"]),
        ({"age": {"$lt": 30}}, ["u2"]),
        ({"age": {"$lte": 30}}, ["u6", "u2", "u1"]),
        ({"age": {"$gt": 20, "$lt": 41.5}}, ["u6", "u2", "u1"]),
        ({"name": {"$gt": "cy"}}, ["u5", "u4"]),  # strings compare as text
        ({"name": {"$lte": "bob"}}, ["u6", "u2", "u1"]),
        ({"active": {"$gt": False}}, ["u6", "u5", "u3", "u1"]),
        ({"age": {"$in": [25, 41.5]}}, ["u3", "u2"]),
        ({"name": {"$in": ["eve", "bob", "zed"]}}, ["u5", "u2"]),
        ({"plan": {"$in": [None, {"tier": "free"}]}}, ["u5", "u4", "u2"]),
        ({"name": {"$in": []}}, []),
        ({"name": {"$like": "%e%"}}, ["u5", "u4"]),
        ({"missing.deep.path": 1}, []),
    ],
)
def test_find_conditions(
    entities: Entities, conditions: dict[Any, Any], expected: list[str]
) -> None:
    """Equality and $operators: numbers as numbers, booleans as booleans, strings as text."""
    assert ids(entities.find("user", conditions)) == expected


@pytest.mark.parametrize(
    ("field", "value", "operator", "expected"),
    [
        ("age", 30, "=", ["u6", "u1"]),
        ("age", 30, "!=", ["u5", "u4", "u3", "u2"]),
        ("age", 30, ">", ["u3"]),
        ("age", 30, ">=", ["u6", "u3", "u1"]),
        ("age", 30, "<", ["u2"]),
        ("age", 30, "<=", ["u6", "u2", "u1"]),
        ("name", "%n%", "LIKE", ["u6", "u1"]),
        ("name", "a_n", "like", ["u6", "u1"]),
        ("name", ["cy", "dee"], "IN", ["u4", "u3"]),
        ("plan.tier", "gold", "=", ["u3", "u1"]),
    ],
)
def test_find_by_condition(
    entities: Entities, field: str, value: Any, operator: str, expected: list[str]
) -> None:
    """Each of = != > >= < <= LIKE IN."""
    assert ids(entities.find_by_condition("user", field, value, operator)) == expected


def test_limit_and_offset_page_newest_first(entities: Entities) -> None:
    """limit and offset page through the newest-first order."""
    assert ids(entities.find("user", {"active": True}, limit=2)) == ["u6", "u5"]
    assert ids(entities.find("user", {"active": True}, limit=2, offset=2)) == ["u3", "u1"]
    assert ids(entities.find("user", {"active": True}, limit=2, offset=4)) == []
    assert ids(entities.find_by_condition("user", "age", 0, ">", limit=1, offset=1)) == ["u3"]


def test_find_by_id(entities: Entities) -> None:
    """find_by_id returns the row of that entity, or None (another entity's id included)."""
    assert entities.find_by_id("user", "u2") == {
        "id": "u2",
        "context": USERS[1][1],
        "status": "running",
    }
    assert entities.find_by_id("user", "o1") is None
    assert entities.find_by_id("user", "nobody") is None


def test_entity_static_finders_use_mf_pool_and_schema(
    entities: Entities, entity_pool: ConnectionPool[Any], entity_schema: str
) -> None:
    """Entity.find & co. take anything with .pool and .schema (a MemFlow)."""
    mf = SimpleNamespace(pool=entity_pool, schema=entity_schema)
    assert ids(Entity.find("user", {"age": {"$gte": 30}}, mf)) == ["u6", "u3", "u1"]
    assert ids(Entity.find("user", {}, mf, limit=1, offset=1)) == ["u5"]
    assert ids(Entity.find_by_condition("order", "total_amount", 1000, ">=", mf)) == ["o1"]
    assert Entity.find_by_id("order", "o1", mf) is not None
    name = Entity.create_index("user", "email", mf)
    assert name == index_name("user", ["email"], "btree")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e: e.find("user", {"age": {"$regex": "x"}}), ValueError),
        (lambda e: e.find("user", {"age": {"$gt": 1, "plain": 2}}), ValueError),
        (lambda e: e.find_by_condition("user", "age", 1, "= 1 OR 1=1 --"), ValueError),
        (lambda e: e.find_by_condition("user", "age", 1, "~"), ValueError),
        (lambda e: e.find("user", {"age": {"$gt": [1]}}), TypeError),
        (lambda e: e.find("user", {"age": {"$gt": None}}), TypeError),
        (lambda e: e.find("user", {"age": {"$in": 3}}), TypeError),
        (lambda e: e.find("user", {"name": {"$like": 3}}), TypeError),
        (lambda e: e.find("user", {"a..b": 1}), InvalidPathError),
        (lambda e: e.find("user", {"": 1}), InvalidPathError),
        (lambda e: e.find("user", {"age": object()}), TypeError),
        (lambda e: e.find("user", [("age", 1)]), TypeError),
        (lambda e: e.find(None, {}), TypeError),
        (lambda e: e.find("user", {}, limit=-1), ValueError),
        (lambda e: e.find("user", {}, offset="1"), ValueError),
        (lambda e: e.create_index("user", "age", kind="hash; DROP TABLE jobs"), ValueError),
        (lambda e: e.create_index("user", "a..b"), InvalidPathError),
    ],
)
def test_bad_queries_are_refused(entities: Entities, call: Any, error: type) -> None:
    """Unknown operators, bad values, paths, pages and index kinds raise before any SQL runs."""
    with pytest.raises(error):
        call(entities)


def index_rows(conn: Conn, schema: str, name: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            [schema, name],
        ).fetchall()
    ]


def test_create_index_is_idempotent_and_partial(
    entities: Entities, entity_conn: Conn, entity_schema: str
) -> None:
    """Creating the same index twice leaves one partial expression index on the field."""
    name = entities.create_index("user", "plan.tier")
    assert entities.create_index("user", "plan.tier") == name
    rows = index_rows(entity_conn, entity_schema, name)
    assert len(rows) == 1
    definition = rows[0][1]
    assert "btree" in definition and "'user'::text" in definition
    assert "context #> ARRAY['plan'::text, 'tier'::text]" in definition
    gin = entities.create_index("user", "tags", kind="gin")
    assert gin != name and "gin" in index_rows(entity_conn, entity_schema, gin)[0][1]
    assert ids(entities.find("user", {"plan.tier": "gold"})) == ["u3", "u1"]


@pytest.mark.parametrize(
    "conditions",
    [{"n": 30}, {"n": {"$gte": 4990}}, {"n": {"$in": [25, 30]}}, {"p.q": "v7"}],
)
def test_find_uses_the_index_on_its_field(
    entity_conn: Conn,
    entity_pool: ConnectionPool[Any],
    entity_schema: str,
    conditions: dict[str, Any],
) -> None:
    """On 5000 analyzed rows, find's own query on an indexed field plans an index scan of it."""
    entity_conn.execute(
        render(
            "INSERT INTO {schema}.jobs (id, entity, workflow_name, task_queue, context)"
            " SELECT 'b' || g, 'bulk', 'wf', 'default',"
            " jsonb_build_object('n', g, 'p', jsonb_build_object('q', 'v' || g))"
            " FROM generate_series(1, 5000) AS g",
            entity_schema,
        )
    )
    entity_conn.execute(render("ANALYZE {schema}.jobs", entity_schema))
    field = next(iter(conditions))
    name = Entities(entity_pool, entity_schema).create_index("bulk", field)
    query, params = find_query(entity_schema, "bulk", conditions)
    plan = entity_conn.execute(sql.SQL("EXPLAIN ") + query, params).fetchall()
    assert name in "\n".join(str(row[0]) for row in plan)


INJECTIONS = [
    "'",
    '"',
    "'; DROP TABLE jobs; --",
    "$$; DROP SCHEMA public CASCADE; $$",
    "a\\b",
    "%s",
    "%(p0)s",
    "{schema}",
    "ünïcødé 🚀",
    "Robert'); DELETE FROM jobs;--",
    "x" * 3000,
    '" OR 1=1 --',
    "a.b",
]


@pytest.mark.parametrize("text", INJECTIONS, ids=range(len(INJECTIONS)))
def test_hostile_names_and_values_are_taken_literally(
    entities: Entities, entity_conn: Conn, entity_schema: str, make_job: JobMaker, text: str
) -> None:
    """Entity names, fields, condition values and index fields with SQL in them are plain text."""
    make_job("hostile", entity=text, context={text: text, "v": text})
    assert ids(entities.find(text, {})) == ["hostile"]
    assert ids(entities.find(text, {"v": text})) == ["hostile"]
    assert ids(entities.find(text, {(text,): text})) == ["hostile"]
    assert ids(entities.find(text, {"v": {"$in": [text]}})) == ["hostile"]
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    assert ids(entities.find_by_condition(text, "v", pattern, "LIKE")) == ["hostile"]
    assert ids(entities.find("user", {"name": text})) == []
    assert entities.find_by_id(text, "hostile") is not None
    name = entities.create_index(text, [text])
    assert entities.create_index(text, [text]) == name
    assert len(index_rows(entity_conn, entity_schema, name)) == 1
    # Everything else is as it was.
    assert len(entities.find("user", {})) == len(USERS)
    tables = entity_conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [entity_schema]
    ).fetchone()
    assert tables is not None and tables[0] >= 7


SEED_INDEX = (
    "CREATE INDEX idx_research_agents_premium ON my_app.jobs (id) "
    "WHERE entity = 'research-agent' AND (context->>'isPremium')::boolean = true;"
)
SEED_QUERY = (
    "SELECT id, context->>'status' as status, context->>'confidence' as confidence "
    "FROM my_app.jobs WHERE entity = 'research-agent' AND (context->>'isPremium')::boolean = true "
    "AND (context->>'confidence')::numeric > 0.8;"
)


@pytest.fixture
def scratch_dsn(pg_dsn: str) -> Iterator[str]:
    """A database of its own, dropped afterwards: the seed SQL names schema my_app
    verbatim, which other tests on the shared database may use too."""
    name = f"hm_seed_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(pg_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_seed_sql_runs_verbatim_on_my_app(scratch_dsn: str) -> None:
    """The README's direct SQL works on the schema of app id my-app."""
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        provision(conn, "my_app")
        for job_id, entity, context in [
            (
                "agent-1",
                "research-agent",
                {"isPremium": True, "confidence": 0.92, "status": "done"},
            ),
            ("agent-2", "research-agent", {"isPremium": True, "confidence": 0.5, "status": "done"}),
            (
                "agent-3",
                "research-agent",
                {"isPremium": False, "confidence": 0.99, "status": "done"},
            ),
            (
                "agent-4",
                "research-agent",
                {"isPremium": True, "confidence": 0.81, "status": "researching"},
            ),
            ("other-1", "summarizer", {"isPremium": True, "confidence": 0.99}),
        ]:
            conn.execute(
                "INSERT INTO my_app.jobs (id, entity, workflow_name, task_queue, context)"
                " VALUES (%s, %s, 'research_agent', 'agents', %s)",
                [job_id, entity, Jsonb(context)],
            )
        conn.execute(SEED_INDEX)
        rows = conn.execute(SEED_QUERY).fetchall()
        assert sorted(rows) == [("agent-1", "done", "0.92"), ("agent-4", "researching", "0.81")]
        assert (
            conn.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = 'my_app'"
                " AND indexname = 'idx_research_agents_premium'"
            ).fetchone()
            is not None
        )
