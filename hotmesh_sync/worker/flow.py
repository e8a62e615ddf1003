"""Whether this worker's queue has flow control (concurrency or rate limits).

The limits themselves are enforced by the claim query under the queue's row
lock; this only decides whether a worker tries the limited claim at all, so
it may be a second out of date without ever letting a limit be exceeded.
"""

from __future__ import annotations

import threading
import time

from ..store.store import Store

#: How long a worker trusts what it last read about its queue's limits.
CHECK_EVERY = 1.0
#: How long an idle thread waits before trying a queue held back by its
#: concurrency limit again: a slot freed in this process wakes a thread at
#: once; one freed in another process sends no notification.
BLOCKED_RETRY = 0.5


class FlowCheck:
    """A cached answer to "is this queue limited?", read at most once a second."""

    def __init__(self, store: Store, task_queue: str) -> None:
        self._store = store
        self._queue = task_queue
        self._lock = threading.Lock()
        self._limited = False
        self._read_at = float("-inf")

    def refresh(self) -> bool:
        """Read the answer now (when the worker starts, before its threads)."""
        found = self._store.run(lambda tx: tx.queue_limited(self._queue))
        with self._lock:
            self._limited, self._read_at = found, time.monotonic()
        return found

    def cached(self) -> bool:
        """The last answer, without asking the database (inside a transaction)."""
        with self._lock:
            return self._limited

    def limited(self) -> bool:
        with self._lock:
            if time.monotonic() - self._read_at < CHECK_EVERY:
                return self._limited
            self._read_at = time.monotonic()  # one reader; the others use the last answer
        found = self._store.run(lambda tx: tx.queue_limited(self._queue))
        with self._lock:
            self._limited = found
        return found
