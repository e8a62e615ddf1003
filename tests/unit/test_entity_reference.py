"""The pure parts of the entity: the compiler, the reference model, Entity's
checks before its executor, and history patches. No database here."""

from __future__ import annotations

import math
from typing import Any

import jsonpatch
import pytest

from hotmesh_sync.entity import Entity
from hotmesh_sync.entity.commands import COMMANDS, compile_command
from hotmesh_sync.entity.reference import add_numbers, apply
from hotmesh_sync.errors import EntityTypeError, InvalidPathError
from hotmesh_sync.store.entity_ops import make_patch, same_json

DOC = {"name": "agent", "count": 2, "tags": ["a", "b"], "flags": {"on": False}, "nothing": None}

# (command, path, args, document after, result)
CASES: list[tuple[str, Any, dict[str, Any], dict[str, Any], Any]] = [
    ("get", None, {}, DOC, DOC),
    ("get", "tags.1", {}, DOC, "b"),
    ("get", "tags.5", {}, DOC, None),
    ("get", "name.first", {}, DOC, None),
    ("set", None, {"value": {"x": 1}}, {"x": 1}, {"x": 1}),
    (
        "merge",
        None,
        {"value": {"flags": {"off": True}, "tags": ["c"]}},
        {**DOC, "flags": {"on": False, "off": True}, "tags": ["c"]},
        {**DOC, "flags": {"on": False, "off": True}, "tags": ["c"]},
    ),
    ("append", "tags", {"value": "c"}, {**DOC, "tags": ["a", "b", "c"]}, ["a", "b", "c"]),
    ("append", "new.list", {"value": [1]}, {**DOC, "new": {"list": [[1]]}}, [[1]]),
    ("prepend", "tags", {"value": "z"}, {**DOC, "tags": ["z", "a", "b"]}, ["z", "a", "b"]),
    ("prepend", "nothing", {"value": 1}, {**DOC, "nothing": [1]}, [1]),
    ("remove", "tags", {"index": 0}, {**DOC, "tags": ["b"]}, ["b"]),
    ("remove", "tags", {"index": -1}, {**DOC, "tags": ["a"]}, ["a"]),
    ("increment", "count", {"amount": 5}, {**DOC, "count": 7}, 7),
    ("increment", "count", {"amount": 0.5}, {**DOC, "count": 2.5}, 2.5),
    ("increment", "stats.runs", {}, {**DOC, "stats": {"runs": 1}}, 1),
    ("increment", "nothing", {"amount": -3}, {**DOC, "nothing": -3}, -3),
    ("toggle", "flags.on", {}, {**DOC, "flags": {"on": True}}, True),
    ("toggle", "flags.new", {}, {**DOC, "flags": {"on": False, "new": True}}, True),
    ("set_if_not_exists", "name", {"value": "other"}, DOC, "agent"),
    ("set_if_not_exists", "a.b.c", {"value": 1}, {**DOC, "a": {"b": {"c": 1}}}, 1),
    ("set_if_not_exists", "nothing", {"value": 1}, DOC, None),  # null is a value: kept
    ("set_if_not_exists", "nothing.x", {"value": 1}, {**DOC, "nothing": {"x": 1}}, 1),
    ("delete", "tags.0", {}, {**DOC, "tags": ["b"]}, {**DOC, "tags": ["b"]}),
    (
        "delete",
        "nothing",
        {},
        {k: v for k, v in DOC.items() if k != "nothing"},
        {k: v for k, v in DOC.items() if k != "nothing"},
    ),
    ("delete", "missing.deep", {}, DOC, DOC),
    ("delete", "name.deep", {}, DOC, DOC),
]


@pytest.mark.parametrize(("command", "path", "args", "after", "result"), CASES)
def test_reference_command(
    command: str, path: Any, args: dict[str, Any], after: dict[str, Any], result: Any
) -> None:
    """Each command changes the document and returns as API.md §5 says."""
    new, returned = apply(DOC, command, path, args)
    assert same_json(new, after)
    assert same_json(returned, result)


def test_reference_leaves_its_input_alone() -> None:
    """apply works on a copy."""
    doc = {"a": {"b": [1]}}
    apply(doc, "append", "a.b", {"value": 2})
    assert doc == {"a": {"b": [1]}}


@pytest.mark.parametrize(
    ("command", "path", "args", "error"),
    [
        ("append", "name", {"value": 1}, EntityTypeError),
        ("prepend", "count", {"value": 1}, EntityTypeError),
        ("remove", "flags", {"index": 0}, EntityTypeError),
        ("increment", "name", {}, EntityTypeError),
        ("increment", "flags.on", {}, EntityTypeError),
        ("toggle", "count", {}, EntityTypeError),
        ("toggle", "tags", {}, EntityTypeError),
        ("set", None, {"value": [1]}, EntityTypeError),
        ("merge", None, {"value": 3}, EntityTypeError),
        ("remove", "tags", {"index": 2}, InvalidPathError),
        ("remove", "tags", {"index": -3}, InvalidPathError),
        ("remove", "missing", {"index": 0}, InvalidPathError),
        ("append", "name.x", {"value": 1}, InvalidPathError),
        ("increment", "tags.x", {}, InvalidPathError),
        ("increment", "tags.2", {}, InvalidPathError),
        ("increment", "tags.01", {}, InvalidPathError),
        ("toggle", "a..b", {}, InvalidPathError),
        ("delete", "", {}, InvalidPathError),
        ("set", "a", {"value": {}}, InvalidPathError),
        ("append", None, {"value": 1}, InvalidPathError),
        ("append", "tags", {"value": {1, 2}}, TypeError),
        ("increment", "count", {"amount": True}, TypeError),
        ("increment", "count", {"amount": "1"}, TypeError),
        ("increment", "count", {"amount": math.nan}, TypeError),
        ("remove", "tags", {"index": 1.0}, TypeError),
        ("remove", "tags", {"index": False}, TypeError),
        ("explode", "tags", {}, ValueError),
    ],
)
def test_reference_errors(command: str, path: Any, args: dict[str, Any], error: type) -> None:
    """Wrong types, unusable paths and bad arguments raise their own errors."""
    with pytest.raises(error):
        apply(DOC, command, path, args)


def test_increment_keeps_integers_and_adds_exactly() -> None:
    """Integers stay integers; decimals add as PostgreSQL's numeric does."""
    assert add_numbers(2, 3) == 5 and isinstance(add_numbers(2, 3), int)
    assert add_numbers(0.1, 0.2) == 0.3
    assert add_numbers(1.5, 0.5) == 2.0 and isinstance(add_numbers(1.5, 0.5), float)
    assert add_numbers(10**30, 1) == 10**30 + 1


def test_compile_command_names_the_query_and_binds_json_text() -> None:
    """The compiler says which named query runs a command, with every argument as JSON text."""
    compiled = compile_command("increment", "a.b", amount=2)
    assert compiled.query == "entity_apply"
    assert compiled.params == {"command": "increment", "path": ["a", "b"], "arg": "2"}
    got = compile_command("get", ["x.y"])
    assert (got.query, got.params, got.writes) == ("entity_get", {"path": ["x.y"]}, False)
    assert compile_command("set", None, {"a": (1, 2)}).params["arg"] == '{"a":[1,2]}'
    assert {
        "get",
        "set",
        "merge",
        "append",
        "prepend",
        "remove",
        "increment",
        "toggle",
        "set_if_not_exists",
        "delete",
    } == COMMANDS


class Recorder:
    """An executor that records what it is handed and returns a marker."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str] | None, dict[str, Any]]] = []

    def __call__(self, command: str, path: list[str] | None, args: dict[str, Any]) -> Any:
        self.calls.append((command, path, args))
        return "done"


def test_entity_hands_checked_commands_to_its_executor() -> None:
    """Every method delegates: command name, parsed path, and its arguments."""
    executor = Recorder()
    e = Entity("wf-1", executor)
    e.get()
    e.get("a.b")
    e.set({"a": 1})
    e.merge({"b": 2})
    e.append(["k.dot", 0], "v")
    e.prepend("list", 1)
    e.remove("list", 2)
    e.increment("n")
    e.increment("n", 2.5)
    e.toggle("flag")
    e.set_if_not_exists("x.y", None)
    assert e.delete("x") == "done"
    assert executor.calls == [
        ("get", None, {}),
        ("get", ["a", "b"], {}),
        ("set", None, {"value": {"a": 1}}),
        ("merge", None, {"value": {"b": 2}}),
        ("append", ["k.dot", "0"], {"value": "v"}),
        ("prepend", ["list"], {"value": 1}),
        ("remove", ["list"], {"index": 2}),
        ("increment", ["n"], {"amount": 1}),
        ("increment", ["n"], {"amount": 2.5}),
        ("toggle", ["flag"], {}),
        ("set_if_not_exists", ["x", "y"], {"value": None}),
        ("delete", ["x"], {}),
    ]
    assert e.workflow_id == "wf-1"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e: e.get("a..b"), InvalidPathError),
        (lambda e: e.append("", 1), InvalidPathError),
        (lambda e: e.append("a", object()), TypeError),
        (lambda e: e.set([1]), EntityTypeError),
        (lambda e: e.merge({"a": float("inf")}), TypeError),
        (lambda e: e.remove("a", "0"), TypeError),
        (lambda e: e.increment("a", None), TypeError),
    ],
)
def test_entity_checks_before_the_executor_runs(call: Any, error: type) -> None:
    """A bad call raises before anything reaches the executor (nothing is recorded)."""
    executor = Recorder()
    with pytest.raises(error):
        call(Entity("wf-1", executor))
    assert executor.calls == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"a": 1}),
        ({"a": 1}, {"a": True}),
        ({"a": [1, 2, 3, {"x": 1}]}, {"a": [{"x": 1}, 3, 2]}),
        ({"a": 1}, {"a": 1.0}),
        ({"a/b": {"~": 1}}, {"a/b": {"~": 2}}),
    ],
)
def test_make_patch_rebuilds_after_exactly(before: Any, after: Any) -> None:
    """A history patch applied to the old document gives the new one, types included."""
    assert same_json(jsonpatch.apply_patch(before, make_patch(before, after)), after)


def test_same_json_tells_types_apart() -> None:
    """True is not 1, and 1 is not 1.0, in a document."""
    assert same_json({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not same_json(True, 1)
    assert not same_json(1, 1.0)
    assert not same_json({"a": 1}, {"b": 1})


def test_increment_keeps_a_float_zero_a_float() -> None:
    """Found by the differential test: 0.0 is present, not absent, and stays a float."""
    document: dict[str, Any] = {"a": 0.0}
    _, result = apply(document, "increment", ["a"], {"amount": 0})
    assert result == 0.0 and isinstance(result, float)
