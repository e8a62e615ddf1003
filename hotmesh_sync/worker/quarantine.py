"""The activities a worker is running, and the quarantine of recovered ones.

A recovered activity (its last holder died holding it) may be what kills
workers: it runs alone, so if it kills this worker too it takes no innocent
activity with it, and only its own claim count grows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Protocol


class Running(Protocol):
    """A leased activity, as far as the quarantine cares."""

    @property
    def task_id(self) -> int: ...

    @property
    def recovering(self) -> bool: ...


class Quarantine:
    """In-flight activities, and whether a recovered one holds the worker alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[int, float] = {}
        self._held = threading.Event()
        self._owner: int | None = None

    @property
    def held(self) -> bool:
        """True while a recovered activity runs alone on this worker."""
        return self._held.is_set()

    def idle(self) -> bool:
        """Nothing running and no quarantine: a recovered activity may be claimed."""
        with self._lock:
            return not self._inflight and not self._held.is_set()

    def running_ids(self) -> list[int]:
        with self._lock:
            return list(self._inflight)

    def enter(self) -> bool:
        """Take the worker for one recovered activity; False while others run.

        A retried claim transaction of the thread that holds it takes it again.
        """
        me = threading.get_ident()
        with self._lock:
            if self._owner == me:
                return True
            if self._inflight or self._held.is_set():
                return False
            self._held.set()
            self._owner = me
            return True

    def leave_unused(self, leased: Iterable[Running]) -> None:
        """Give the quarantine back when this thread's claim did not end with a
        recovered activity to run (its transaction failed or took another path)."""
        with self._lock:
            if self._owner == threading.get_ident() and not any(t.recovering for t in leased):
                self._release()

    def started(self, task: Running) -> None:
        with self._lock:
            self._inflight[task.task_id] = time.monotonic()

    def finished(self, task: Running) -> None:
        with self._lock:
            self._inflight.pop(task.task_id, None)
            if task.recovering:
                self._release()

    def _release(self) -> None:
        self._owner = None
        self._held.clear()
