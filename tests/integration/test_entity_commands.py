"""Entity commands on a real document in PostgreSQL: results, errors, history,
transactions and concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jsonpatch
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from hotmesh_sync.entity import Entity, apply_command, get_document, history, pool_executor
from hotmesh_sync.errors import EntityTypeError, InvalidPathError, WorkflowNotFoundError
from hotmesh_sync.store.entity_ops import same_json
from hotmesh_sync.store.queries import render

Conn = psycopg.Connection[Any]
JobMaker = Callable[..., str]


def version_of(conn: Conn, schema: str, job_id: str) -> int:
    row = conn.execute(
        render("SELECT version FROM {schema}.jobs WHERE id = %s", schema), [job_id]
    ).fetchone()
    assert row is not None
    return int(row[0])


def rebuilt(conn: Conn, schema: str, job_id: str) -> Any:
    document: Any = {}
    for version in history(conn, schema, job_id):
        document = jsonpatch.apply_patch(document, version["patch"])
    return document


@pytest.fixture
def entity(entity_conn: Conn, entity_schema: str, make_job: JobMaker) -> Entity:
    """An Entity on a fresh job with an empty document, one transaction per command."""
    make_job("job-1")

    def execute(command: str, path: list[str] | None, args: dict[str, Any]) -> Any:
        return apply_command(entity_conn, entity_schema, "job-1", command, path, args)

    return Entity("job-1", execute)


def test_every_command_returns_what_the_api_says(entity: Entity) -> None:
    """A session of commands, each with its documented return value."""
    assert entity.get() == {}
    assert entity.set({"name": "agent", "tags": ["a"], "score": 1}) == {
        "name": "agent",
        "tags": ["a"],
        "score": 1,
    }
    assert entity.merge({"perspectives": {"optimistic": {"score": 0.8}}}) == {
        "name": "agent",
        "tags": ["a"],
        "score": 1,
        "perspectives": {"optimistic": {"score": 0.8}},
    }
    assert entity.merge({"perspectives": {"optimistic": {"note": "ok"}}, "tags": ["b"]}) == {
        "name": "agent",
        "tags": ["b"],
        "score": 1,
        "perspectives": {"optimistic": {"score": 0.8, "note": "ok"}},
    }
    assert entity.append("tags", "c") == ["b", "c"]
    assert entity.prepend("tags", {"first": True}) == [{"first": True}, "b", "c"]
    assert entity.remove("tags", 1) == [{"first": True}, "c"]
    assert entity.remove("tags", -1) == [{"first": True}]
    assert entity.remove("tags", 0) == []
    assert entity.get("tags") == []
    assert entity.increment("score") == 2
    assert entity.increment("score", 10) == 12
    assert entity.increment("perspectives.optimistic.score", 0.15) == 0.95
    assert entity.toggle("done") is True
    assert entity.toggle("done") is False
    assert entity.set_if_not_exists("name", "other") == "agent"
    assert entity.set_if_not_exists("owner.id", "u1") == "u1"
    assert entity.get("perspectives.optimistic") == {"score": 0.95, "note": "ok"}
    assert entity.get("missing.path") is None
    assert entity.delete("perspectives") == {
        "name": "agent",
        "tags": [],
        "score": 12,
        "done": False,
        "owner": {"id": "u1"},
    }
    assert entity.delete("perspectives") == entity.get()


def test_increment_keeps_integers_and_adds_decimals_exactly(entity: Entity) -> None:
    """int + int stays an int; 0.1 + 0.2 is 0.3, as numeric adds."""
    result = entity.increment("n", 41)
    assert result == 41 and isinstance(result, int)
    assert isinstance(entity.increment("n"), int)
    assert entity.increment("f", 0.1) == 0.1
    assert entity.increment("f", 0.2) == 0.3
    assert entity.increment("big", 10**30) == 10**30


def test_writing_commands_create_missing_parents(entity: Entity) -> None:
    """Absent parents become objects, a null parent included."""
    entity.set({"nulled": None})
    assert entity.increment("a.b.c") == 1
    assert entity.toggle("t.u") is True
    assert entity.append("l.m", 1) == [1]
    assert entity.prepend("p.q", 1) == [1]
    assert entity.set_if_not_exists("s.t.u", "v") == "v"
    assert entity.increment("nulled.count", 2) == 2
    assert entity.get() == {
        "a": {"b": {"c": 1}},
        "t": {"u": True},
        "l": {"m": [1]},
        "p": {"q": [1]},
        "s": {"t": {"u": "v"}},
        "nulled": {"count": 2},
    }


def test_absent_means_missing_or_null(entity: Entity) -> None:
    """increment starts at 0, toggle from false, append from [] on a null value too;
    set_if_not_exists keeps a null (a value), but fills a path through one."""
    entity.set({"n": None, "t": None, "l": None, "s": None, "p": None})
    assert entity.increment("n", 5) == 5
    assert entity.toggle("t") is True
    assert entity.append("l", "x") == ["x"]
    assert entity.set_if_not_exists("s", 1) is None
    assert entity.set_if_not_exists("p.q", 1) == 1
    assert entity.get() == {"n": 5, "t": True, "l": ["x"], "s": None, "p": {"q": 1}}


def test_list_paths_reach_keys_with_dots(entity: Entity) -> None:
    """A list path keeps a dotted key whole."""
    assert entity.append(["k.with.dots", "inner"], 1) == [1]
    assert entity.increment(["k.with.dots", "n"], 2) == 2
    assert entity.get() == {"k.with.dots": {"inner": [1], "n": 2}}
    assert entity.get(["k.with.dots", "inner", 0]) == 1
    assert entity.delete(["k.with.dots", "inner"]) == {"k.with.dots": {"n": 2}}


def test_integer_segments_index_arrays_and_only_arrays(entity: Entity) -> None:
    """items.1.n walks into the second item; map.0 is the key "0" of an object."""
    entity.set({"items": [{"n": 1}, {"n": 2}, None], "map": {"0": {"n": 5}}})
    assert entity.increment("items.1.n") == 3
    assert entity.increment("map.0.n") == 6
    assert entity.set_if_not_exists("items.0.tag", "t") == "t"
    assert entity.set_if_not_exists("items.2", "kept") is None
    assert entity.set_if_not_exists("items.2.deeper", "filled") == "filled"
    assert entity.toggle(["items", 0, "flag"]) is True
    assert entity.get("items") == [
        {"n": 1, "tag": "t", "flag": True}, {"n": 3}, {"deeper": "filled"}
    ]
    assert entity.delete("items.0") == {
        "items": [{"n": 3}, {"deeper": "filled"}], "map": {"0": {"n": 6}}
    }


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e: e.append("name", 1), EntityTypeError),
        (lambda e: e.prepend("score", 1), EntityTypeError),
        (lambda e: e.remove("obj", 0), EntityTypeError),
        (lambda e: e.increment("name"), EntityTypeError),
        (lambda e: e.increment("flag"), EntityTypeError),
        (lambda e: e.increment("list"), EntityTypeError),
        (lambda e: e.toggle("score"), EntityTypeError),
        (lambda e: e.toggle("obj"), EntityTypeError),
        (lambda e: e.set([1, 2]), EntityTypeError),
        (lambda e: e.remove("list", 3), InvalidPathError),
        (lambda e: e.remove("list", -4), InvalidPathError),
        (lambda e: e.remove("missing", 0), InvalidPathError),
        (lambda e: e.increment("name.length"), InvalidPathError),
        (lambda e: e.append("score.history", 1), InvalidPathError),
        (lambda e: e.toggle("list.x"), InvalidPathError),
        (lambda e: e.increment("list.3"), InvalidPathError),
        (lambda e: e.increment("list.-1"), InvalidPathError),
        (lambda e: e.increment("list.01"), InvalidPathError),
        (lambda e: e.set_if_not_exists("list.1.deep", 1), InvalidPathError),
        (lambda e: e.get("a..b"), InvalidPathError),
        (lambda e: e.delete(""), InvalidPathError),
        (lambda e: e.append([], 1), InvalidPathError),
        (lambda e: e.append("list", object()), TypeError),
        (lambda e: e.increment("score", "1"), TypeError),
        (lambda e: e.remove("list", 1.0), TypeError),
    ],
)
def test_refused_commands_leave_document_and_version_unchanged(
    entity: Entity, entity_conn: Conn, entity_schema: str, call: Any, error: type
) -> None:
    """Wrong types and unusable paths raise their typed error and change nothing."""
    doc = {"name": "n", "score": 1, "flag": True, "list": [1, 2, 3], "obj": {"k": "v"}}
    entity.set(doc)
    version = version_of(entity_conn, entity_schema, "job-1")
    with pytest.raises(error):
        call(entity)
    assert get_document(entity_conn, entity_schema, "job-1") == doc
    assert version_of(entity_conn, entity_schema, "job-1") == version
    assert len(history(entity_conn, entity_schema, "job-1")) == version


def test_error_in_the_callers_transaction_leaves_it_usable(
    entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> None:
    """A refused command rolls back alone (a savepoint), so the caller can go on and commit."""
    make_job("job-1", context={"n": "text"})
    with entity_conn.transaction():
        with pytest.raises(EntityTypeError):
            apply_command(entity_conn, entity_schema, "job-1", "increment", "n", {})
        assert apply_command(entity_conn, entity_schema, "job-1", "increment", "m", {}) == 1
    assert get_document(entity_conn, entity_schema, "job-1") == {"n": "text", "m": 1}


def test_command_commits_only_with_the_callers_transaction(
    entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> None:
    """Inside the caller's transaction, a rollback of that transaction undoes the command."""
    make_job("job-1")
    with entity_conn.transaction(force_rollback=True):
        assert apply_command(entity_conn, entity_schema, "job-1", "increment", "n", {}) == 1
    assert get_document(entity_conn, entity_schema, "job-1") == {}
    assert version_of(entity_conn, entity_schema, "job-1") == 0
    assert history(entity_conn, entity_schema, "job-1") == []


def test_unknown_job_raises_workflow_not_found(entity_conn: Conn, entity_schema: str) -> None:
    """Commands, reads and history of an id no job has raise WorkflowNotFoundError."""
    with pytest.raises(WorkflowNotFoundError):
        apply_command(entity_conn, entity_schema, "nope", "increment", "n", {})
    with pytest.raises(WorkflowNotFoundError):
        get_document(entity_conn, entity_schema, "nope")
    with pytest.raises(WorkflowNotFoundError):
        history(entity_conn, entity_schema, "nope")


def test_changes_count_versions_and_no_ops_do_not(
    entity: Entity, entity_conn: Conn, entity_schema: str
) -> None:
    """Each change is one version with one history row; a command that changes nothing is none."""
    entity.increment("n")
    entity.append("l", 1)
    entity.set_if_not_exists("n", 5)
    entity.delete("missing")
    entity.merge({})
    entity.get("n")
    assert version_of(entity_conn, entity_schema, "job-1") == 2
    versions = history(entity_conn, entity_schema, "job-1")
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["patch"] == [{"op": "add", "path": "/n", "value": 1}]
    assert versions[1]["patch"] == [{"op": "add", "path": "/l", "value": [1]}]
    assert all(isinstance(v["at"], str) and "T" in v["at"] for v in versions)


def test_history_patches_rebuild_the_document(
    entity: Entity, entity_conn: Conn, entity_schema: str
) -> None:
    """Applying every patch in order to {} gives the current document."""
    entity.set({"a": [1, 2, 3, {"x": 1}], "flag": 1, "s/l~": {"k": "v"}})
    entity.merge({"a": [{"x": 1}, 3, 2], "flag": True, "s/l~": {"k2": None}})
    entity.increment(["s/l~", "n"], 1.5)
    entity.append("a", [1])
    entity.prepend("a", None)
    entity.remove("a", 2)
    entity.toggle("flag")
    entity.delete(["s/l~", "k"])
    entity.set_if_not_exists("z.y", {"deep": [True]})
    document = get_document(entity_conn, entity_schema, "job-1")
    assert same_json(rebuilt(entity_conn, entity_schema, "job-1"), document)


def test_get_document_reads_paths(
    entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> None:
    """get_document returns the value at a path, None when absent, the document for None."""
    make_job("job-1", context={"a": {"b": [10, 20]}, "n": None})
    assert get_document(entity_conn, entity_schema, "job-1", "a.b.1") == 20
    assert get_document(entity_conn, entity_schema, "job-1", ["a", "b"]) == [10, 20]
    assert get_document(entity_conn, entity_schema, "job-1", "a.b.2") is None
    assert get_document(entity_conn, entity_schema, "job-1", "n") is None
    assert get_document(entity_conn, entity_schema, "job-1") == {"a": {"b": [10, 20]}, "n": None}


def test_pool_executor_applies_each_command_at_once(
    entity_pool: ConnectionPool[Any], entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> None:
    """mf.entity(id)'s executor commits every command on its own."""
    make_job("job-1")
    e = Entity("job-1", pool_executor(entity_pool, entity_schema, "job-1"))
    assert e.increment("n", 2) == 2
    assert e.get("n") == 2
    with pytest.raises(EntityTypeError):
        e.append("n", 1)
    assert get_document(entity_conn, entity_schema, "job-1") == {"n": 2}
    missing = Entity("nope", pool_executor(entity_pool, entity_schema, "nope"))
    with pytest.raises(WorkflowNotFoundError):
        missing.increment("n")


def test_concurrent_commands_lose_no_update(
    entity_pool: ConnectionPool[Any], entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> None:
    """50 threads each increment and append on one document: 50, every item, 100 versions."""
    make_job("job-1")
    e = Entity("job-1", pool_executor(entity_pool, entity_schema, "job-1"))
    start = threading.Barrier(50)

    def work(i: int) -> None:
        start.wait(timeout=30)
        e.increment("count")
        e.append("items", i)

    with ThreadPoolExecutor(max_workers=50) as threads:
        futures = [threads.submit(work, i) for i in range(50)]
        for future in futures:
            future.result(timeout=60)  # re-raises what a thread raised
    document = get_document(entity_conn, entity_schema, "job-1")
    assert document["count"] == 50
    assert sorted(document["items"]) == list(range(50))
    assert version_of(entity_conn, entity_schema, "job-1") == 100
    assert same_json(rebuilt(entity_conn, entity_schema, "job-1"), document)


INJECTIONS = [
    "'",
    '"',
    "'; DROP TABLE jobs; --",
    "$$; DROP SCHEMA public CASCADE; $$",
    "a\\b",
    "%s",
    "%(job_id)s",
    "{schema}",
    "ünïcødé 🚀",
    "Robert'); DELETE FROM jobs;--",
    "x" * 5000,
]


@pytest.mark.parametrize("text", INJECTIONS, ids=range(len(INJECTIONS)))
def test_hostile_path_segments_are_plain_keys(
    entity_conn: Conn, entity_schema: str, make_job: JobMaker, text: str
) -> None:
    """Quotes, dollar quotes, comments and placeholders in a path are keys, nothing more."""
    make_job("job-1")
    make_job("other", context={"keep": 1})
    e = Entity("job-1", lambda c, p, a: apply_command(entity_conn, entity_schema, "job-1", c, p, a))
    assert e.increment([text, text], 3) == 3
    assert e.get([text]) == {text: 3}
    assert e.delete([text, text]) == {text: {}}
    assert get_document(entity_conn, entity_schema, "other") == {"keep": 1}
    tables = entity_conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s", [entity_schema]
    ).fetchone()
    assert tables is not None and tables[0] >= 7


def test_sql_functions_work_from_plain_sql(
    entity_conn: Conn, entity_schema: str, make_job: JobMaker
) -> None:
    """The entity_* functions are usable in a user's own UPDATE, errors with their SQLSTATE."""
    make_job("job-1", context={"n": 1})
    entity_conn.execute(
        render(
            "UPDATE {schema}.jobs SET context = {schema}.entity_apply("
            "context, 'increment', ARRAY['n'], '2') WHERE id = 'job-1'",
            entity_schema,
        )
    )
    assert get_document(entity_conn, entity_schema, "job-1") == {"n": 3}
    with pytest.raises(psycopg.Error) as caught:
        entity_conn.execute(
            render(
                "SELECT {schema}.entity_apply('{{\"n\": 1}}', 'append', ARRAY['n'], '2')",
                entity_schema,
            )
        )
    assert caught.value.sqlstate == "HM001"
    with pytest.raises(psycopg.Error) as caught:
        entity_conn.execute(
            render(
                "SELECT {schema}.entity_apply('{{\"n\": 1}}', 'append', ARRAY['n', 'x'], '2')",
                entity_schema,
            )
        )
    assert caught.value.sqlstate == "HM002"
