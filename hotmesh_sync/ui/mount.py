"""Calling the dashboard from inside another framework's view.

Django and Flask hand a view their own request; the dashboard wants a WSGI
environ in which SCRIPT_NAME is where it is mounted and PATH_INFO the rest,
and a body it can read. ``call`` builds that environ, runs the dashboard,
and returns what the framework's response needs.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]
    #: A live-update stream: the framework must stream it, not buffer it.
    streaming: bool


def call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any], mount: str,
         subpath: str, body: bytes) -> Answer:
    """Run ``app`` as if mounted at ``mount`` for the request ``subpath``."""
    inner = dict(environ)
    inner["SCRIPT_NAME"] = mount.rstrip("/")
    # The frameworks hand the path over decoded; WSGI carries it as the UTF-8 bytes
    # spelled in latin-1 (which the dashboard decodes again).
    inner["PATH_INFO"] = ("/" + subpath.lstrip("/")).encode("utf-8").decode("latin-1")
    inner["wsgi.input"] = io.BytesIO(body)
    inner["CONTENT_LENGTH"] = str(len(body))
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        started["status"], started["headers"] = int(status.split(" ", 1)[0]), headers
        return lambda data: None

    result = app(inner, start_response)
    headers: list[tuple[str, str]] = started["headers"]
    streaming = any(k.lower() == "content-type" and v.startswith("text/event-stream")
                    for k, v in headers)
    return Answer(started["status"], headers, result, streaming)
