"""Live updates: server-sent events pushed when PostgreSQL announces a change.

The stream listens through the MemFlow's one LISTEN connection (no polling):
a workflow page wakes when that workflow ends, when its entity changes (a
watcher row asks the database to announce it), or when a task is queued on
its queue, which is how every step shows. The list wakes on tasks of any
queue it can see and on the end of any workflow it shows. Each wake sends
one ``change`` event at most every ``MIN_INTERVAL`` seconds; the page then
fetches itself again and swaps the parts marked live.

A stream ends after ``MAX_AGE`` seconds and the browser reconnects, so a
server thread is never held by a tab left open for days.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..log import get_logger
from ..store import dashboard as reads
from ..worker.activation import WORKER_STALE

if TYPE_CHECKING:
    from ..memflow import MemFlow

MIN_INTERVAL = 0.5
TRAILING = 1.0
KEEPALIVE = 15.0
MAX_AGE = 300.0
_log = get_logger("hotmesh_sync.ui")


class _Subscription:
    """What one stream watches, folded into one event, and how to stop."""

    def __init__(self, mf: MemFlow) -> None:
        self.mf = mf
        self.changed = threading.Event()
        self._closed = threading.Event()
        self._undo: list[Callable[[], None]] = []
        self._relayed: list[threading.Event] = []

    def queue(self, name: str) -> None:
        callback = self.changed.set
        self.mf.listener.watch_queue(name, callback)
        self._undo.append(lambda: self.mf.listener.unwatch_queue(name, callback))

    def done(self, workflow_id: str) -> None:
        event = self.mf.listener.watch_done(workflow_id)
        self._undo.append(lambda: self.mf.listener.unwatch_done(workflow_id, event))
        self._relay(event)

    def entity(self, workflow_id: str) -> None:
        event = self.mf.listener.watch_entity(workflow_id)
        watcher = "ui-" + uuid.uuid4().hex
        # The watcher row makes the database announce this entity's changes.
        self.mf.store.run(lambda tx: tx.add_watcher(workflow_id, watcher))
        self._undo.append(lambda: self.mf.listener.unwatch_entity(workflow_id, event))
        self._undo.append(lambda: self.mf.store.run(
            lambda tx: tx.drop_watcher(workflow_id, watcher)))
        self._relay(event)

    def _relay(self, event: threading.Event) -> None:
        """The listener sets an event of its own per subscription: a thread
        passes each on to ``changed`` (close() sets it to end the thread)."""
        def relay() -> None:
            while event.wait() and not self._closed.is_set():
                event.clear()
                self.changed.set()

        self._relayed.append(event)
        threading.Thread(target=relay, daemon=True, name="hotmesh-ui-relay").start()

    def close(self) -> None:
        self._closed.set()
        for event in self._relayed:
            event.set()
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception:  # the database may be gone; the stream ends anyway
                _log.debug("ui_unwatch_failed", exc_info=True)


def workflow_stream(mf: MemFlow, workflow_id: str) -> Iterator[str]:
    """Events for one workflow's page (subscribed on the first read, so a
    stream that is never read holds nothing)."""
    sub = _Subscription(mf)
    try:
        rows = reads.fetch(mf.pool, mf.schema, "dash_job", {"id": workflow_id})
        if rows:
            sub.done(workflow_id)
            sub.entity(workflow_id)
            sub.queue(str(rows[0]["task_queue"]))
        yield from _events(sub)
    finally:
        sub.close()


def list_stream(mf: MemFlow) -> Iterator[str]:
    """Events for the pages of many workflows: a task queued on any queue in use."""
    sub = _Subscription(mf)
    try:
        for row in reads.fetch(mf.pool, mf.schema, "dash_queues", {"stale": WORKER_STALE}):
            sub.queue(str(row["name"]))
        yield from _events(sub)
    finally:
        sub.close()


def _events(sub: _Subscription) -> Iterator[str]:
    born = time.monotonic()
    # Reconnect after 2 s if the stream drops; tell the page it is live.
    yield "retry: 2000\nevent: ready\ndata: live\n\n"
    while time.monotonic() - born < MAX_AGE:
        if not sub.changed.wait(KEEPALIVE):
            yield ": keepalive\n\n"
            continue
        sub.changed.clear()
        yield "event: change\ndata: change\n\n"
        # A burst of steps becomes one refresh per interval, and one more a
        # moment after the burst: a workflow's last activation commits just
        # after the task that woke us, and announces itself to nobody here.
        time.sleep(MIN_INTERVAL)
        sub.changed.wait(TRAILING)
        sub.changed.clear()
        yield "event: change\ndata: change\n\n"
