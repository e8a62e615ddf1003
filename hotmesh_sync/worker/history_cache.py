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
    """Entries by run (job id, run id); each keeps the full key it was written
    under, and a lookup under another key (a retried, resumed or re-created
    workflow) finds nothing."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, str],
                                   tuple[CacheKey, dict[str, StepRecord], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> tuple[dict[str, StepRecord], int]:
        """A private copy of the cached history and its seq mark; ({}, 0) if none."""
        found = self.peek(key[0], key[1])
        if found is None or found[0] != key:
            return {}, 0
        return found[1], found[2]

    def peek(self, job_id: str, run_id: str) -> tuple[CacheKey, dict[str, StepRecord], int] | None:
        """What is cached for a run, under whichever key (a private copy of the
        history): a group commit reads its mark before the run is locked, and
        checks the key once it is."""
        with self._lock:
            entry = self._entries.get((job_id, run_id))
            if entry is None:
                return None
            self._entries.move_to_end((job_id, run_id))
            return entry[0], dict(entry[1]), entry[2]

    def put(self, key: CacheKey, history: dict[str, StepRecord], mark: int) -> None:
        with self._lock:
            self._entries[(key[0], key[1])] = (key, history, mark)
            self._entries.move_to_end((key[0], key[1]))
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
