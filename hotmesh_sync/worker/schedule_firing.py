"""The thread by which every worker takes part in firing the app's schedules.

Each look fires, one short transaction per schedule, every schedule that is
due (``schedule_ticks.fire_due``) and every buffered tick whose workflow
has ended (``fire_buffered``); then the thread sleeps until the soonest
``next_run_at``, at most ``MAX_SLEEP`` seconds. Changing a schedule through
the library sends a notification (``s:``) that ends the sleep at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from datetime import datetime

from ..log import get_logger
from ..records import describe_error
from ..store.listener import Listener
from ..store.schedules import (
    ScheduleRow,
    database_now,
    lock_buffered_schedule,
    lock_due_schedule,
    schedule_wait,
)
from ..store.store import Store, Tx
from ..store.transient import is_transient
from .schedule_ticks import Fired, fire_buffered, fire_due

_log = get_logger("hotmesh_sync.schedules")

#: The longest sleep between looks: a schedule changed without a notification
#: (by SQL, or one lost while the listener reconnected) is seen this late at most.
MAX_SLEEP = 5.0
#: How often to look while a buffered tick waits for its workflow to end, or
#: while a due schedule is held by another worker or set aside by this one.
SHORT_SLEEP = 1.0
#: The pause after a look failed (the database is away, say).
ERROR_SLEEP = 5.0
#: How long this worker leaves alone a schedule it failed to fire.
HOLD_SECONDS = 60.0
#: Schedules fired in one look at most, of each kind, before sleeping again.
MAX_PER_LOOK = 1000
#: The sleep is cut into slices this long, to see ``stopping`` soon.
_SLICE = 0.25

#: Locks one schedule to fire (not one of those given: set aside here).
Lock = Callable[[Tx, list[str]], "ScheduleRow | None"]
#: Fires a locked schedule at the database's time.
Fire = Callable[[Tx, ScheduleRow, datetime], Fired]


class ScheduleFiring:
    """One worker's part in firing the schedules of its app."""

    def __init__(self, store: Store, listener: Listener, worker_id: str) -> None:
        self._store = store
        self._listener = listener
        self._log = _log.bind(worker_id=worker_id)
        self._wake = threading.Event()
        #: Schedules whose firing failed here: id -> monotonic time to try again.
        self._held: dict[str, float] = {}

    def run(self, stopping: threading.Event) -> None:
        """Fire due schedules until ``stopping`` is set; never raises."""
        wake = self._wake.set
        try:
            self._listener.watch_schedules(wake)
        except Exception as exc:  # without notifications, MAX_SLEEP still bounds the delay
            self._log_error("schedule_listen_failed", exc)
        try:
            while not stopping.is_set():
                self._wake.clear()
                try:
                    wait = self.look(stopping)
                except Exception as exc:  # the thread must outlive any one failure
                    self._log_error("schedule_firing_failed", exc)
                    wait = ERROR_SLEEP
                self._sleep(wait, stopping)
        finally:
            with contextlib.suppress(Exception):
                self._listener.unwatch_schedules(wake)

    def look(self, stopping: threading.Event) -> float:
        """Fire what is due now; the seconds until it is worth looking again."""
        # One cheap query first: an idle app costs a single statement per look.
        due_in, buffered = self._store.run(schedule_wait)
        due = due_in is not None and due_in <= 0
        if due:
            self._fire_all(lock_due_schedule, fire_due, stopping)
        if buffered:
            self._fire_all(lock_buffered_schedule, fire_buffered, stopping)
        if due or buffered:
            due_in, buffered = self._store.run(schedule_wait)
        longest = SHORT_SLEEP if buffered else MAX_SLEEP
        if due_in is None:
            return longest
        if due_in <= 0:  # due, but another worker fires it or this one set it aside
            return SHORT_SLEEP
        return min(due_in, longest)

    def _fire_all(self, lock: Lock, fire: Fire, stopping: threading.Event) -> None:
        for _ in range(MAX_PER_LOOK):
            if stopping.is_set() or not self._fire_one(lock, fire):
                return

    def _fire_one(self, lock: Lock, fire: Fire) -> bool:
        """Fire one schedule that ``lock`` finds; False when there was none."""
        taken: list[str] = []

        def work(tx: Tx) -> Fired | None:
            taken.clear()
            row = lock(tx, self._held_ids())
            if row is None:
                return None
            taken.append(row.id)
            return fire(tx, row, database_now(tx))

        try:
            fired = self._store.run(work)
        except Exception as exc:
            if not taken or is_transient(exc):
                raise
            # Something about this schedule fails every time (its workflow's
            # arguments, say): leave it for a while rather than retry at once.
            self._held[taken[0]] = time.monotonic() + HOLD_SECONDS
            self._log_error("schedule_fire_failed", exc, schedule_id=taken[0],
                            retry_in=HOLD_SECONDS)
            return True
        if fired is None:
            return False
        if fired.started or fired.skipped or fired.cancelled or fired.buffered:
            self._log.info("schedule_fired", schedule_id=fired.schedule_id,
                           started=fired.started, skipped=fired.skipped,
                           cancelled=fired.cancelled, buffered=fired.buffered)
        return True

    def _held_ids(self) -> list[str]:
        now = time.monotonic()
        for schedule_id in [s for s, until in self._held.items() if until <= now]:
            del self._held[schedule_id]
        return list(self._held)

    def _sleep(self, seconds: float, stopping: threading.Event) -> None:
        """Sleep up to ``seconds``, less when woken or stopping."""
        deadline = time.monotonic() + seconds
        while not stopping.is_set() and not self._wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(min(remaining, _SLICE))

    def _log_error(self, event: str, exc: BaseException, **fields: object) -> None:
        with contextlib.suppress(Exception):  # nor may a broken log sink stop the thread
            self._log.error(event, error=describe_error(exc), **fields)
