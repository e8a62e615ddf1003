"""The web dashboard mounted in the e2e_shop Django project at /hotmesh/ (staff only).

Django's own tables (users, sessions) are made by ``migrate`` in this module's app
schema, so the shared test database keeps nothing of them afterwards.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from e2e_support import drop_schema, wait_until
from psycopg import sql

from hotmesh_sync import MemFlow, errors, workflow

django = pytest.importorskip("django")

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

QUEUE = "dashboard"


def await_approval(order: str) -> dict[str, Any]:
    """Waits on the signal 'approve' (sent from the dashboard in the test)."""
    workflow.entity().merge({"order": order, "stage": "awaiting approval",
                             "customer": {"tier": "gold", "credit": 1250}})
    decision = workflow.wait_for("approve")
    workflow.entity().merge({"stage": "approved"})
    return {"order": order, "approved_by": decision["by"]}


@pytest.fixture(scope="session")
def django_project(pg_dsn: str) -> Iterator[None]:
    """Django set up with the e2e_shop project, once per process.

    Its settings (and e2e_shop's model) take the app id from the environment when
    they are first read, and keep it for the process. When this module is the
    first to read them, the id put there is the session's, its schema dropped at
    the session's end: modules that run later (test_django_app.py) use it too."""
    from django.conf import settings

    pinned = None if settings.configured else f"e2e_{uuid.uuid4().hex[:10]}"
    variables = {"E2E_SHOP_DSN": pg_dsn, "E2E_SHOP_APP_ID": pinned or "unused",
                 "DJANGO_SETTINGS_MODULE": "e2e_shop.settings"}
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        django.setup()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield
    if pinned is not None:
        drop_schema(pg_dsn, pinned)


@pytest.fixture(scope="module")
def project(django_project: None, module_app_id: str) -> Iterator[MemFlow]:
    """The e2e_shop project on this module's app id (override_settings: Django read
    its settings already), with Django's own tables migrated into that app's
    schema; yields its MemFlow."""
    from django.conf import settings

    from hotmesh_sync.contrib.django import _lazy, get_memflow

    _lazy.close()
    with override_settings(HOTMESH={**settings.HOTMESH, "APP_ID": module_app_id}):
        memflow = get_memflow()  # made first: it must not see the search_path below
        # Django's connections (of every thread) look in the app's schema only.
        database = connections["default"].settings_dict
        options = database["OPTIONS"]
        database["OPTIONS"] = {**options, "options": f"-c search_path={memflow.schema}"}
        connections.close_all()
        try:
            call_command("migrate", verbosity=0, interactive=False)
            yield memflow
        finally:
            connections.close_all()
            database["OPTIONS"] = options
            _lazy.close()


@pytest.fixture(scope="module")
def live_worker(project: MemFlow) -> Iterator[Any]:
    with project.worker(QUEUE, {"await_approval": await_approval}, concurrency=2,
                        poll_interval=1.0) as worker:
        yield worker


def user(*, staff: bool) -> Any:
    from django.contrib.auth.models import User

    name = f"{'staff' if staff else 'clerk'}-{uuid.uuid4().hex[:8]}"
    return User.objects.create_user(name, is_staff=staff)  # no password: a quick hash


@pytest.fixture
def staff() -> Client:
    """A logged-in staff member's browser; Django's CSRF checks enforced, as in a browser."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user(staff=True))
    return client


def waiting_workflow(project: MemFlow) -> str:
    workflow_id = f"order-{uuid.uuid4().hex[:8]}"
    handle = project.workflow.start("await_approval", ["A-17"], task_queue=QUEUE,
                                    workflow_id=workflow_id, entity="order")
    # The worker has run it up to wait_for.
    wait_until(lambda: handle.status() == "waiting")
    return workflow_id


def post(client: Client, path: str, form: dict[str, str]) -> Any:
    """POST a form the way a browser sends the dashboard's forms (url-encoded)."""
    return client.post(path, urlencode(form), content_type="application/x-www-form-urlencoded")


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def links(response: Any) -> list[str]:
    """Where the page's links, forms, assets and live stream point (not #fragments)."""
    found = re.findall(r'(?:href|action|src|data-live)="([^"]*)"', response.content.decode())
    return [html.unescape(link) for link in found if not link.startswith("#")]


def test_anonymous_is_sent_to_the_admin_login(project: MemFlow) -> None:
    response = Client().get("/hotmesh/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/hotmesh/"


def test_non_staff_is_refused(project: MemFlow) -> None:
    client = Client()
    client.force_login(user(staff=False))
    for response in (client.get("/hotmesh/"), client.get("/hotmesh/events"),
                     post(client, "/hotmesh/workflow/interrupt", {"id": "x"})):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=/hotmesh/")


def test_staff_sees_the_workflows_and_a_workflow(project: MemFlow, live_worker: Any,
                                                 staff: Client) -> None:
    workflow_id = waiting_workflow(project)
    page = staff.get("/hotmesh/")
    assert page.status_code == 200
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert workflow_id in text(page) and "await_approval" in text(page)
    # Every link, form and asset stays under the mount.
    found = links(page)
    assert f"/hotmesh/workflow?id={workflow_id}" in found
    assert {"/hotmesh/", "/hotmesh/failed", "/hotmesh/schedules", "/hotmesh/queues",
            "/hotmesh/workers", "/hotmesh/static/style.css", "/hotmesh/events"} <= set(found)
    assert all(link.startswith("/hotmesh/") for link in found), found
    assert staff.get("/hotmesh/static/style.css").status_code == 200

    one = staff.get("/hotmesh/workflow", {"id": workflow_id})
    assert one.status_code == 200
    shown = text(one)
    assert '<span class="key">customer</span>' in shown
    assert '<span class="key">tier</span>: <span class="v-string">"gold"</span>' in shown
    assert '<span class="v-number">1250</span>' in shown
    assert '"awaiting approval"' in shown
    assert f"/hotmesh/events?id={workflow_id}" in links(one)
    assert all(link.startswith("/hotmesh/") for link in links(one))
    for path in ("/hotmesh/schedules", "/hotmesh/queues", "/hotmesh/workers",
                 "/hotmesh/failed"):
        assert staff.get(path).status_code == 200, path
    assert staff.get("/hotmesh/workflow", {"id": "no-such"}).status_code == 404
    assert staff.get("/hotmesh/nowhere").status_code == 404


def test_links_below_a_script_prefix(project: MemFlow, staff: Client) -> None:
    """Django served below a prefix (SCRIPT_NAME): the dashboard's links carry it too."""
    page = staff.get("/hotmesh/workers", SCRIPT_NAME="/shop")
    assert page.status_code == 200
    found = links(page)
    assert {"/shop/hotmesh/", "/shop/hotmesh/queues", "/shop/hotmesh/static/style.css"} <= set(
        found)
    assert all(link.startswith("/shop/hotmesh/") for link in found), found
    assert staff.cookies["hotmesh_csrf"]["path"] == "/shop/hotmesh"


def test_a_confirmed_signal_through_the_mount(project: MemFlow, live_worker: Any,
                                             staff: Client) -> None:
    workflow_id = waiting_workflow(project)
    page = staff.get("/hotmesh/workflow", {"id": workflow_id})
    cookie = staff.cookies["hotmesh_csrf"]
    assert cookie["path"] == "/hotmesh" and cookie["httponly"]
    token = cookie.value
    assert f'name="csrf_token" value="{token}"' in page.content.decode()
    form = {"csrf_token": token, "id": workflow_id, "signal_id": "approve",
            "data": '{"by": "dana"}'}

    asked = post(staff, "/hotmesh/workflow/signal", form)  # the button: a question first
    assert asked.status_code == 200
    assert "Send signal 'approve'" in text(asked)
    assert 'action="/hotmesh/workflow/signal"' in asked.content.decode()
    assert project.workflow.get_handle(workflow_id).status() == "waiting"

    done = post(staff, "/hotmesh/workflow/signal", {**form, "confirmed": "yes"})
    assert done.status_code == 303
    assert done["Location"] == f"/hotmesh/workflow?id={workflow_id}&notice=signalled"
    handle = project.workflow.get_handle(workflow_id)
    assert handle.result(timeout=20) == {"order": "A-17", "approved_by": "dana"}
    after = staff.get(done["Location"])
    assert "Signal sent." in text(after) and '"approved"' in text(after)


def test_an_action_without_the_csrf_field_is_forbidden(project: MemFlow, live_worker: Any,
                                                      staff: Client) -> None:
    workflow_id = waiting_workflow(project)
    staff.get("/hotmesh/")  # the cookie is set; the field is what is missing
    refused = post(staff, "/hotmesh/workflow/signal", {"id": workflow_id, "signal_id": "approve",
                                                       "confirmed": "yes"})
    assert refused.status_code == 403
    # The dashboard's refusal (Django's CSRF middleware stepped aside for the mount).
    assert "security token is missing or stale" in text(refused)
    stale = post(staff, "/hotmesh/workflow/signal", {
        "id": workflow_id, "signal_id": "approve", "confirmed": "yes",
        "csrf_token": "x" * 43})
    assert stale.status_code == 403
    handle = project.workflow.get_handle(workflow_id)
    assert handle.status() == "waiting"
    handle.interrupt()


def test_live_updates_stream(project: MemFlow, live_worker: Any, staff: Client) -> None:
    workflow_id = waiting_workflow(project)
    response = staff.get("/hotmesh/events", {"id": workflow_id})
    try:
        from django.http import StreamingHttpResponse

        assert isinstance(response, StreamingHttpResponse)
        assert response.status_code == 200
        assert response["Content-Type"] == "text/event-stream"
        assert response["Cache-Control"] == "no-store"
        first = next(iter(response.streaming_content))
        assert first == b"retry: 2000\nevent: ready\ndata: live\n\n"
        assert watchers(project, workflow_id) == 1  # the stream watches the entity
    finally:
        response.close()
    # Closing the response ended the stream, which removed its watcher.
    assert watchers(project, workflow_id) == 0
    project.workflow.get_handle(workflow_id).interrupt()


def watchers(project: MemFlow, workflow_id: str) -> int:
    with psycopg.connect(project.dsn) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.watchers WHERE job_id = %s").format(
            sql.Identifier(project.schema)), [workflow_id]).fetchone()
    assert row is not None
    return int(row[0])


def test_under_asgi(project: MemFlow, live_worker: Any) -> None:
    """Django served by ASGI (AsyncClient makes ASGIRequests): pages and actions work,
    and the live stream is an asynchronous one, each event sent as it comes."""
    from django.test import AsyncClient

    workflow_id = waiting_workflow(project)
    client = AsyncClient(enforce_csrf_checks=True)
    client.force_login(user(staff=True))

    async def browse() -> tuple[str, bytes]:
        page = await client.get("/hotmesh/workflow", {"id": workflow_id})
        assert page.status_code == 200
        assert f'data-live="/hotmesh/events?id={workflow_id}"' in page.content.decode()
        token = client.cookies["hotmesh_csrf"].value
        done = await client.post(
            "/hotmesh/workflow/interrupt", urlencode({
                "csrf_token": token, "id": workflow_id, "confirmed": "yes"}),
            content_type="application/x-www-form-urlencoded")
        assert done.status_code == 303, done.content
        stream = await client.get("/hotmesh/events", {"id": workflow_id})
        assert stream.streaming and stream.is_async
        assert stream["Content-Type"] == "text/event-stream"
        first = await anext(aiter(stream.streaming_content))
        return str(done["Location"]), first  # the loop's end closes the stream

    location, first = asyncio.run(browse())
    assert location == f"/hotmesh/workflow?id={workflow_id}&notice=interrupted"
    assert first == b"retry: 2000\nevent: ready\ndata: live\n\n"
    with pytest.raises(errors.WorkflowInterruptedError):
        project.workflow.get_handle(workflow_id).result(timeout=20)
    # The stream was closed when the event loop ended: its watcher is gone.
    wait_until(lambda: watchers(project, workflow_id) == 0)
