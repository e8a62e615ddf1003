"""Input the entity and the store must survive: absurd numbers, deep values,
nulls, plain SQL edits of a document, absurd durations, finder pages, app ids.

Every refusal happens before anything is written, inside a workflow and
outside; nothing here may end in a raw psycopg error or an endless retry.
"""

from __future__ import annotations

import logging
from typing import Any

import jsonpatch
import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, errors, workflow
from hotmesh_sync.errors import EntityTypeError

BIG = 10**400
#: The largest double, 1.7976931348623157e308, as jsonb keeps it: an integer.
MAX_FLOAT = 17976931348623157 * 10**292


def nest(depth: int) -> Any:
    """A value nested ``depth`` levels deep: lists, with an object in the middle."""
    value: Any = "bottom"
    for level in range(depth):
        value = {"k": value} if level == depth // 2 else [value]
    return value


def execute_sql(mf: MemFlow, text: str, params: Any = None) -> list[Any]:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        cur = conn.execute(sql.SQL(text).format(schema=sql.Identifier(mf.schema)), params)
        return cur.fetchall() if cur.description else []


def rebuilt(history: list[dict[str, Any]]) -> Any:
    document: Any = {}
    for version in history:
        document = jsonpatch.apply_patch(document, version["patch"])
    return document


def assert_history_rebuilds(handle: Any) -> None:
    versions = handle.history()
    assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))
    assert rebuilt(versions) == handle.state()


# -- workflows -------------------------------------------------------------------------------


def increments_too_far() -> list[str]:
    """An amount no double holds, and a sum that would read back as infinity."""
    e = workflow.entity()
    outcomes = []
    for call in (
        lambda: e.increment("n", BIG),
        lambda: e.set({"n": BIG}),
        lambda: e.increment("n", 0.5),
        lambda: e.set({"f": MAX_FLOAT}),
        lambda: e.increment("f", 1),
        lambda: e.increment("f", -1),
    ):
        try:
            call()
            outcomes.append("ok")
        except (TypeError, ValueError) as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


def deep_writes() -> list[str]:
    """set, merge and append of a value 900 levels deep are refused before any SQL."""
    e = workflow.entity()
    deep = nest(900)
    outcomes = []
    for call in (
        lambda: e.set({"d": deep}),
        lambda: e.merge({"d": deep}),
        lambda: e.append("items", deep),
    ):
        try:
            call()
            outcomes.append("written")
        except TypeError:
            outcomes.append("TypeError")
    e.append("items", nest(99))  # 100 levels with the items array itself: fine
    return outcomes


def keeps_null() -> Any:
    e = workflow.entity()
    e.set({"maybe": None})
    return [e.set_if_not_exists("maybe", 1), e.set_if_not_exists("other", 2)]


def sleeps_forever() -> list[str]:
    outcomes = []
    for call in (lambda: workflow.sleep_for(float("inf")),
                 lambda: workflow.sleep_for(1e300),
                 lambda: workflow.wait_for("x", timeout="99999999999 weeks")):
        try:
            call()
            outcomes.append("waited")
        except ValueError:
            outcomes.append("refused")
    return outcomes


def finish(value: int) -> int:
    workflow.entity().set({"value": value})
    return value


# -- increment -------------------------------------------------------------------------------


def test_increment_beyond_a_double_is_refused_outside_a_workflow(mf: MemFlow) -> None:
    handle = mf.workflow.start("none", workflow_id="inc", entity="trust", task_queue="idle",
                               search={"n": 1})
    e = mf.entity("inc")
    with pytest.raises(ValueError):
        e.increment("n", BIG)
    with pytest.raises(ValueError):
        e.increment("n", -BIG)
    assert e.get() == {"n": 1}
    assert e.set({"n": BIG}) == {"n": BIG}
    with pytest.raises(EntityTypeError):
        e.increment("n", 0.5)  # the sum, 1e400 + 0.5, reads back as infinity
    with pytest.raises(EntityTypeError):
        e.increment("n", 0)
    assert e.set({"f": MAX_FLOAT}) == {"f": MAX_FLOAT}
    with pytest.raises(EntityTypeError):
        e.increment("f", 1.7976931348623157e308)
    with pytest.raises(EntityTypeError):
        e.increment("f", 0.5)
    with pytest.raises(TypeError):
        e.increment("f", float("inf"))
    assert e.increment("f", -MAX_FLOAT) == 0
    assert e.get() == {"f": 0}
    assert len(handle.history()) == 4  # search, two sets, one increment
    assert_history_rebuilds(handle)


def test_increment_beyond_a_double_is_refused_inside_a_workflow(
        mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[increments_too_far])
    handle = mf.workflow.start(increments_too_far, workflow_id="inc-wf", entity="trust",
                               task_queue="default")
    assert handle.result(timeout=30) == [
        "ValueError", "ok", "EntityTypeError", "ok", "EntityTypeError", "ok"]
    assert handle.state() == {"f": MAX_FLOAT - 1}
    assert_history_rebuilds(handle)


# -- set_if_not_exists -----------------------------------------------------------------------


def test_set_if_not_exists_keeps_a_json_null(mf: MemFlow, worker: Any) -> None:
    mf.workflow.start("none", workflow_id="nul", task_queue="idle", search={"v": None})
    e = mf.entity("nul")
    assert e.set_if_not_exists("v", 1) is None
    assert e.set_if_not_exists("v.w", 1) == 1  # a null on the way is absent
    assert e.get() == {"v": {"w": 1}}
    worker("default", workflows=[keeps_null])
    handle = mf.workflow.start(keeps_null, workflow_id="nul-wf")
    assert handle.result(timeout=30) == [None, 2]
    assert handle.state() == {"maybe": None, "other": 2}
    assert_history_rebuilds(handle)


# -- plain SQL edits -------------------------------------------------------------------------


def test_plain_sql_edits_are_versions_of_the_history(mf: MemFlow) -> None:
    handle = mf.workflow.start("none", workflow_id="sql", entity="trust", task_queue="idle",
                               search={"a": 1, "tags": ["x"]})
    mf.entity("sql").append("tags", "y")
    execute_sql(mf, "UPDATE {schema}.jobs SET context = context || '{{\"b\": 2}}'::jsonb"
                    " WHERE id = 'sql'")
    execute_sql(mf, "UPDATE {schema}.jobs SET context = jsonb_set(context, '{{a}}', '1.0')"
                    " WHERE id = 'sql'")  # equal as jsonb, different as text: a version
    assert handle.state() == {"a": 1.0, "b": 2, "tags": ["x", "y"]}
    assert len(handle.history()) == 4
    assert_history_rebuilds(handle)
    # Entity commands go on from the version the edit made.
    assert mf.entity("sql").increment("b") == 3
    assert_history_rebuilds(handle)
    # No version for an update that leaves the document as it is, or does not touch it.
    execute_sql(mf, "UPDATE {schema}.jobs SET context = context WHERE id = 'sql'")
    execute_sql(mf, "UPDATE {schema}.jobs SET updated_at = now() WHERE id = 'sql'")
    assert len(handle.history()) == 5
    rows = execute_sql(mf, "SELECT version FROM {schema}.jobs WHERE id = 'sql'")
    assert rows == [(5,)]


def test_plain_sql_edit_of_a_document_without_history(mf: MemFlow) -> None:
    handle = mf.workflow.start("none", workflow_id="bare", task_queue="idle")
    assert handle.history() == []
    execute_sql(mf, "UPDATE {schema}.jobs SET context = '{{\"by\": \"sql\"}}' WHERE id = 'bare'")
    assert [v["patch"] for v in handle.history()] == [
        [{"op": "replace", "path": "", "value": {"by": "sql"}}]]
    assert_history_rebuilds(handle)


# -- deep values -----------------------------------------------------------------------------


def test_deep_values_are_refused_before_sql_outside_a_workflow(mf: MemFlow) -> None:
    handle = mf.workflow.start("none", workflow_id="deep", task_queue="idle",
                               search={"items": []})
    e = mf.entity("deep")
    deep = nest(900)
    for call in (lambda: e.set({"d": deep}), lambda: e.merge({"d": deep}),
                 lambda: e.append("items", deep), lambda: e.prepend("items", deep),
                 lambda: e.set_if_not_exists("d", deep), lambda: e.set({"d": nest(101)})):
        with pytest.raises(TypeError):
            call()
    assert handle.state() == {"items": []}
    assert len(handle.history()) == 1
    assert e.set({"d": nest(99)}) == {"d": nest(99)}  # 100 levels: allowed


def test_deep_values_are_refused_before_sql_inside_a_workflow(
        mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[deep_writes])
    handle = mf.workflow.start(deep_writes, workflow_id="deep-wf", search={"items": []})
    assert handle.result(timeout=30) == ["TypeError", "TypeError", "TypeError"]
    assert handle.state() == {"items": [nest(99)]}
    assert len(handle.history()) == 2
    assert_history_rebuilds(handle)


# -- durations and purge ---------------------------------------------------------------------


@pytest.mark.parametrize("expire", [float("inf"), float("nan"), 1e300, "99999999999 weeks"])
def test_absurd_expire_is_refused_and_nothing_is_written(mf: MemFlow, expire: Any) -> None:
    with pytest.raises(ValueError):
        mf.workflow.start("none", workflow_id="exp", task_queue="idle", expire=expire)
    assert execute_sql(mf, "SELECT count(*) FROM {schema}.jobs") == [(0,)]
    assert execute_sql(mf, "SELECT count(*) FROM {schema}.tasks") == [(0,)]


def test_absurd_durations_in_a_workflow_are_refused(mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[sleeps_forever])
    assert mf.workflow.execute(sleeps_forever, timeout=30) == ["refused"] * 3
    with pytest.raises(ValueError):
        mf.purge(older_than=float("inf"))
    with pytest.raises(ValueError):
        mf.purge(older_than=1e300)


def test_purge_is_not_blocked_by_an_absurd_expire_stored_with_sql(
        mf: MemFlow, worker: Any) -> None:
    worker("default", workflows=[finish])
    for i in range(3):
        mf.workflow.execute(finish, [i], workflow_id=f"f-{i}", timeout=30)
    execute_sql(mf, "UPDATE {schema}.jobs SET expire_seconds = 1e300 WHERE id = 'f-0'")
    execute_sql(mf, "UPDATE {schema}.jobs SET expire_seconds = 'Infinity' WHERE id = 'f-1'")
    execute_sql(mf, "UPDATE {schema}.jobs SET expire_seconds = 1,"
                    " completed_at = completed_at - interval '1 minute' WHERE id = 'f-2'")
    assert mf.purge() == 1  # f-2 expired; the absurd ones never expire
    assert mf.purge(older_than=None) == 0
    execute_sql(mf, "UPDATE {schema}.jobs SET completed_at = completed_at - interval '8 days'")
    assert mf.purge(older_than="7 days") == 2
    assert mf.workflow.list() == []


# -- finders and list ------------------------------------------------------------------------


@pytest.mark.parametrize("call, error", [
    (lambda mf: mf.entities.find("trust", {}, limit=10**20), ValueError),
    (lambda mf: mf.entities.find("trust", {}, limit=-1), ValueError),
    (lambda mf: mf.entities.find("trust", {}, limit=100_001), ValueError),
    (lambda mf: mf.entities.find("trust", {}, limit=1.5), ValueError),
    (lambda mf: mf.entities.find("trust", {}, limit=True), ValueError),
    (lambda mf: mf.entities.find("trust", {}, offset=10**20), ValueError),
    (lambda mf: mf.entities.find("trust", {}, offset=-1), ValueError),
    (lambda mf: mf.entities.find("tr\x00ust", {}), ValueError),
    (lambda mf: mf.entities.find("tr\udc00ust", {}), ValueError),
    (lambda mf: mf.entities.find("trust", {"a\x00": 1}), ValueError),
    (lambda mf: mf.entities.find("trust", {"a": "b\x00"}), TypeError),
    (lambda mf: mf.entities.find("trust", {"a": {"$like": "b\x00%"}}), TypeError),
    (lambda mf: mf.entities.find("trust", {"a": {"$like": "b\udc00%"}}), TypeError),
    (lambda mf: mf.entities.find("trust", {"a": {"$in": ["b\x00"]}}), TypeError),
    (lambda mf: mf.entities.find_by_condition("trust", "a", "b\x00%", "LIKE"), TypeError),
    (lambda mf: mf.entities.find_by_condition("trust", "a", 1, ">", limit=2**63), ValueError),
    (lambda mf: mf.entities.find_by_id("trust", "id\x00"), ValueError),
    (lambda mf: mf.entities.find_by_id("tr\x00ust", "id"), ValueError),
    (lambda mf: mf.entities.create_index("tr\x00ust", "a"), ValueError),
    (lambda mf: mf.workflow.list(limit=10**20), ValueError),
    (lambda mf: mf.workflow.list(limit=-1), ValueError),
    (lambda mf: mf.workflow.list(limit="5"), ValueError),
    (lambda mf: mf.workflow.list(entity="tr\x00ust"), ValueError),
    (lambda mf: mf.workflow.list(status="done\x00"), ValueError),
    (lambda mf: mf.workflow.list(entity=""), ValueError),
])
def test_bad_pages_and_text_in_queries_are_refused_before_sql(
        mf: MemFlow, call: Any, error: type) -> None:
    with pytest.raises(error) as caught:
        call(mf)
    assert not isinstance(caught.value, psycopg.Error)


def test_good_pages_still_work(mf: MemFlow) -> None:
    mf.workflow.start("none", workflow_id="p1", entity="trust", task_queue="idle",
                      search={"a": "1"})
    assert [r["id"] for r in mf.entities.find("trust", {}, limit=100_000, offset=0)] == ["p1"]
    assert mf.entities.find("trust", {}, limit=0) == []
    assert mf.entities.find("trust", {}, offset=2**31 - 1) == []
    assert [r["id"] for r in mf.workflow.list(entity="trust", limit=100_000)] == ["p1"]
    # A number stored as a string is text: a numeric condition does not see it.
    assert mf.entities.find("trust", {"a": {"$gte": 0}}) == []
    assert [r["id"] for r in mf.entities.find("trust", {"a": {"$gte": "0"}})] == ["p1"]


# -- app ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["abc\n", "public", "PUBLIC", "information_schema",
                                 "Information_Schema", "pg_catalog", "pg_mine", "PG-x",
                                 "pg_toast"])
def test_reserved_and_malformed_app_ids_are_refused(pg_dsn: str, bad: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        MemFlow.init(app_id=bad, dsn=pg_dsn)


def test_app_ids_with_one_schema_are_one_tenant_and_init_says_so(
        pg_dsn: str, app_id: str, caplog: pytest.LogCaptureFixture) -> None:
    with MemFlow.init(app_id=app_id, dsn=pg_dsn) as lower:
        lower.workflow.start("none", workflow_id="shared", task_queue="idle")
        caplog.set_level(logging.DEBUG, logger="hotmesh_sync")
        with MemFlow.init(app_id=app_id.upper(), dsn=pg_dsn) as upper:
            assert upper.schema == lower.schema == app_id
            assert [r["id"] for r in upper.workflow.list()] == ["shared"]
    said = [r.getMessage() for r in caplog.records if "app_schema" in r.getMessage()]
    assert len(said) == 1 and app_id.upper() in said[0] and f"schema={app_id}" in said[0]
