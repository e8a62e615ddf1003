"""The project's MemFlow, created on first use rather than at import.

Modules import ``memflow`` at their top, long before Django has its settings
or the database may be reachable, so the name stands for a proxy that builds
the real MemFlow the first time one of its attributes is used.
"""

from __future__ import annotations

from typing import Any

from ...serving import MemFlowHolder


class LazyMemFlow(MemFlowHolder):
    """Stands in for the MemFlow that ``factory`` makes, made on first attribute access.

    One MemFlow per process (see ``MemFlowHolder``): a process forked after
    first use (a pre-forking server) makes its own instead of sharing the
    parent's pooled connections.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return f"<LazyMemFlow {'connected' if self.created else 'not connected yet'}>"
