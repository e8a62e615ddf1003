"""The little of WSGI the dashboard needs: a parsed request and a response.

No framework: the dashboard must run where only the standard library's
server is, and mount unchanged inside Django or Flask.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

#: A form larger than this is refused (413): actions carry a few fields and a
#: signal's JSON data, never uploads.
MAX_FORM_BYTES = 1 << 20


class BadRequest(Exception):
    """The request cannot be served as sent: answered with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    #: The path inside the dashboard, always starting with "/".
    path: str
    #: Where the dashboard is mounted ("" at the root, "/hotmesh" in Django).
    root: str
    query: dict[str, str]
    cookies: dict[str, str]
    headers: dict[str, str]
    environ: dict[str, Any]
    _form: dict[str, str] | None = None

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        cookies = SimpleCookie()
        try:
            cookies.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # a malformed cookie header from elsewhere on the host
            cookies = SimpleCookie()
        headers = {key[5:].replace("_", "-").lower(): str(value)
                   for key, value in environ.items() if key.startswith("HTTP_")}
        return cls(
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            path=_decoded_path(environ) or "/",
            root=_latin1_text(str(environ.get("SCRIPT_NAME", ""))).rstrip("/"),
            query=_single(parse_qs(str(environ.get("QUERY_STRING", "")))),
            cookies={key: morsel.value for key, morsel in cookies.items()},
            headers=headers,
            environ=environ,
        )

    @property
    def form(self) -> dict[str, str]:
        """The url-encoded body of a POST (read once)."""
        if self._form is None:
            kind = str(self.environ.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()
            if self.method == "POST" and kind not in ("", "application/x-www-form-urlencoded"):
                raise BadRequest(f"forms are sent url-encoded, not as {kind}",
                                 HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > MAX_FORM_BYTES:
                raise BadRequest("the form is too large", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            body = self.environ["wsgi.input"].read(length) if length > 0 else b""
            self._form = _single(parse_qs(body.decode("utf-8", "replace")))
        return self._form

    def url(self, path: str) -> str:
        """An absolute path inside the dashboard."""
        return self.root + path

    @property
    def secure(self) -> bool:
        return str(self.environ.get("wsgi.url_scheme", "http")) == "https"


def _decoded_path(environ: dict[str, Any]) -> str:
    return _latin1_text(str(environ.get("PATH_INFO", "")))


def _latin1_text(raw: str) -> str:
    # WSGI hands PATH_INFO and SCRIPT_NAME over as latin-1 text of the raw bytes.
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def _single(values: dict[str, list[str]]) -> dict[str, str]:
    return {key: items[-1] for key, items in values.items()}


@dataclass
class Response:
    body: Iterable[bytes] | bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def set_cookie(self, name: str, value: str, path: str, *, secure: bool,
                   max_age: int | None = None) -> None:
        # HttpOnly: no script reads it; SameSite=Strict: no other site sends it.
        parts = [f"{name}={value}", f"Path={path or '/'}", "HttpOnly", "SameSite=Strict"]
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if secure:
            parts.append("Secure")
        self.headers.append(("Set-Cookie", "; ".join(parts)))

    def __call__(self, start_response: Any) -> Iterable[bytes]:
        phrase = HTTPStatus(self.status).phrase
        headers = [("Content-Type", self.content_type),
                   # The pages hold user data: never cached, never framed elsewhere.
                   ("Cache-Control", "no-store"),
                   ("X-Content-Type-Options", "nosniff"),
                   ("X-Frame-Options", "DENY"),
                   ("Referrer-Policy", "same-origin"),
                   ("Content-Security-Policy",
                    "default-src 'self'; style-src 'self'; script-src 'self'; "
                    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"),
                   *self.headers]
        body = self.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):
            headers.append(("Content-Length", str(len(body))))
            start_response(f"{self.status} {phrase}", headers)
            return [body]
        start_response(f"{self.status} {phrase}", headers)
        return body


def redirect(location: str) -> Response:
    """303 See Other: after a POST, the browser GETs ``location``."""
    return Response(status=HTTPStatus.SEE_OTHER, headers=[("Location", location)])


def link(path: str, **params: str | int | None) -> str:
    """``path`` with a query string of the params that are set. Ids travel in
    the query, not the path: servers decode %2F in a path, and ids may hold '/'."""
    query = urlencode({key: value for key, value in params.items()
                       if value is not None and value != ""})
    return f"{path}?{query}" if query else path


def chunks(iterator: Iterator[str]) -> Iterator[bytes]:
    """``iterator``'s text as bytes; closing this closes it (a live stream's
    cleanup must run when the server closes the response, not at collection)."""
    try:
        for text in iterator:
            yield text.encode("utf-8")
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
