"""Idle worker threads sleeping until there is work, and the wake-ups owed to them."""

from __future__ import annotations

import threading


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
