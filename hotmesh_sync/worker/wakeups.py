"""Idle worker threads sleeping until there is work, and the wake-ups owed to them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..log import get_logger

_log = get_logger("hotmesh_sync.worker")

#: Seconds a worker goes without a thread asleep before it says so: tasks
#: queued on a busy worker's queue then notify nobody (notify_task).
UNMARK_AFTER = 0.5


class WakeUps:
    """Wake-ups are owed only to threads that sleep (or one about to): a busy
    thread claims again anyway, and each extra wake-up would cost an empty claim."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owed = 0
        self._sleeping = 0

    def notify(self) -> None:
        """Work arrived (a NOTIFY for the queue): wake one sleeper."""
        with self._cond:
            self._owed = min(self._owed + 1, max(self._sleeping, 1))
            self._cond.notify()

    def one_more(self) -> None:
        """One NOTIFY may stand for many tasks: after a claim that saw more
        ready, wake one more sleeping thread so a burst is picked up by all."""
        with self._cond:
            if self._sleeping > self._owed:
                self._owed += 1
                self._cond.notify()

    def sleep(self, seconds: float, stopping: threading.Event) -> None:
        """Sleep up to ``seconds`` unless a wake-up is owed or the worker stops."""
        with self._cond:
            if self._owed == 0 and not stopping.is_set():
                self._sleeping += 1
                try:
                    self._cond.wait(seconds)
                finally:
                    self._sleeping -= 1
            if self._owed > 0:
                self._owed -= 1

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()


class SleepMark:
    """Whether a worker has a thread asleep on its queue, as the database
    knows it (the ``sleepers`` table): tasks queued there notify only while
    it does.

    A thread that finds nothing to do marks the worker before it sleeps,
    then looks for work once more (a task queued before the mark committed
    notified nobody, and the mark waits for such inserts to commit). A busy
    worker takes its mark back once no thread has slept for ``UNMARK_AFTER``
    seconds. The two database writes never cross: one at a time.
    """

    def __init__(self, mark: Callable[[], None], unmark: Callable[[], None],
                 unmark_after: float = UNMARK_AFTER) -> None:
        self._mark = mark
        self._unmark = unmark
        self._unmark_after = unmark_after
        self._writing = threading.Lock()
        self._state = threading.Lock()
        self._marked = False
        self._idle = 0
        self._busy_since = time.monotonic()

    def going_idle(self) -> bool:
        """This thread found nothing to do; True when it has just marked the
        worker (it must look for work once more before it sleeps). Call
        ``busy`` when it goes back to work."""
        with self._state:
            self._idle += 1
        with self._writing:
            if self._marked:
                return False
            try:
                self._mark()
            except Exception as exc:  # it sleeps unmarked: the safety poll wakes it
                _log.warning("sleep_mark_failed", error=repr(exc))
                return False
            self._marked = True
            return True

    def busy(self) -> None:
        with self._state:
            self._idle -= 1
            if self._idle == 0:
                self._busy_since = time.monotonic()

    def _may_unmark(self) -> bool:
        return (self._marked and not self._idle
                and time.monotonic() - self._busy_since >= self._unmark_after)

    def maybe_unmark(self) -> None:
        """A busy thread's look: take the mark back when no thread has slept
        for a while (never while one is about to)."""
        if not self._may_unmark() or not self._writing.acquire(blocking=False):
            return
        try:
            with self._state:
                if not self._may_unmark():
                    return
                self._marked = False  # a thread going idle from now marks again
            try:
                self._unmark()
            except Exception as exc:  # the row stays: tasks notify for nothing
                _log.warning("sleep_unmark_failed", error=repr(exc))
        finally:
            self._writing.release()
