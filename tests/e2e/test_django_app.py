"""hotmesh_sync.contrib.django in a real (small) Django project against PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from e2e_support import cli_env

from hotmesh_sync import MemFlow, errors

django = pytest.importorskip("django")

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402
from django.test import Client, override_settings  # noqa: E402


@pytest.fixture(scope="module")
def project(pg_dsn: str, module_app_id: str) -> Iterator[MemFlow]:
    """The e2e_shop project set up on the test database; yields its MemFlow."""
    variables = {"E2E_SHOP_DSN": pg_dsn, "E2E_SHOP_APP_ID": module_app_id,
                 "DJANGO_SETTINGS_MODULE": "e2e_shop.settings"}
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    django.setup()  # settings are read here, once per process
    from hotmesh_sync.contrib.django import _lazy, get_memflow

    yield get_memflow()
    _lazy.close()
    connections.close_all()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def live_worker(project: MemFlow) -> Iterator[Any]:
    """A worker on the project's queue, run the way manage.py hotmesh_worker runs one."""
    import e2e_shop.workflows

    from hotmesh_sync.contrib import load_functions, wrap_activities
    from hotmesh_sync.contrib.django.management.commands.hotmesh_worker import (
        django_db_hygiene,
    )

    functions = load_functions(["e2e_shop.workflows"])
    assert set(functions) == {"total_price", "fulfil_order", "ping"}
    assert functions["ping"] is e2e_shop.workflows.ping
    with project.worker("shop", functions, wrap_activities(functions, django_db_hygiene),
                        concurrency=2, poll_interval=1.0) as worker:
        yield worker


def wait_for_status(client: Client, workflow_id: str, wanted: str,
                    timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/orders/{workflow_id}/").json()
        if body["status"] == wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_view_starts_worker_completes_status_view_shows(project: MemFlow,
                                                       live_worker: Any) -> None:
    """A view starts a workflow in its transaction; the worker runs it; a view reports it."""
    client = Client()
    response = client.post("/orders/", {"item": "book", "qty": 3},
                           content_type="application/json")
    assert response.status_code == 202
    workflow_id = response.json()["workflow_id"]
    body = wait_for_status(client, workflow_id, "completed")
    assert body == {"workflow_id": workflow_id, "status": "completed",
                    "state": {"item": "book", "total": 12, "status": "shipped"},
                    "result": {"item": "book", "total": 12}}
    assert client.get("/orders/nope/").status_code == 404


def test_failing_view_leaves_no_workflow(project: MemFlow, live_worker: Any) -> None:
    """A view that fails after starting a workflow rolls the start back with its transaction."""
    client = Client(raise_request_exception=False)
    workflow_id = f"rejected-{uuid.uuid4().hex[:8]}"
    response = client.post("/orders/", {"item": "book", "qty": 1, "id": workflow_id,
                                        "reject": True}, content_type="application/json")
    assert response.status_code == 500
    assert client.get(f"/orders/{workflow_id}/").status_code == 404
    with pytest.raises(errors.WorkflowNotFoundError):
        project.workflow.get_handle(workflow_id)


def test_atomic_block_commit_and_rollback(project: MemFlow, live_worker: Any) -> None:
    """Inside transaction.atomic() a start is invisible until commit, and gone on rollback."""
    committed, rolled_back = (f"atomic-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with transaction.atomic():
        project.workflow.start("ping", ["kept"], task_queue="shop", workflow_id=committed,
                               connection=connection)
        with pytest.raises(errors.WorkflowNotFoundError):
            project.workflow.get_handle(committed)  # another connection: not yet
    assert project.workflow.get_handle(committed).result(timeout=20) == "kept"

    with pytest.raises(RuntimeError), transaction.atomic():
        project.workflow.start("ping", ["lost"], task_queue="shop",
                               workflow_id=rolled_back, connection=connection)
        raise RuntimeError("roll back")
    with pytest.raises(errors.WorkflowNotFoundError):
        project.workflow.get_handle(rolled_back)
    # Nothing of it is left behind: the id can be used again.
    again = project.workflow.start("ping", ["second"], task_queue="shop",
                                   workflow_id=rolled_back)
    assert again.result(timeout=20) == "second"


def test_worker_command_drains_and_returns(project: MemFlow) -> None:
    """manage.py hotmesh_worker --max-tasks runs the queued workflow, then returns."""
    handle = project.workflow.start("ping", [{"via": "command"}], task_queue="shop-cmd")
    call_command("hotmesh_worker", "--task-queue", "shop-cmd", "--max-tasks", "1",
                 "--concurrency", "1")
    assert handle.status() == "completed"
    assert handle.result(timeout=1) == {"via": "command"}


def test_migrate_command(project: MemFlow) -> None:
    out = io.StringIO()
    call_command("hotmesh_migrate", stdout=out)
    assert out.getvalue().startswith(f"HotMesh schema {project.schema} is at version ")


def test_memflow_comes_from_settings(project: MemFlow, pg_dsn: str) -> None:
    """APP_ID names the schema, and the DSN built from DATABASES reaches the same database."""
    from django.conf import settings

    from hotmesh_sync.contrib.django import load_settings, memflow

    conf = load_settings()
    assert (conf.app_id, conf.workflows, conf.task_queue, conf.concurrency) == (
        settings.HOTMESH["APP_ID"], ("e2e_shop.workflows",), "shop", 2)
    assert memflow.schema == project.schema
    with psycopg.connect(conf.dsn) as ours, psycopg.connect(pg_dsn) as theirs:
        query = "SELECT current_database(), inet_server_port(), current_user"
        assert ours.execute(query).fetchone() == theirs.execute(query).fetchone()


@pytest.mark.parametrize(("hotmesh", "complaint"), [
    ({"APP_ID": "no spaces!"}, "APP_ID"),
    ({"WORKFLOW": ["typo"]}, "unknown keys ['WORKFLOW']"),
    ({"WORKFLOWS": "shop.workflows"}, "WORKFLOWS"),
    ({"CONCURRENCY": 0}, "CONCURRENCY"),
    ([], "must be a dict"),
])
def test_bad_settings_are_refused(project: MemFlow, hotmesh: Any, complaint: str) -> None:
    from hotmesh_sync.contrib.django import load_settings

    with override_settings(HOTMESH=hotmesh), pytest.raises(ImproperlyConfigured,
                                                           match=complaint.replace("[", r"\[")):
        load_settings()


def test_dsn_from_database() -> None:
    """A DATABASES entry becomes the DSN Django itself would connect with."""
    from hotmesh_sync.contrib.django import dsn_from_database

    dsn = dsn_from_database({
        "ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app",
        "PASSWORD": "s3cret word", "HOST": "db.internal", "PORT": 5433,
        "OPTIONS": {"sslmode": "require", "isolation_level": 2, "pool": True}})
    assert psycopg.conninfo.conninfo_to_dict(dsn) == {
        "dbname": "shop", "user": "app", "password": "s3cret word", "host": "db.internal",
        "port": "5433", "sslmode": "require"}
    with pytest.raises(ImproperlyConfigured, match="needs PostgreSQL"):
        dsn_from_database({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"})


def test_importing_memflow_does_not_connect(tmp_path: Any) -> None:
    """`from hotmesh_sync.contrib.django import memflow` works with no database to reach;
    the first use is what connects (and fails here)."""
    script = """
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["hotmesh_sync.contrib.django"],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "x",
                           "HOST": "127.0.0.1", "PORT": 1}},
    HOTMESH={"APP_ID": "lazy"})
django.setup()
from hotmesh_sync.contrib.django import memflow
print("imported", repr(memflow))
try:
    memflow.workflow
except Exception as exc:
    print("first use:", type(exc).__name__)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=cli_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["imported <LazyMemFlow not connected yet>",
                                        "first use: ConfigurationError"]


def test_json_of_status_view_is_plain_json(project: MemFlow, live_worker: Any) -> None:
    """The status view's body round-trips through json (dates and all)."""
    handle = project.workflow.start("ping", [1], task_queue="shop")
    handle.result(timeout=20)
    body = Client().get(f"/orders/{handle.workflow_id}/").content
    assert json.loads(body)["result"] == 1


def test_transactional_activity_writes_through_the_orm_exactly_once(project: MemFlow) -> None:
    """manage.py hotmesh_worker runs a transactional activity inside atomic() on
    Django's connection: its ORM write commits with its step; when it raises,
    the write is rolled back."""
    from e2e_shop.models import Reservation

    with connection.schema_editor() as editor:
        editor.create_model(Reservation)
    kept = project.workflow.start("reserve_order", ["o-kept", 2], task_queue="shop-stock")
    refused = project.workflow.start("reserve_order", ["o-refused", 0], task_queue="shop-stock")
    call_command("hotmesh_worker", "e2e_shop.stock", "--task-queue", "shop-stock",
                 "--max-tasks", "2", "--concurrency", "1")

    reserved = kept.result(timeout=5)["reserved"]
    assert reserved["same_connection"] is True and reserved["in_atomic_block"] is True
    [row] = Reservation.objects.filter(order_id="o-kept")
    assert (row.pk, row.qty) == (reserved["id"], 2)
    assert [(s["kind"], s["name"], s["error"]) for s in kept.steps()] == [
        ("activity", "reserve_stock", None)]

    assert refused.result(timeout=5) == {"refused": "cannot reserve 0 of o-refused"}
    assert not Reservation.objects.filter(order_id="o-refused").exists()
