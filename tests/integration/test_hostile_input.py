"""Hostile and oversized input: refused with a typed error or stored literally."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hotmesh_sync import MemFlow, errors, workflow

CORPUS = [
    "'; DROP TABLE jobs; --",
    "\" OR 1=1 --",
    "$$; SELECT pg_sleep(10); $$",
    "/* comment */ x",
    "robert'); DELETE FROM tasks WHERE ('1'='1",
    "unicode ☃ 𝄞 ümlaut",
    "semi;colon",
    "back\\slash",
    "%s %(x)s {schema}",
    "x" * 500,
]
NUL_AND_CONTROL = ["nul\x00byte", "line\nbreak", "tab\there"]


def echo_name(value: str) -> str:
    workflow.entity().set({"value": value})
    got = workflow.wait_for(value)
    return f"{value}|{got}"


def intact(mf: MemFlow) -> list[str]:
    with psycopg.connect(mf.dsn) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
            " ORDER BY 1", [mf.schema]).fetchall()
    return [t[0] for t in tables]


TABLES = ["history", "jobs", "queues", "runs", "schedules", "schema_version", "signals",
          "sleepers", "steps", "tasks", "waits", "watchers", "workers", "workflow_runs"]


def test_corpus_through_ids_names_queues_and_signals(mf: MemFlow, worker: Any) -> None:
    handles = []
    for i, text in enumerate(CORPUS):
        queue = f"q-{i}-{text}"[:500]
        worker(queue, workflows={text: echo_name}, concurrency=1)
        handles.append((text, mf.workflow.start(text, [text], task_queue=queue,
                                                 workflow_id=f"id-{text}", entity=text)))
    for text, handle in handles:
        handle.signal(text, text)
    for text, handle in handles:
        assert handle.result(timeout=30) == f"{text}|{text}"
        assert handle.state() == {"value": text}
        assert mf.workflow.list(entity=text)[0]["id"] == f"id-{text}"
    assert intact(mf) == TABLES
    assert len(mf.workflow.list(limit=1000)) == len(CORPUS)


@pytest.mark.parametrize("text", NUL_AND_CONTROL)
def test_control_characters_are_refused_before_writing(mf: MemFlow, text: str) -> None:
    with pytest.raises(ValueError):
        mf.workflow.start("w", workflow_id=text)
    with pytest.raises(ValueError):
        mf.workflow.start(text)
    with pytest.raises(ValueError):
        mf.workflow.start("w", task_queue=text)
    assert mf.workflow.list() == []


def test_nul_in_json_values_is_a_type_error(mf: MemFlow) -> None:
    with pytest.raises(TypeError):
        mf.workflow.start("w", ["nul\x00"])
    with pytest.raises(TypeError):
        mf.workflow.start("w", [], search={"k\x00": 1})
    assert mf.workflow.list() == []


@pytest.mark.parametrize("app_id", CORPUS + NUL_AND_CONTROL)
def test_hostile_app_ids_are_configuration_errors(pg_dsn: str, app_id: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        MemFlow.init(app_id=app_id, dsn=pg_dsn)


def test_oversized_payloads_are_refused_with_nothing_written(
        mf: MemFlow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTMESH_MAX_PAYLOAD_BYTES", "1000")
    big = "x" * 2000
    with pytest.raises(errors.PayloadTooLargeError):
        mf.workflow.start("w", [big])
    with pytest.raises(errors.PayloadTooLargeError):
        mf.workflow.start("w", [], search={"big": big})
    assert mf.workflow.list() == []
    mf.workflow.start("w", workflow_id="small")
    with pytest.raises(errors.PayloadTooLargeError):
        mf.workflow.signal("s", big, workflow_id="small")
    with pytest.raises(errors.PayloadTooLargeError):
        mf.entity("small").set({"big": big})
    assert mf.entity("small").get() == {}


def big_result() -> str:
    return "y" * 5000


def test_oversized_result_fails_the_workflow_clearly(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTMESH_MAX_PAYLOAD_BYTES", "1000")
    worker("default", workflows=[big_result])
    with pytest.raises(errors.WorkflowFailedError) as info:
        mf.workflow.execute(big_result, timeout=30)
    assert info.value.code == 598 and info.value.error_type == "PayloadTooLargeError"


def waits_forever() -> None:
    workflow.wait_for("go")


def test_two_tenants_in_one_database_never_see_each_other(pg_dsn: str, app_id: str) -> None:
    other = app_id + "_b"
    with MemFlow.init(app_id=app_id, dsn=pg_dsn) as a, MemFlow.init(app_id=other,
                                                                    dsn=pg_dsn) as b:
        try:
            a.workflow.start(waits_forever, workflow_id="shared-id", entity="user")
            b.workflow.start(waits_forever, workflow_id="shared-id", entity="user")
            a.entity("shared-id").set({"tenant": "a", "status": "active"})
            b.entity("shared-id").set({"tenant": "b", "status": "active"})
            b.workflow.start(waits_forever, workflow_id="only-b", entity="user")
            with pytest.raises(errors.WorkflowNotFoundError):
                a.workflow.get_handle("only-b")
            with pytest.raises(errors.WorkflowNotFoundError):
                a.workflow.signal("go", 1, workflow_id="only-b")
            assert [r["id"] for r in a.workflow.list()] == ["shared-id"]
            assert a.entity("shared-id").get("tenant") == "a"
            found = a.entities.find("user", {"status": "active"})
            assert [(f["id"], f["context"]["tenant"]) for f in found] == [("shared-id", "a")]
            with a.worker("user", workflows=[waits_forever]):
                # A broadcast in tenant a reaches only tenant a's waiter.
                deadline = time.monotonic() + 10
                while a.workflow.get_handle("shared-id").status() != "waiting":
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                assert a.workflow.signal("go", "x") == 1
            assert b.workflow.get_handle("shared-id").status() == "pending"
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(other)))
