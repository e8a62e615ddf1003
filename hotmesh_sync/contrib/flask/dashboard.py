"""The dashboard inside a Flask app, as a blueprint.

``app.register_blueprint(dashboard_blueprint(guard=admins_only))`` mounts
it at ``/hotmesh``. The app's own login decides who may see it: ``guard``
runs before every request of the blueprint and returns a response (a
redirect, a 403) to refuse, or None to let the request through. Without a
guard the dashboard is open to anyone who can reach the app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from ...serving import MemFlowHolder
from ...ui import Dashboard
from ...ui.mount import call

_lock = threading.Lock()


#: Where HotMesh.init_app keeps the app's MemFlow holder (and this, the dashboard).
EXTENSION = "hotmesh"


def _dashboard() -> Dashboard:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    holder: MemFlowHolder | None = app.extensions.get(EXTENSION)
    if holder is None:
        raise RuntimeError("HotMesh.init_app(app) has not been called for this app")
    # The app's MemFlow as it is now: after hm.close() (or a fork) the next use
    # makes a new one, and the dashboard follows it instead of keeping a closed pool.
    memflow = holder.get()
    with _lock:
        found = app.extensions.get(EXTENSION + ".dashboard")
        if found is None or found.memflow is not memflow:
            found = app.extensions[EXTENSION + ".dashboard"] = Dashboard(memflow)
    dashboard: Dashboard = found
    return dashboard


def _body() -> bytes:
    """The request body as sent. When something before the view (a guard)
    read ``request.form``, Flask has consumed the stream: encode the form again."""
    data = request.get_data(cache=True)
    if not data and request.form:
        return urlencode(list(request.form.items(multi=True))).encode()
    return data


def dashboard_blueprint(url_prefix: str = "/hotmesh", *,
                        guard: Callable[[], Any] | None = None,
                        name: str = "hotmesh_dashboard") -> Blueprint:
    """A blueprint serving the dashboard of the app's MemFlow (``HotMesh(app)``
    must be set up) under ``url_prefix``."""
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix.rstrip("/") or None)

    if guard is not None:
        blueprint.before_request(guard)

    @blueprint.route("/", defaults={"subpath": ""}, methods=["GET", "POST"])
    @blueprint.route("/<path:subpath>", methods=["GET", "POST"])
    def dashboard(subpath: str) -> Response:
        # Where it is mounted, from the request itself: register_blueprint(...,
        # url_prefix=...) may have put it elsewhere than url_prefix says.
        path = request.path
        mount = request.script_root + (path[: len(path) - len(subpath)] if subpath else path)
        answer = call(_dashboard(), request.environ, mount, subpath, _body())
        return Response(answer.body, status=answer.status, headers=answer.headers,
                        direct_passthrough=answer.streaming)

    return blueprint
