"""One LISTEN connection per MemFlow: wakes workers and result waiters.

Channel ``hotmesh_<schema>`` carries ``t:<task queue>`` when a task is queued,
``d:<workflow id>`` when a workflow ends, and ``e:<workflow id>`` when a
watched entity changes (``handle.wait_until``); ``s:`` when a schedule
changes (workers' firing threads look again). After a (re)connect every
subscriber is woken once, since notifications sent while disconnected are
lost; subscribers re-check the database, so a lost notification only delays.

LISTEN does not work through PgBouncer in transaction pooling mode (the
session that listens is not the client's). There the listener LISTENs on a
direct connection (``HOTMESH_LISTEN_DSN``) or, without one, polls: it wakes
every subscriber every ``poll_seconds`` and each re-checks the database.
"""

from __future__ import annotations

import os
import select
import threading
from collections import defaultdict
from collections.abc import Callable

import psycopg

from ..log import get_logger
from ..settings import Settings

_log = get_logger("hotmesh_sync.listener")


def listener_for(dsn: str, schema: str, settings: Settings) -> Listener:
    """The listener an app with these settings gets: LISTEN on
    ``settings.listen_dsn``, else on ``dsn`` unless that leads to PgBouncer,
    where it polls."""
    listen = settings.listen_dsn or (None if settings.pgbouncer else dsn)
    return Listener(listen, schema, poll_seconds=settings.poll_seconds)


class Listener:
    def __init__(self, dsn: str | None, schema: str,
                 poll_seconds: float = Settings.poll_seconds) -> None:
        #: Where to LISTEN; None: nowhere, poll instead.
        self._dsn = dsn
        self._poll_seconds = poll_seconds
        self._channel = "hotmesh_" + schema
        self._lock = threading.Lock()
        self._done: dict[str, set[threading.Event]] = defaultdict(set)
        self._entities: dict[str, set[threading.Event]] = defaultdict(set)
        self._queues: dict[str, set[Callable[[], None]]] = defaultdict(set)
        self._schedules: set[Callable[[], None]] = set()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        # Writing to this pipe wakes the listening thread at once on close().
        self._wake_r, self._wake_w = os.pipe()

    # --- subscriptions -------------------------------------------------
    def watch_done(self, workflow_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._done[workflow_id].add(event)
        self.ensure_started()
        return event

    def unwatch_done(self, workflow_id: str, event: threading.Event) -> None:
        with self._lock:
            events = self._done.get(workflow_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._done[workflow_id]

    def watch_entity(self, workflow_id: str) -> threading.Event:
        """An event set when the entity of ``workflow_id`` changes (while a
        watcher row for it exists) or the connection was re-established."""
        event = threading.Event()
        with self._lock:
            self._entities[workflow_id].add(event)
        self.ensure_started()
        return event

    def unwatch_entity(self, workflow_id: str, event: threading.Event) -> None:
        with self._lock:
            events = self._entities.get(workflow_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._entities[workflow_id]

    def watch_queue(self, task_queue: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._queues[task_queue].add(callback)
        self.ensure_started()

    def unwatch_queue(self, task_queue: str, callback: Callable[[], None]) -> None:
        with self._lock:
            self._queues[task_queue].discard(callback)

    def watch_schedules(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a schedule changes (workers' firing threads)."""
        with self._lock:
            self._schedules.add(callback)
        self.ensure_started()

    def unwatch_schedules(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._schedules.discard(callback)

    # --- lifecycle -----------------------------------------------------
    def ensure_started(self, wait: float = 5.0) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="hotmesh-listener",
                                                daemon=True)
                self._thread.start()
        self._ready.wait(wait)

    def close(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        thread = self._thread
        if thread is not None:
            thread.join(5.0)
        os.close(self._wake_r)
        os.close(self._wake_w)

    @property
    def polling(self) -> bool:
        """True when subscribers are woken by a timer, not by notifications."""
        return self._dsn is None

    def _loop(self) -> None:
        if self._dsn is None:
            self._poll()
            return
        self._listen(self._dsn)

    def _poll(self) -> None:
        self._ready.set()
        _log.debug("listener_polling", every=self._poll_seconds)
        while not self._stop.wait(self._poll_seconds):
            try:
                self._wake_everyone()
            except Exception as exc:  # a subscriber's callback must not end the polling
                _log.warning("listener_wake_failed", error=repr(exc))

    def _listen(self, dsn: str) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(
                        psycopg.sql.Identifier(self._channel)))
                    self._ready.set()
                    self._wake_everyone()
                    backoff = 0.1
                    self._pump(conn)
            except Exception as exc:  # keep listening whatever happens
                if self._stop.is_set():
                    return
                _log.warning("listener_reconnecting", error=repr(exc), backoff=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _pump(self, conn: psycopg.Connection[object]) -> None:
        pgconn = conn.pgconn
        while not self._stop.is_set():
            readable, _, _ = select.select([pgconn.socket, self._wake_r], [], [], 5.0)
            if not readable or self._stop.is_set():
                continue
            pgconn.consume_input()
            while (note := pgconn.notifies()) is not None:
                self._dispatch(note.extra.decode("utf-8", "replace"))
            if pgconn.status != psycopg.pq.ConnStatus.OK:
                raise psycopg.OperationalError("listener connection lost")

    def _dispatch(self, payload: str) -> None:
        kind, _, value = payload.partition(":")
        with self._lock:
            if kind == "d":
                targets: list[Callable[[], None]] = [e.set for e in self._done.get(value, ())]
            elif kind == "e":
                targets = [e.set for e in self._entities.get(value, ())]
            elif kind == "s":
                targets = list(self._schedules)
            else:
                targets = list(self._queues.get(value, ()))
        for target in targets:
            target()

    def _wake_everyone(self) -> None:
        with self._lock:
            targets = [e.set for events in self._done.values() for e in events]
            targets += [e.set for events in self._entities.values() for e in events]
            targets += [cb for callbacks in self._queues.values() for cb in callbacks]
            targets += list(self._schedules)
        for target in targets:
            target()
