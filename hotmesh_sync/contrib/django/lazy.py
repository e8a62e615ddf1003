"""The project's MemFlow, created on first use rather than at import.

Modules import ``memflow`` at their top, long before Django has its settings
or the database may be reachable, so the name stands for a proxy that builds
the real MemFlow the first time one of its attributes is used.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from ...memflow import MemFlow


class LazyMemFlow:
    """Stands in for the MemFlow that ``factory`` makes, made on first attribute access.

    One MemFlow per process: a process forked after first use (a pre-forking
    server) makes its own instead of sharing the parent's pooled connections.
    """

    def __init__(self, factory: Callable[[], MemFlow]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._instance: MemFlow | None = None
        self._pid = 0
        atexit.register(self.close)

    def get(self) -> MemFlow:
        with self._lock:
            if self._instance is None or self._pid != os.getpid():
                # After a fork the parent's pool is not ours to close: just drop it.
                self._instance = self._factory()
                self._pid = os.getpid()
            return self._instance

    @property
    def created(self) -> bool:
        """Whether this process has made its MemFlow yet (it has connected)."""
        return self._instance is not None and self._pid == os.getpid()

    def close(self) -> None:
        """Close the MemFlow if this process made one; the next use makes a new one."""
        with self._lock:
            instance, self._instance = self._instance, None
            if instance is not None and self._pid == os.getpid():
                instance.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return f"<LazyMemFlow {'connected' if self.created else 'not connected yet'}>"
