"""Serving the dashboard: the standard library's threaded server, or waitress.

Each open page holds one connection for its live updates, so the server
must run requests in threads; wsgiref's own server does not, hence the
ThreadingMixIn. Its request log goes through ``logging`` like every event.
"""

from __future__ import annotations

import os
import socket
import socketserver
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _make

from ..errors import ConfigurationError
from ..log import get_logger
from .security import is_loopback

_log = get_logger("hotmesh_sync.ui")
TOKEN_ENV = "HOTMESH_UI_TOKEN"


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # an open live stream never holds up shutdown
    allow_reuse_address = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        _log.debug("ui_http", client=self.client_address[0], line=format % args)


def check_binding(host: str, token: str | None) -> str | None:
    """The token to require: ``token``, else $HOTMESH_UI_TOKEN. Bound to
    anything but loopback without one, ConfigurationError: the dashboard can
    signal and interrupt workflows, so it is never open to a network."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise ConfigurationError(
            f"the dashboard binds to {host}, which is reachable from other machines: "
            f"give it a token with --token or ${TOKEN_ENV} (or bind to 127.0.0.1)")
    return token


def make_server(app: Callable[..., Any], host: str = "127.0.0.1",
                port: int = 8765) -> WSGIServer:
    """A threaded standard-library server for ``app`` (port 0: any free port)."""
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    return _make(host.strip("[]"), port, app, server_class=server_class,
                 handler_class=_Handler)


def serve(app: Callable[..., Any], host: str = "127.0.0.1", port: int = 8765,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` until interrupted: waitress when installed, else the
    standard library's server. ``ready`` gets the address once it listens."""
    try:
        import waitress
    except ImportError:
        waitress = None
    if waitress is not None:
        # send_bytes=1: each live-update event leaves at once, not when 18 kB gathered.
        server = waitress.create_server(app, host=host, port=port, threads=16, send_bytes=1)
        if ready is not None:
            ready(f"http://{host}:{server.effective_port}/")
        server.run()
        return
    with make_server(app, host, port) as server:
        if ready is not None:
            ready(f"http://{host}:{server.server_port}/")
        server.serve_forever()
