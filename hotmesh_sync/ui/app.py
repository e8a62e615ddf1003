"""The dashboard as one WSGI application: routes, sign-in, CSRF, errors.

``Dashboard(memflow)`` is a plain WSGI callable. ``hotmesh-sync ui`` serves
it; Django and Flask mount it under a prefix (SCRIPT_NAME), which every link
it renders respects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any

from .. import errors
from ..log import get_logger
from . import actions, live, views
from .http import BadRequest, Request, Response, chunks, link, redirect
from .render import render
from .security import CSRF_COOKIE, CSRF_FIELD, TOKEN_COOKIE, TokenGate, csrf_problem, csrf_token

if TYPE_CHECKING:
    from ..memflow import MemFlow

_log = get_logger("hotmesh_sync.ui")
_STATIC = {"style.css": "text/css; charset=utf-8",
           "live.js": "text/javascript; charset=utf-8"}
Page = Callable[["MemFlow", Request], "dict[str, Any] | None"]
#: path -> (template, page function, navigation entry, live stream?)
PAGES: dict[str, tuple[str, Page, str, bool]] = {
    "/": ("workflows.html", views.workflows, "workflows", True),
    "/workflow": ("workflow.html", views.workflow, "workflows", True),
    "/schedules": ("schedules.html", views.schedules, "schedules", False),
    "/queues": ("queues.html", views.queues, "queues", True),
    "/workers": ("workers.html", views.workers, "workers", False),
    "/failed": ("failed.html", views.failed, "failed", True),
}


class Dashboard:
    """The web dashboard of one app as a WSGI application.

    ``token``: when set, every request must present it (sign-in form, cookie
    or ``Authorization: Bearer``); ``hotmesh-sync ui`` requires one when it
    binds to anything but loopback. Mounted behind a framework that already
    authenticates (Django staff, a Flask login), leave it None.
    """

    def __init__(self, memflow: MemFlow, *, token: str | None = None,
                 title: str | None = None) -> None:
        self.memflow = memflow
        self.gate = TokenGate(token)
        self.title = title or f"hotmesh · {memflow.app_id}"

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        try:
            response = self.handle(request)
        except BadRequest as exc:
            response = self._message(request, HTTPStatus(exc.status), str(exc))
        except (errors.WorkflowNotFoundError, errors.ScheduleNotFoundError) as exc:
            response = self._message(request, HTTPStatus.NOT_FOUND, str(exc))
        except Exception:
            # Never a traceback in the page; the log has it.
            _log.exception("ui_request_failed", path=request.path, method=request.method)
            response = self._message(request, HTTPStatus.INTERNAL_SERVER_ERROR,
                                     "The dashboard failed to serve this page; "
                                     "its log has the details.")
        return response(start_response)

    # --- routing ----------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path.startswith("/static/"):
            return self._static(request.path[len("/static/"):])
        if request.path == "/signin":
            return self._signin(request)
        if not self.gate.allows(request):
            if request.path == "/events":
                return Response("", status=HTTPStatus.UNAUTHORIZED, content_type="text/plain")
            return redirect(request.url(link("/signin", next=request.path)))
        if request.method == "POST":
            return self._action(request)
        if request.method not in ("GET", "HEAD"):
            raise BadRequest("only GET and POST", HTTPStatus.METHOD_NOT_ALLOWED)
        if request.path == "/events":
            return self._events(request)
        page = PAGES.get(request.path)
        if page is None:
            raise BadRequest(f"no page at {request.path}", HTTPStatus.NOT_FOUND)
        template, read, nav, streams = page
        context = read(self.memflow, request)
        if context is None:
            raise BadRequest(f"no workflow with id {request.query.get('id')!r} in app "
                             f"{self.memflow.app_id!r}", HTTPStatus.NOT_FOUND)
        live_url = None
        if streams:
            live_url = request.url(link("/events", id=request.query.get("id")))
        return self._page(request, template, nav=nav, live=live_url, **context)

    def _action(self, request: Request) -> Response:
        action = actions.ACTIONS.get(request.path)
        if action is None:
            raise BadRequest(f"no action at {request.path}", HTTPStatus.NOT_FOUND)
        problem = csrf_problem(request)
        if problem is not None:
            return self._message(request, HTTPStatus.FORBIDDEN, problem)
        form = actions.form_of(request)
        back = (link("/workflow", id=form["id"]) if action.back == "workflow"
                else "/" + action.back)
        if form.get("confirmed") != "yes":
            question = action.question(form)
            return self._page(request, "confirm.html", nav="", live=None, action=action,
                              question=question, fields=form, target=request.path,
                              back=request.url(back))
        notice = actions.perform(action, self.memflow, form)
        _log.info("ui_action", action=request.path, id=form["id"], outcome=notice)
        separator = "&" if "?" in back else "?"
        return redirect(request.url(f"{back}{separator}notice={notice}"))

    def _events(self, request: Request) -> Response:
        workflow_id = request.query.get("id")
        stream = (live.workflow_stream(self.memflow, workflow_id) if workflow_id
                  else live.list_stream(self.memflow))
        response = Response(chunks(stream), content_type="text/event-stream")
        # Proxies (nginx) must pass each event on at once.
        response.headers.append(("X-Accel-Buffering", "no"))
        return response

    def _signin(self, request: Request) -> Response:
        source = request.form if request.method == "POST" else request.query
        next_path = source.get("next", "/")
        if not next_path.startswith("/") or next_path.startswith("//"):
            next_path = "/"  # only paths inside the dashboard: no open redirect
        if not self.gate.required:
            return redirect(request.url(next_path))
        problem = None
        if request.method == "POST":
            if self.gate.sign_in(request.form.get("token", "")):
                response = redirect(request.url(next_path))
                response.set_cookie(TOKEN_COOKIE, self.gate.cookie_value(),
                                    request.root or "/", secure=request.secure)
                return response
            problem = "That token is not the dashboard's."
        response = self._page(request, "signin.html", nav="", live=None, next=next_path,
                              problem=problem)
        if problem:
            response.status = HTTPStatus.UNAUTHORIZED
        return response

    # --- responses --------------------------------------------------------
    def _page(self, request: Request, template: str, **context: Any) -> Response:
        token, fresh = csrf_token(request)
        notice = views.NOTICES.get(request.query.get("notice", ""))
        html = render(template, request=request, url=request.url, csrf=token,
                      csrf_field=CSRF_FIELD, title=self.title, app_id=self.memflow.app_id,
                      notice=notice, **context)
        response = Response(html)
        if fresh:
            response.set_cookie(CSRF_COOKIE, token, request.root or "/",
                                secure=request.secure)
        return response

    def _message(self, request: Request, status: HTTPStatus, message: str) -> Response:
        try:
            response = self._page(request, "message.html", nav="", live=None,
                                  status=status, message=message)
        except Exception:  # the template itself failed: plain text, still no traceback
            _log.exception("ui_message_failed")
            response = Response(message, content_type="text/plain; charset=utf-8")
        response.status = status
        return response

    def _static(self, name: str) -> Response:
        kind = _STATIC.get(name)
        if kind is None:
            raise BadRequest("no such file", HTTPStatus.NOT_FOUND)
        body = resources.files("hotmesh_sync.ui").joinpath("static").joinpath(name).read_bytes()
        response = Response(body, content_type=kind)
        return response
