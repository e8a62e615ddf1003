"""HOTMESH_SCHEDULES in the Flask test app: brought in line by `flask hotmesh
migrate` and `flask hotmesh worker`, and fired by the worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

flask = pytest.importorskip("flask")

from e2e_flask_app import create_app, hm  # noqa: E402

from hotmesh_sync.schedule_spec import tick_workflow_id  # noqa: E402
from hotmesh_sync.store.queries import render  # noqa: E402

UTC = timezone.utc


@pytest.fixture
def app(pg_dsn: str, module_app_id: str) -> Iterator[Any]:
    application = create_app(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    yield application
    with application.app_context():
        hm.close()


def migrate(app: Any) -> str:
    result = app.test_cli_runner().invoke(args=["hotmesh", "migrate"])
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_migrate_brings_declared_schedules_in_line(app: Any) -> None:
    app.config["HOTMESH_SCHEDULES"] = {
        "digest": {"cron": "0 8 * * MON-FRI", "workflow_name": "ping", "args": ["d"],
                   "task_queue": "quotes", "timezone": "America/New_York",
                   "overlap": "buffer_one"},
        "cleanup": {"cron": "@weekly", "workflow_name": "ping", "task_queue": "quotes"},
    }
    assert migrate(app).splitlines()[1] == "HotMesh schedules: created 2, updated 0, deleted 0"
    with app.app_context():
        mf = hm.memflow
    assert mf.schedules.get("digest")["overlap"] == "buffer_one"
    mf.schedules.create("by-hand", cron="@daily", workflow_name="ping", task_queue="quotes")

    app.config["HOTMESH_SCHEDULES"] = {"digest": {"cron": "0 9 * * MON-FRI",
                                                  "workflow_name": "ping"}}
    with app.app_context():
        assert hm.sync_schedules() == {"created": [], "updated": ["digest"],
                                       "deleted": ["cleanup"]}
    digest = mf.schedules.get("digest")
    assert (digest["cron"], digest["overlap"], digest["task_queue"]) == (
        "0 9 * * MON-FRI", "skip", "default")
    assert [s["id"] for s in mf.schedules.list()] == ["by-hand", "digest"]
    app.config["HOTMESH_SCHEDULES"] = {}
    migrate(app)
    assert [s["id"] for s in mf.schedules.list()] == ["by-hand"]


def test_a_bad_declaration_is_refused(app: Any) -> None:
    app.config["HOTMESH_SCHEDULES"] = {"digest": {"cron": "@daily", "workflow_name": "ping",
                                                  "overlap": "sometimes"}}
    result = app.test_cli_runner().invoke(args=["hotmesh", "migrate"])
    assert result.exit_code == 1
    assert "schedule 'digest': overlap must be one of" in result.output


def test_worker_command_syncs_and_fires(app: Any, pg_dsn: str) -> None:
    """`flask hotmesh worker` fires a tick missed while no worker ran; its
    workflow is the worker's one task."""
    soon = (datetime.now(UTC) + timedelta(hours=12)).replace(second=0, microsecond=0)
    app.config["HOTMESH_SCHEDULES"] = {
        "refresh": {"cron": f"{soon.minute} {soon.hour} * * *", "workflow_name": "ping",
                    "args": ["refreshed"], "task_queue": "quotes-sched"}}
    migrate(app)
    with app.app_context():
        mf = hm.memflow
    missed = soon - timedelta(days=1)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(render("UPDATE {schema}.schedules SET next_run_at = %s", mf.schema),
                     [missed])
    result = app.test_cli_runner().invoke(args=[
        "hotmesh", "worker", "--task-queue", "quotes-sched", "--max-tasks", "1",
        "--concurrency", "1", "--max-runtime", "30s"])
    assert result.exit_code == 0, result.output
    workflow_id = tick_workflow_id("refresh", missed)
    assert mf.workflow.get_handle(workflow_id).result(timeout=1) == "refreshed"
