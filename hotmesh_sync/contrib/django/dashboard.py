"""The dashboard inside a Django project, for staff users.

``path("hotmesh/", include("hotmesh_sync.contrib.django.urls"))`` mounts it.
Django's admin login guards it (``staff_member_required``); Django's CSRF
middleware steps aside for it because the dashboard checks a CSRF token of
its own on every action (a double-submit cookie), so its forms need no
Django template tag.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.admin.views.decorators import staff_member_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from ...ui import Dashboard
from ...ui.mount import call
from . import get_memflow

_lock = threading.Lock()
_dashboard: Dashboard | None = None


def _app() -> Dashboard:
    """The dashboard of the project's MemFlow as it is now: made again when that
    MemFlow was closed and replaced (or this process was forked), never left
    holding a closed pool."""
    global _dashboard
    memflow = get_memflow()
    with _lock:
        if _dashboard is None or _dashboard.memflow is not memflow:
            _dashboard = Dashboard(memflow)
        return _dashboard


def _view(request: HttpRequest, subpath: str = "") -> Any:
    """Every page and action of the dashboard, below where it is mounted."""
    mount = request.path[: len(request.path) - len(subpath)] if subpath else request.path
    # META: the WSGI environ under WSGI, Django's equivalent of it under ASGI
    # (an ASGIRequest has no .environ); the scheme as Django sees it (proxies too).
    environ = dict(request.META)
    environ["wsgi.url_scheme"] = request.scheme
    answer = call(_app(), environ, mount, subpath, request.body)
    response: HttpResponse | StreamingHttpResponse
    if answer.streaming:
        body: Any = answer.body
        if isinstance(request, ASGIRequest):
            body = _each_as_it_comes(body)
        response = StreamingHttpResponse(body, status=answer.status)
    else:
        response = HttpResponse(b"".join(answer.body), status=answer.status)
    for name, value in answer.headers:
        if name.lower() == "set-cookie":
            response.cookies.load(value)  # Django keeps cookies apart from headers
        else:
            response[name] = value
    return response


async def _each_as_it_comes(body: Iterable[bytes]) -> AsyncIterator[bytes]:
    """A live stream served under ASGI, each event sent when it comes: Django reads
    a synchronous iterator to its end before sending any of it there. Each chunk
    is waited for on a worker thread; the stream is closed (its subscriptions
    dropped) once the chunk in flight, if any, is in."""
    iterator = iter(body)
    done = object()
    turn = threading.Lock()  # one thread in the generator at a time

    def step() -> Any:
        with turn:
            return next(iterator, done)

    def close() -> None:
        with turn:
            closer = getattr(body, "close", None)
            if closer is not None:
                closer()

    try:
        while (chunk := await sync_to_async(step, thread_sensitive=False)()) is not done:
            yield chunk
    finally:
        # Not awaited: when the client went away this task is being cancelled.
        threading.Thread(target=close, name="hotmesh-ui-close", daemon=True).start()


# Staff only (Django's admin login); csrf_exempt because the dashboard checks
# its own token on every action. Applied by call, not as decorators: Django's
# are untyped.
dashboard_view: Any = csrf_exempt(staff_member_required(_view))
