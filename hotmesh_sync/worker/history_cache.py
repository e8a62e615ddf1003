"""A worker's memory of the histories it has replayed recently.

Without it every activation reloads a run's whole history, which makes a
run of N steps cost O(N²) rows. With it an activation reads only the steps
recorded since its last visit (``seq > mark``). Entries are written only after
the activation's transaction commits, and keyed by the job's creation time
and attempt, so a retried or re-created workflow never sees a stale history.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..records import StepRecord

CacheKey = tuple[str, str, int, Any, int, int]


class HistoryCache:
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[CacheKey, tuple[dict[str, StepRecord], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> tuple[dict[str, StepRecord], int]:
        """A private copy of the cached history and its seq mark; ({}, 0) if none."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return {}, 0
            self._entries.move_to_end(key)
            return dict(entry[0]), entry[1]

    def put(self, key: CacheKey, history: dict[str, StepRecord], mark: int) -> None:
        with self._lock:
            self._entries[key] = (history, mark)
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
