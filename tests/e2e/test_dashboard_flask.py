"""The web dashboard in a Flask app: ``dashboard_blueprint(guard=...)`` at /hotmesh."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import wait_until

from hotmesh_sync import MemFlow, workflow

flask = pytest.importorskip("flask")

from e2e_flask_app import create_app, hm  # noqa: E402
from flask import request  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from hotmesh_sync.contrib.flask import dashboard_blueprint  # noqa: E402

QUEUE = "dashboard"
ADMIN = {"X-Role": "admin"}


def await_approval(order: str) -> dict[str, Any]:
    """Waits on the signal 'approve' (sent from the dashboard in the test)."""
    workflow.entity().merge({"order": order, "stage": "awaiting approval"})
    decision = workflow.wait_for("approve")
    return {"order": order, "approved_by": decision["by"]}


def admins_only() -> Any:
    """The app's own idea of who may see the dashboard (a header stands in for a login).
    It reads the form, as an extension such as Flask-WTF's CSRFProtect would."""
    if request.method == "POST":
        request.form  # noqa: B018 - parsing it spends the request's body stream
    if request.headers.get("X-Role") != "admin":
        return "admins only", 403
    return None


@pytest.fixture(scope="module")
def app(pg_dsn: str, module_app_id: str) -> Iterator[Any]:
    application = create_app(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    application.register_blueprint(dashboard_blueprint(guard=admins_only))
    yield application
    with application.app_context():
        hm.close()


def memflow_of(app: Any) -> MemFlow:
    with app.app_context():
        memflow: MemFlow = hm.memflow
        return memflow


@pytest.fixture(scope="module")
def live_worker(app: Any) -> Iterator[Any]:
    with memflow_of(app).worker(QUEUE, {"await_approval": await_approval}, concurrency=2,
                                poll_interval=1.0) as worker:
        yield worker


def waiting_workflow(app: Any) -> str:
    handle = memflow_of(app).workflow.start("await_approval", ["B-9"], task_queue=QUEUE,
                                            workflow_id=f"order-{uuid.uuid4().hex[:8]}")
    wait_until(lambda: handle.status() == "waiting")  # the worker ran it up to wait_for
    return handle.workflow_id


def text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def links(response: Any) -> list[str]:
    """Where the page's links, forms, assets and live stream point (not #fragments)."""
    found = re.findall(r'(?:href|action|src|data-live)="([^"]*)"',
                       response.get_data(as_text=True))
    return [html.unescape(link) for link in found if not link.startswith("#")]


def csrf_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("hotmesh_csrf", path="/hotmesh")
    assert cookie is not None and cookie.http_only
    return cookie.value


def test_the_guard_refuses_and_allows(app: Any) -> None:
    client = app.test_client()
    for response in (client.get("/hotmesh/"), client.get("/hotmesh/events"),
                     client.post("/hotmesh/workflow/interrupt", data={"id": "x"})):
        assert response.status_code == 403
        assert response.get_data(as_text=True) == "admins only"
    assert client.get("/hotmesh/", headers=ADMIN).status_code == 200
    # Without the trailing slash Flask redirects to the mount's root.
    bare = client.get("/hotmesh", headers=ADMIN)
    assert bare.status_code == 308 and bare.headers["Location"].endswith("/hotmesh/")
    # The app's own routes are not the blueprint's: no guard there.
    assert client.get("/quotes/nope").status_code == 404


def test_pages_under_the_prefix(app: Any, live_worker: Any) -> None:
    workflow_id = waiting_workflow(app)
    client = app.test_client()
    page = client.get("/hotmesh/", headers=ADMIN)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert workflow_id in text(page)
    found = links(page)
    assert f"/hotmesh/workflow?id={workflow_id}" in found
    assert {"/hotmesh/", "/hotmesh/failed", "/hotmesh/schedules", "/hotmesh/queues",
            "/hotmesh/workers", "/hotmesh/static/live.js", "/hotmesh/events"} <= set(found)
    assert all(link.startswith("/hotmesh/") for link in found), found
    one = client.get("/hotmesh/workflow", query_string={"id": workflow_id}, headers=ADMIN)
    assert one.status_code == 200
    assert '<span class="key">stage</span>: <span class="v-string">"awaiting approval"</span>' \
        in text(one)
    assert all(link.startswith("/hotmesh/") for link in links(one))
    for path in ("/hotmesh/schedules", "/hotmesh/queues", "/hotmesh/workers", "/hotmesh/failed",
                 "/hotmesh/static/style.css"):
        assert client.get(path, headers=ADMIN).status_code == 200, path
    assert client.get("/hotmesh/workflow?id=nope", headers=ADMIN).status_code == 404
    # A path the dashboard does not have, named as it was asked for (not re-decoded).
    missing = client.get("/hotmesh/%C3%83%C2%A9tat", headers=ADMIN)
    assert missing.status_code == 404 and "no page at /Ã©tat" in text(missing)
    memflow_of(app).workflow.get_handle(workflow_id).interrupt()


def test_a_confirmed_signal(app: Any, live_worker: Any) -> None:
    workflow_id = waiting_workflow(app)
    client = app.test_client()
    client.get("/hotmesh/workflow", query_string={"id": workflow_id}, headers=ADMIN)
    form = {"csrf_token": csrf_cookie(client), "id": workflow_id, "signal_id": "approve",
            "data": '{"by": "flask"}'}

    asked = client.post("/hotmesh/workflow/signal", data=form, headers=ADMIN)
    assert asked.status_code == 200, text(asked)
    assert "Send signal 'approve'" in text(asked)
    assert 'action="/hotmesh/workflow/signal"' in asked.get_data(as_text=True)

    done = client.post("/hotmesh/workflow/signal", data={**form, "confirmed": "yes"},
                       headers=ADMIN)
    assert done.status_code == 303
    assert done.headers["Location"] == f"/hotmesh/workflow?id={workflow_id}&notice=signalled"
    handle = memflow_of(app).workflow.get_handle(workflow_id)
    assert handle.result(timeout=20) == {"order": "B-9", "approved_by": "flask"}
    assert "Signal sent." in text(client.get(done.headers["Location"], headers=ADMIN))


def test_an_action_without_the_csrf_field_is_forbidden(app: Any, live_worker: Any) -> None:
    workflow_id = waiting_workflow(app)
    client = app.test_client()
    client.get("/hotmesh/", headers=ADMIN)
    refused = client.post("/hotmesh/workflow/signal", headers=ADMIN, data={
        "id": workflow_id, "signal_id": "approve", "confirmed": "yes"})
    assert refused.status_code == 403
    assert "security token is missing or stale" in text(refused)
    handle = memflow_of(app).workflow.get_handle(workflow_id)
    assert handle.status() == "waiting"
    handle.interrupt()


def test_live_updates_stream(app: Any, live_worker: Any) -> None:
    workflow_id = waiting_workflow(app)
    response = app.test_client().get("/hotmesh/events", query_string={"id": workflow_id},
                                     headers=ADMIN, buffered=False)
    try:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.is_streamed
        assert next(iter(response.response)) == b"retry: 2000\nevent: ready\ndata: live\n\n"
    finally:
        response.close()
    memflow_of(app).workflow.get_handle(workflow_id).interrupt()


def test_mounted_where_registered_below_a_script_root(pg_dsn: str, module_app_id: str) -> None:
    """register_blueprint(..., url_prefix=...) moves the dashboard, and the app may itself
    be served below a prefix (SCRIPT_NAME): the links follow both."""
    other = create_app(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    other.register_blueprint(dashboard_blueprint(), url_prefix="/ops/dash")
    client = other.test_client()
    page = client.get("/ops/dash/queues", base_url="http://localhost/app/")
    assert page.status_code == 200
    found = links(page)
    assert {"/app/ops/dash/", "/app/ops/dash/workers", "/app/ops/dash/static/style.css",
            "/app/ops/dash/events"} <= set(found)
    assert all(link.startswith("/app/ops/dash/") for link in found), found
    assert client.get_cookie("hotmesh_csrf", path="/app/ops/dash") is not None
    assert client.get("/hotmesh/").status_code == 404
    with other.app_context():
        hm.close()


def test_the_dashboard_follows_a_memflow_made_again(pg_dsn: str, module_app_id: str) -> None:
    """After hm.close() the next use makes a new MemFlow: the dashboard uses that one,
    not the closed pool."""
    other = create_app(HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    other.register_blueprint(dashboard_blueprint())
    client = other.test_client()
    assert client.get("/hotmesh/").status_code == 200
    closed = memflow_of(other)
    with other.app_context():
        hm.close()
    assert closed.pool.closed
    assert client.get("/hotmesh/").status_code == 200
    assert memflow_of(other) is not closed
    with other.app_context():
        hm.close()
