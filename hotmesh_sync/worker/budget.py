"""Counting tasks for cron-style runs (``max_tasks``).

A task is one claim from the queue, finished with any activity that step
handed straight to this worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class TaskBudget:
    """At most ``limit`` tasks (None: no limit), even with threads racing."""

    def __init__(self, limit: int | None, on_task: Callable[[int], None] | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_tasks must be at least 1")
        self.limit = limit
        self._on_task = on_task
        self._lock = threading.Lock()
        self._taken = 0  # finished plus being claimed right now
        self._done = 0
        self._in_flight = 0  # reserved and not settled yet: claiming or working

    @property
    def done(self) -> int:
        with self._lock:
            return self._done

    def reserve(self) -> bool:
        """Take a slot before claiming; False when the budget is spent. A thread
        reserves first, so threads racing for the last slots never overshoot."""
        with self._lock:
            if self.limit is not None and self._taken >= self.limit:
                return False
            self._taken += 1
            self._in_flight += 1
            return True

    @property
    def in_flight(self) -> int:
        """Claims being made or worked on right now (``--until-empty``)."""
        with self._lock:
            return self._in_flight

    def settle(self, did_work: bool, refills: int = 0) -> None:
        """Count the reserved slot as a finished task, or give it back; and
        ``refills`` more: tasks a group commit claimed for the same thread
        when its workflow left it nothing to run (never within a limit)."""
        with self._lock:
            self._in_flight -= 1
            if did_work:
                self._done += 1
            else:
                self._taken -= 1
            self._done += refills
            self._taken += refills
            count = self._done
        if did_work and self._on_task is not None:
            self._on_task(count)
