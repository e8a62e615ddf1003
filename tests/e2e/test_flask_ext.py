"""hotmesh_sync.contrib.flask: the extension in a small app, with a live worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from e2e_flask_app import create_app, hm  # noqa: E402

from hotmesh_sync.contrib import load_functions, wrap_activities  # noqa: E402
from hotmesh_sync.contrib.flask import HotMesh  # noqa: E402


@pytest.fixture(scope="module")
def app(pg_dsn: str, module_app_id: str) -> Iterator[Any]:
    application = create_app(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    yield application
    with application.app_context():
        hm.close()


@pytest.fixture(scope="module")
def live_worker(app: Any) -> Iterator[Any]:
    """A worker for the app's queue, its activities in an app context as `flask hotmesh
    worker` runs them."""
    functions = load_functions(app.config["HOTMESH_WORKFLOWS"])
    with app.app_context():
        memflow = hm.memflow
    with memflow.worker("quotes", functions, wrap_activities(functions, app.app_context),
                        concurrency=2, poll_interval=1.0) as worker:
        yield worker


def test_view_starts_a_workflow_that_the_worker_completes(app: Any, live_worker: Any) -> None:
    client = app.test_client()
    response = client.post("/quotes", json={"item": "book", "qty": 2})
    assert response.status_code == 202
    workflow_id = response.get_json()["workflow_id"]
    deadline = time.monotonic() + 20
    while (body := client.get(f"/quotes/{workflow_id}").get_json())["status"] != "completed":
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    assert body == {"workflow_id": workflow_id, "status": "completed",
                    "state": {"item": "book", "total": 30},
                    "result": {"item": "book", "total": 30}}
    assert client.get("/quotes/nope").status_code == 404


def test_one_memflow_per_app_not_per_request(app: Any, pg_dsn: str) -> None:
    """Every request of an app shares one open MemFlow; another app gets its own."""
    client = app.test_client()
    answers = [client.get("/health").get_json() for _ in range(3)]
    assert answers[0] == {"app_id": app.config["HOTMESH_APP_ID"], "memflow": answers[0]["memflow"],
                          "pool_closed": False}
    assert answers == answers[:1] * 3

    other = create_app(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=app.config["HOTMESH_APP_ID"])
    theirs = other.test_client().get("/health").get_json()
    assert theirs["memflow"] != answers[0]["memflow"]
    with other.app_context():
        hm.close()


def test_bound_extension_and_close(pg_dsn: str, module_app_id: str) -> None:
    """HotMesh(app) works outside any app context; close() closes the pool, and the next
    use opens a new one."""
    app = flask.Flask("bound")
    app.config.update(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    ext = HotMesh(app)
    first = ext.memflow
    assert ext.memflow is first
    ext.close()
    assert first.pool.closed
    second = ext.memflow
    assert second is not first and not second.pool.closed
    ext.close()


def test_unbound_extension_needs_init_app(pg_dsn: str) -> None:
    app = flask.Flask("uninitialised")
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        HotMesh().memflow  # noqa: B018 - the property access is the test


def test_flask_hotmesh_worker_command(app: Any) -> None:
    """`flask hotmesh worker --max-tasks 1` runs the queued workflow and returns 0."""
    with app.app_context():
        handle = hm.memflow.workflow.start("ping", ["via flask"], task_queue="quotes-cli")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["hotmesh", "worker", "--task-queue", "quotes-cli",
                                 "--max-tasks", "1", "--concurrency", "1"])
    assert result.exit_code == 0, result.output
    assert handle.result(timeout=1) == "via flask"


def test_flask_hotmesh_commands_refuse_bad_input(app: Any) -> None:
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["hotmesh", "worker", "no_such_module_xyz", "--max-tasks", "1"])
    assert bad.exit_code == 1 and "cannot import 'no_such_module_xyz'" in bad.output
    migrated = runner.invoke(args=["hotmesh", "migrate"])
    assert migrated.exit_code == 0
    assert migrated.output.startswith("HotMesh schema ")
