"""The web dashboard: a WSGI application over one app's tables.

``Dashboard(memflow)`` is the application; ``hotmesh-sync ui`` serves it,
``hotmesh_sync.contrib.django.urls`` and ``hotmesh_sync.contrib.flask
.dashboard_blueprint`` mount it.
"""

from __future__ import annotations

from .app import Dashboard
from .serve import make_server, serve

__all__ = ["Dashboard", "make_server", "serve"]
