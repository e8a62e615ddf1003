"""The context of one running activity attempt (``hotmesh_sync.activity``),
backed by the attempt's task row."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from ..activity import ActivityInfo
from ..jsonvalue import normalized
from ..store.store import TERMINAL, Beat, Store, jsonb
from .activation import LeasedActivity

#: The most often a heartbeat reaches the database: an activity may call
#: ``heartbeat`` in a tight loop, and each write is a transaction.
MIN_BEAT_INTERVAL = 1.0

#: Marks "no details waiting to be written" (None is a value a beat may carry).
_NOTHING = object()


class StoredAttempt:
    """``activity.heartbeat`` and friends for the leased task ``task``.

    Heartbeats are written at most every ``MIN_BEAT_INTERVAL`` seconds (or a
    tenth of the lease, if shorter); the details of the skipped ones are kept
    and written by the next beat that goes through, or by ``flush`` when the
    attempt ends, so a retry resumes from the latest progress.
    """

    def __init__(self, store: Store, task: LeasedActivity, worker_id: str,
                 lease: float) -> None:
        payload = task.payload
        timeout = payload.get("timeout")
        deadline = (None if timeout is None
                    else datetime.now(timezone.utc) + timedelta(seconds=float(timeout)))
        self._info = ActivityInfo(
            workflow_id=task.job_id, activity_name=str(payload["name"]),
            attempt=int(payload.get("attempt", 1)), task_queue=str(payload["task_queue"]),
            step=task.step_key, deadline=deadline, run_id=task.run_id)
        self._details = payload.get("heartbeat")
        self._store = store
        self._task = task
        self._worker_id = worker_id
        self._lease = lease
        self._interval = min(MIN_BEAT_INTERVAL, lease / 10)
        self._last_beat = float("-inf")
        self._last_reason: str | None = None
        self._unwritten: Any = _NOTHING
        self._lock = threading.Lock()  # an activity may beat from its own threads

    @property
    def info(self) -> ActivityInfo:
        return self._info

    @property
    def details(self) -> Any:
        return self._details

    def beat(self, details: Any) -> str | None:
        # Checked now, so bad details fail at the call that passed them.
        value = None if details is None else jsonb(
            normalized(details, "heartbeat details"), "heartbeat details")
        with self._lock:
            if value is not None:
                self._unwritten = value
            if time.monotonic() - self._last_beat < self._interval:
                return self._last_reason
            return self._write()

    def flush(self) -> None:
        """Write details a throttled beat kept back (the attempt is ending)."""
        with self._lock:
            if self._unwritten is not _NOTHING:
                self._write()

    def _write(self) -> str | None:
        details, self._unwritten = self._unwritten, _NOTHING
        self._last_reason = self._look(None if details is _NOTHING else details, extend=True)
        self._last_beat = time.monotonic()
        return self._last_reason

    def cancelled(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._last_beat < self._interval:
                return self._last_reason  # asked in a loop: the last look is recent
            self._last_reason = self._look(None, extend=False)
            self._last_beat = time.monotonic()
            return self._last_reason

    def _look(self, details: Any, extend: bool) -> str | None:
        task = self._task
        beat = self._store.run(lambda tx: tx.heartbeat(
            task.task_id, task.job_id, self._worker_id, self._lease, details, extend))
        return stop_reason(beat, task.job_id)


def stop_reason(beat: Beat, job_id: str) -> str | None:
    """Why an attempt should stop, from what its heartbeat found; None: go on."""
    if beat.status is None:
        return f"workflow {job_id!r} no longer exists"
    cancelled = beat.cancel_state is not None and beat.cancel_error is not None
    if cancelled and (beat.cancel_state == "requested" or not beat.alive
                      or beat.status == "interrupted"):
        return str((beat.cancel_error or {}).get("message") or "cancelled")
    if beat.status in TERMINAL:
        return f"workflow {job_id!r} has ended ({beat.status})"
    if not beat.alive:
        return (f"workflow {job_id!r} no longer waits for this activity "
                "(it was cancelled, or another worker holds the task)")
    return None
