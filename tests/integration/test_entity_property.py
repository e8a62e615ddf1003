"""Differential test: random command sequences on random documents give the
same results, errors and documents in PostgreSQL as in the reference model."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jsonpatch
import psycopg
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from hotmesh_sync.entity import reference
from hotmesh_sync.entity.commands import MAX_NUMBER
from hotmesh_sync.entity.execute import apply_command, get_document
from hotmesh_sync.errors import HotMeshError
from hotmesh_sync.jsonvalue import normalized
from hotmesh_sync.store.entity_ops import history, make_patch, same_json
from hotmesh_sync.store.queries import render
from hotmesh_sync.store.schema import provision

Conn = psycopg.Connection[Any]
JOB = "prop-job"

# Few keys, so commands often meet what earlier ones wrote; some need escaping
# in a JSON pointer, one has a dot (reachable through a list path only), and
# "0"/"1" are keys of objects as well as indexes of arrays.
KEYS = st.sampled_from(["a", "b", "c", "0", "1", "x.y", "s/l~", "q'"])
SEGMENTS = st.sampled_from(["a", "b", "c", "0", "1", "2", "01", "-1", "x.y", "s/l~", "q'"])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    # Binary fractions: their decimal text is exact, so sums agree. PostgreSQL
    # adds numbers exactly in decimal while a float reader rounds the stored
    # sum, so two increments of arbitrary floats may differ in the last digit.
    | st.integers(-(10**8), 10**8).map(lambda n: n / 64)
    # PostgreSQL text holds neither NUL nor unpaired surrogates.
    | st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
documents = st.dictionaries(KEYS, values, max_size=4)
# Mostly top-level keys (where set and merge put values of every type), then
# deeper lists of segments, and dotted text, a malformed one included.
paths = (
    KEYS.map(lambda key: [key])
    | st.lists(SEGMENTS, min_size=1, max_size=3)
    | st.sampled_from(["a", "a.b", "a.0", "a..b"])
)
amounts = st.integers(-5, 5) | st.integers(-6400, 6400).map(lambda n: n / 64)

commands = st.one_of(
    st.tuples(st.just("get"), st.none() | paths, st.just({})),
    st.tuples(
        st.sampled_from(["set", "merge"]), st.none(), st.fixed_dictionaries({"value": documents})
    ),
    st.tuples(
        st.sampled_from(["append", "prepend", "set_if_not_exists"]),
        paths,
        st.fixed_dictionaries({"value": values}),
    ),
    st.tuples(st.just("remove"), paths, st.fixed_dictionaries({"index": st.integers(-4, 4)})),
    st.tuples(st.just("increment"), paths, st.fixed_dictionaries({"amount": amounts})),
    st.tuples(st.sampled_from(["toggle", "delete"]), paths, st.just({})),
)
sequences = st.lists(commands, min_size=1, max_size=8)


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[tuple[Conn, str]]:
    """One connection and one job row for the whole module (reset per example)."""
    schema = f"t_prop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        provision(conn, schema)
        conn.execute(
            render(
                "INSERT INTO {schema}.jobs (id, entity, workflow_name, task_queue)"
                " VALUES (%s, 'prop', 'wf', 'default')",
                schema,
            ),
            [JOB],
        )
        try:
            yield conn, schema
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def reset(conn: Conn, schema: str, document: dict[str, Any]) -> None:
    """The job's document becomes ``document`` at version 1, recorded as history."""
    with conn.transaction():
        conn.execute(render("DELETE FROM {schema}.history WHERE job_id = %s", schema), [JOB])
        conn.execute(
            render("UPDATE {schema}.jobs SET context = %s, version = 1 WHERE id = %s", schema),
            [Jsonb(document), JOB],
        )
        conn.execute(
            render(
                "INSERT INTO {schema}.history (job_id, version, patch) VALUES (%s, 1, %s)", schema
            ),
            [JOB, Jsonb(make_patch({}, document))],
        )


def outcome(run: Callable[..., Any], *args: Any) -> tuple[Any, type | None]:
    """(result, None), or (None, the error's class): both sides must fail alike."""
    try:
        return run(*args), None
    except (HotMeshError, TypeError, ValueError) as exc:
        return None, type(exc)


def check_sequence(
    db: tuple[Conn, str], document: dict[str, Any], sequence: list[tuple[str, Any, dict[str, Any]]]
) -> None:
    conn, schema = db
    reset(conn, schema, document)
    expected = normalized(document)
    for command, path, args in sequence:
        model, model_error = outcome(reference.apply, expected, command, path, args)
        result, error = outcome(apply_command, conn, schema, JOB, command, path, args)
        assert error is model_error, (command, path, args, expected)
        event(f"{command}: {'ok' if error is None else error.__name__}")
        if error is None:
            expected, model_result = model
            assert same_json(result, model_result), (command, path, args)
        assert same_json(get_document(conn, schema, JOB), expected), (command, path, args)
    rebuilt: Any = {}
    versions = history(conn, schema, JOB)
    for version in versions:
        rebuilt = jsonpatch.apply_patch(rebuilt, version["patch"])
    assert same_json(rebuilt, expected)
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))


@settings(max_examples=300, deadline=None)
@given(document=documents, sequence=sequences)
def test_postgresql_matches_the_reference_model(
    db: tuple[Conn, str], document: dict[str, Any], sequence: list[tuple[str, Any, dict[str, Any]]]
) -> None:
    """Results, error classes, documents and rebuilt history agree, command by command."""
    check_sequence(db, document, sequence)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(document=documents, sequence=sequences)
def test_postgresql_matches_the_reference_model_at_length(
    db: tuple[Conn, str], document: dict[str, Any], sequence: list[tuple[str, Any, dict[str, Any]]]
) -> None:
    """The same comparison on a thousand examples."""
    check_sequence(db, document, sequence)


EDGES: list[tuple[dict[str, Any], list[tuple[str, Any, dict[str, Any]]]]] = [
    # Sums at and beyond the range of a double: refused alike, nothing written.
    ({"n": 1}, [("increment", "n", {"amount": MAX_NUMBER}),
                ("increment", "n", {"amount": -1}),
                ("increment", "n", {"amount": 1}),
                ("increment", "m", {"amount": -MAX_NUMBER}),
                ("increment", "m", {"amount": -1}),
                ("increment", "m", {"amount": 10**400}),
                ("increment", "m", {"amount": MAX_NUMBER + 1})]),
    ({"n": 10**400}, [("increment", "n", {"amount": 0}), ("increment", "n", {"amount": 0.5}),
                      ("set", None, {"value": {"n": -(10**400)}}),
                      ("increment", "n", {"amount": 2})]),
    # A JSON null is a value to set_if_not_exists; a null on the way is not.
    ({"a": None, "l": [None, 1]}, [("set_if_not_exists", "a", {"value": 1}),
                                   ("set_if_not_exists", "a.b", {"value": 2}),
                                   ("set_if_not_exists", "l.0", {"value": 3}),
                                   ("set_if_not_exists", "l.0.x", {"value": 4}),
                                   ("set_if_not_exists", "l.5", {"value": 5}),
                                   ("set_if_not_exists", ["c", "d"], {"value": None}),
                                   ("set_if_not_exists", ["c", "d"], {"value": 6})]),
]


@pytest.mark.parametrize(("document", "sequence"), EDGES, ids=["max", "beyond", "null"])
@settings(max_examples=1, deadline=None)
@given(nothing=st.none())  # check_sequence records hypothesis events
def test_edges_match_the_reference_model(
    db: tuple[Conn, str],
    document: dict[str, Any],
    sequence: list[tuple[str, Any, dict[str, Any]]],
    nothing: None,
) -> None:
    """Fixed sequences at the edges random ones seldom reach."""
    check_sequence(db, document, sequence)
