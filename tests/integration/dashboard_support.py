"""A tiny WSGI client for the dashboard: real requests through the real app,
no server; cookies kept like a browser keeps them."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit
from wsgiref.util import setup_testing_defaults


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: str

    def field(self, name: str) -> str:
        """The value of a hidden input of the page."""
        match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', self.body)
        assert match is not None, f"no field {name!r} on the page"
        return match.group(1)


@dataclass
class Client:
    app: Callable[..., Iterable[bytes]]
    jar: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def get(self, url: str) -> Reply:
        return self.request("GET", url)

    def post(self, url: str, form: dict[str, str], **headers: str) -> Reply:
        return self.request("POST", url, urlencode(form).encode(), headers)

    def request(self, method: str, url: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> Reply:
        parts = urlsplit(url)
        environ: dict[str, Any] = {}
        setup_testing_defaults(environ)
        environ.update(REQUEST_METHOD=method, PATH_INFO=parts.path,
                       QUERY_STRING=parts.query, CONTENT_LENGTH=str(len(body)),
                       CONTENT_TYPE="application/x-www-form-urlencoded",
                       HTTP_HOST="127.0.0.1:8765")
        environ["wsgi.input"] = io.BytesIO(body)
        if self.jar:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        for name, value in {**self.headers, **(headers or {})}.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = response_headers
            return lambda data: None

        chunks = self.app(environ, start_response)
        text = b"".join(chunks).decode("utf-8")
        cookies = [v for k, v in started["headers"] if k.lower() == "set-cookie"]
        for raw in cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for key, morsel in jar.items():
                self.jar[key] = morsel.value
        return Reply(started["status"],
                     {k.lower(): v for k, v in started["headers"]}, cookies, text)
