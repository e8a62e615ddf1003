"""Who may look, and proof that an action came from the dashboard's own page.

- **Token.** Bound to anything but loopback, the dashboard needs a token
  (``--token`` / ``HOTMESH_UI_TOKEN``). A browser presents it once, on the
  sign-in form, and then carries a cookie holding a keyed hash of it; a
  script may send ``Authorization: Bearer <token>`` instead.
- **CSRF.** Every action is a POST whose form repeats a random value the
  dashboard set in a SameSite=Strict cookie (the double-submit pattern). A
  page of another site can neither read that cookie nor make the browser
  send it, so it cannot forge the field. A POST whose Origin header names
  another host is refused before that check.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from urllib.parse import urlsplit

from .http import Request

CSRF_COOKIE = "hotmesh_csrf"
CSRF_FIELD = "csrf_token"
TOKEN_COOKIE = "hotmesh_ui"
#: Seconds a wrong token on the sign-in form costs.
FAILED_SIGN_IN_DELAY = 1.0


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the dashboard on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenGate:
    """Checks a request's credentials against the configured token (if any)."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None
        # The cookie holds a keyed hash, never the token itself; a per-process
        # key means a restart signs everyone out, which is acceptable here.
        self._key = secrets.token_bytes(32)
        self._failures = threading.Lock()

    @property
    def required(self) -> bool:
        return self.token is not None

    def cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self._key, self.token.encode(), hashlib.sha256).hexdigest()

    def accepts_token(self, offered: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            offered.encode(), self.token.encode())

    def sign_in(self, offered: str) -> bool:
        """Check a token typed into the sign-in form. A wrong one costs a
        second, one at a time across all threads: guessing stays slow."""
        if self.accepts_token(offered):
            return True
        with self._failures:
            time.sleep(FAILED_SIGN_IN_DELAY)
        return False

    def allows(self, request: Request) -> bool:
        if self.token is None:
            return True
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer ") and self.accepts_token(bearer[7:].strip()):
            return True
        cookie = request.cookies.get(TOKEN_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie, self.cookie_value())


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF value, and whether it is new (then set the cookie)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing, False
    return secrets.token_urlsafe(32), True


def csrf_problem(request: Request) -> str | None:
    """Why this POST is refused, or None when its CSRF proof holds."""
    origin = request.headers.get("origin")
    # Behind a proxy that rewrites Host, the browser's host is the forwarded one.
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    if origin and origin != "null" and hosts and urlsplit(origin).netloc not in hosts:
        return "the request came from another site"
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.form.get(CSRF_FIELD, "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        return "the form's security token is missing or stale: reload the page and try again"
    return None
