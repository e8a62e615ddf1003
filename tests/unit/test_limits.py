"""Limits on what users hand in (API.md §10), checked before any SQL: JSON
depth and text, durations, retry policies, app ids, finder pages, increment
amounts, and history patches of deep documents. No database here."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import jsonpatch
import pytest

from hotmesh_sync import RetryPolicy, errors
from hotmesh_sync.durations import MAX_SECONDS, to_seconds
from hotmesh_sync.entity import finders
from hotmesh_sync.entity.commands import MAX_NUMBER, compile_command
from hotmesh_sync.entity.reference import add_numbers, apply
from hotmesh_sync.jsonvalue import MAX_DEPTH, dumps, normalized, too_deep
from hotmesh_sync.memflow import schema_for
from hotmesh_sync.retry import delay_from_json
from hotmesh_sync.store.entity_ops import make_patch


def nested(depth: int, kind: str = "list", leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        if kind == "mixed":
            value = [value] if level % 2 else {"k": value}
        elif kind == "dict":
            value = {"k": value}
        else:
            value = [value]
    return value


# -- JSON values -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
def test_values_up_to_100_levels_deep_pass_and_deeper_ones_are_type_errors(kind: str) -> None:
    assert normalized(nested(MAX_DEPTH, kind)) == nested(MAX_DEPTH, kind)
    assert MAX_DEPTH == 100
    for depth in (101, 150, 900, 5000, 200_000):
        with pytest.raises(TypeError, match="nested more than 100 levels"):
            dumps(nested(depth, kind))
    with pytest.raises(TypeError):
        dumps({"a": [1, {"b": nested(99, kind)}]})


def test_depth_counts_nesting_not_brackets() -> None:
    """Wide values, and brackets inside strings and keys, are not depth."""
    wide = [{"a": [i, {"b": []}]} for i in range(2000)]
    assert dumps(wide)
    text_brackets = ["[" * 500, "]" * 500, {"{" * 300: "}" * 300}, '\\"[[[' * 100, "\\" * 7]
    assert normalized(text_brackets) == text_brackets
    assert normalized([text_brackets, nested(98)]) == [text_brackets, nested(98)]
    assert too_deep(json.dumps([["[" * 200], nested(100)]))
    assert not too_deep(json.dumps([["[" * 200], nested(99)]))


def test_nul_and_lone_surrogates_are_type_errors_in_strings_and_keys() -> None:
    for bad in ["a\x00", {"a\x00": 1}, {"k": ["\x00"]}, "\ud800", {"\udfff": 1},
                {"ok": {"\udc80x": 1}}, ["x", "y\udbff"]]:
        with pytest.raises(TypeError):
            dumps(bad)
    # The text backslash-u-0-0-0-0 is not a NUL.
    assert normalized(["\\u0000", {"\\u0000": "\\\\u0000"}]) == [
        "\\u0000", {"\\u0000": "\\\\u0000"}]
    with pytest.raises(TypeError):
        dumps("\\\x00")


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    float("inf"), float("-inf"), float("nan"), 1e300, 10**400, -(10**400),
    "99999999999 weeks", "9" * 400, timedelta.max, MAX_SECONDS + 1,
])
def test_durations_are_finite_and_at_most_100_years(bad: Any) -> None:
    with pytest.raises(ValueError):
        to_seconds(bad)


def test_100_years_is_still_a_duration() -> None:
    assert to_seconds(MAX_SECONDS) == MAX_SECONDS == 100 * 365.25 * 86400
    assert to_seconds("5200 weeks") == 5200 * 604800.0
    assert to_seconds(timedelta(days=36524)) == 36524 * 86400.0


def test_retry_policies_refuse_absurd_intervals_and_survive_many_attempts() -> None:
    for options in ({"initial_interval": float("inf")}, {"maximum_interval": 1e300},
                    {"maximum_interval": "99999999999 weeks"},
                    {"backoff_coefficient": float("nan")},
                    {"backoff_coefficient": float("inf")}):
        with pytest.raises(ValueError):
            RetryPolicy(**options)
    policy = RetryPolicy(maximum_attempts=10_000, backoff_coefficient=3)
    assert policy.delay_after(5000) == 120.0
    assert delay_from_json(policy.to_json(), 9999) == 120.0
    assert math.isfinite(delay_from_json(RetryPolicy().to_json(), 2000))


# -- app ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    "abc\n", "abc\r\n", "\nabc", "public", "PUBLIC", "Public", "information_schema",
    "INFORMATION-SCHEMA", "pg_catalog", "pg_toast", "pg_", "PG_anything", "pg-mine", "",
    "x" * 49, "a b", "ä",
])
def test_malformed_and_reserved_app_ids_are_configuration_errors(bad: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        schema_for(bad)


def test_app_ids_map_to_schemas() -> None:
    assert schema_for("Shop") == schema_for("shop") == "shop"
    assert schema_for("my-app") == "my_app"
    assert schema_for("pgx") == "pgx"
    assert schema_for("publicity") == "publicity"
    assert schema_for("x" * 48) == "x" * 48


# -- finders ---------------------------------------------------------------------------------


class NoPool:
    """A pool that fails the test if anything would reach the database."""

    def connection(self) -> Any:
        raise AssertionError("SQL would have run")


@pytest.mark.parametrize("limit, offset", [
    (10**20, 0), (-1, 0), (finders.MAX_LIMIT + 1, 0), (1.0, 0), (True, 0), ("1", 0),
    (None, 0), (1, 10**20), (1, -1), (1, finders.MAX_OFFSET + 1), (1, False), (1, 2.0),
])
def test_finder_pages_are_checked(limit: Any, offset: Any) -> None:
    with pytest.raises(ValueError):
        finders.find_query("s", "user", {}, limit, offset)
    with pytest.raises(ValueError):
        finders.find_by_condition(NoPool(), "s", "user", "a", 1, "=", limit, offset)  # type: ignore[arg-type]


def test_finder_pages_at_the_bounds() -> None:
    finders.find_query("s", "user", {}, finders.MAX_LIMIT, finders.MAX_OFFSET)
    finders.find_query("s", "user", {}, 0, 0)
    assert finders.MAX_LIMIT == 100_000 and finders.MAX_OFFSET == 2**31 - 1


@pytest.mark.parametrize("call, error", [
    (lambda p: finders.find(p, "s", "us\x00er", {}), ValueError),
    (lambda p: finders.find(p, "s", "us\ud800er", {}), ValueError),
    (lambda p: finders.find(p, "s", "user", {"na\x00me": 1}), errors.InvalidPathError),
    (lambda p: finders.find(p, "s", "user", {("a", "b\x00"): 1}), errors.InvalidPathError),
    (lambda p: finders.find(p, "s", "user", {"name": "x\x00"}), TypeError),
    (lambda p: finders.find(p, "s", "user", {"name": {"$ne": {"k\x00": 1}}}), TypeError),
    (lambda p: finders.find(p, "s", "user", {"name": {"$in": ["a", "\x00"]}}), TypeError),
    (lambda p: finders.find(p, "s", "user", {"name": {"$like": "%\x00%"}}), TypeError),
    (lambda p: finders.find(p, "s", "user", {"name": {"$like": "%\udc00%"}}), TypeError),
    (lambda p: finders.find(p, "s", "user", {"name": {"$gt": "\x00"}}), TypeError),
    (lambda p: finders.find_by_condition(p, "s", "user", "name", "a\x00", "LIKE"), TypeError),
    (lambda p: finders.find_by_condition(p, "s", "u\x00", "name", "a", "="), ValueError),
    (lambda p: finders.find_by_condition(p, "s", "user", "n\x00", "a", "="), ValueError),
    (lambda p: finders.find_by_id(p, "s", "user", "id\x00"), ValueError),
    (lambda p: finders.find_by_id(p, "s", "us\x00er", "id"), ValueError),
    (lambda p: finders.find_by_id(p, "s", "user", None), TypeError),
    (lambda p: finders.create_index(p, "s", "us\x00er", "a"), ValueError),
    (lambda p: finders.create_index(p, "s", "user", "a\x00"), ValueError),
])
def test_nul_in_finders_is_refused_before_sql(call: Any, error: type) -> None:
    with pytest.raises(error):
        call(NoPool())


# -- increment amounts and sums --------------------------------------------------------------


@pytest.mark.parametrize("amount", [10**400, -(10**400), MAX_NUMBER + 1, -(MAX_NUMBER + 1)])
def test_increment_amounts_beyond_a_double_are_value_errors(amount: int) -> None:
    with pytest.raises(ValueError):
        compile_command("increment", "n", amount=amount)


@pytest.mark.parametrize("amount", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_increment_amounts_are_type_errors(amount: float) -> None:
    with pytest.raises(TypeError):
        compile_command("increment", "n", amount=amount)


def test_increment_amounts_within_a_double_compile() -> None:
    for amount in (MAX_NUMBER, -MAX_NUMBER, 1.7976931348623157e308, 5e-324, 10**30):
        compile_command("increment", "n", amount=amount)


def test_reference_refuses_sums_beyond_a_double() -> None:
    with pytest.raises(errors.EntityTypeError):
        add_numbers(MAX_NUMBER, 1)
    with pytest.raises(errors.EntityTypeError):
        add_numbers(1.7976931348623157e308, 1.7976931348623157e308)
    with pytest.raises(errors.EntityTypeError):
        apply({"n": 10**400}, "increment", "n", {"amount": 0.5})
    assert add_numbers(MAX_NUMBER, -MAX_NUMBER) == 0
    assert apply({"n": MAX_NUMBER}, "increment", "n", {"amount": -1})[1] == MAX_NUMBER - 1


def test_reference_set_if_not_exists_keeps_null() -> None:
    assert apply({"a": None}, "set_if_not_exists", "a", {"value": 1}) == ({"a": None}, None)
    assert apply({"a": None}, "set_if_not_exists", "a.b", {"value": 1}) == (
        {"a": {"b": 1}}, 1)
    assert apply({"a": [None]}, "set_if_not_exists", "a.0", {"value": 1}) == (
        {"a": [None]}, None)


# -- history patches of deep documents -------------------------------------------------------


@pytest.mark.parametrize("depth", [900, 3000])
def test_make_patch_of_a_document_too_deep_for_jsonpatch_replaces_it(depth: int) -> None:
    before = {"d": nested(depth, "mixed")}
    after = {"d": nested(depth, "mixed", leaf=2)}
    for old, new in ((before, after), ({}, after), (after, {})):
        patch = make_patch(old, new)
        assert patch == [{"op": "replace", "path": "", "value": new}] or (
            jsonpatch.apply_patch(old, patch) == new)
    assert make_patch({}, after) in (
        [{"op": "replace", "path": "", "value": after}],
        [{"op": "add", "path": "/d", "value": after["d"]}],
    )


def test_settings_refuse_absurd_values() -> None:
    """A lease of 1e300 seconds would overflow the lease interval in SQL."""
    from hotmesh_sync.errors import ConfigurationError
    from hotmesh_sync.settings import Settings

    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"HOTMESH_MAX_TASK_FAILURES": "2"}).max_task_failures == 2
    for name, value in [("HOTMESH_LEASE_SECONDS", "1e300"), ("HOTMESH_LEASE_SECONDS", "0"),
                        ("HOTMESH_MAX_ACTIVATION_SECONDS", "inf"),
                        ("HOTMESH_MAX_TASK_FAILURES", "many")]:
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({name: value})


def test_one_retry_decision_for_policies_and_their_durable_form() -> None:
    """RetryPolicy.decide and retry.decide (what the worker uses) agree."""
    from hotmesh_sync.retry import decide

    policy = RetryPolicy(maximum_attempts=3, initial_interval="1s", non_retryable=(KeyError,))
    assert policy.decide(RuntimeError("x"), 1).delay == 1.0
    assert policy.decide(RuntimeError("x"), 2).delay == 2.0
    assert policy.decide(RuntimeError("x"), 3).reason == "exhausted"
    assert policy.decide(KeyError("x"), 1).reason == "non_retryable"
    assert policy.decide(errors.FatalError("stop"), 1).reason == "non_retryable"
    assert decide(policy.to_json(), RuntimeError("x"), 2) == policy.decide(RuntimeError("x"), 2)
