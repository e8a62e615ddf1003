"""Wake-ups within one process, beside the listener's NOTIFY.

When the client and a worker share a process (an application that runs its
own worker), what one commits concerns the other at once: a workflow queued
on a queue this process's worker serves, a workflow ending that a handle in
this process waits for. The committing side announces it here, after its
commit, and the waiting side wakes without the round trip through
PostgreSQL's NOTIFY and the listener thread. The NOTIFY still goes out (other
processes wait on it); a waiter woken twice re-reads the database, as it
does after every wake-up, and finds nothing new the second time.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

_lock = threading.Lock()
_done: dict[tuple[str, str], set[threading.Event]] = defaultdict(set)
_queues: dict[tuple[str, str], set[Callable[[], None]]] = defaultdict(set)


def watch_done(schema: str, job_id: str, event: threading.Event) -> None:
    """Set ``event`` when a transaction of this process ends the workflow."""
    with _lock:
        _done[(schema, job_id)].add(event)


def unwatch_done(schema: str, job_id: str, event: threading.Event) -> None:
    with _lock:
        events = _done.get((schema, job_id))
        if events is not None:
            events.discard(event)
            if not events:
                del _done[(schema, job_id)]


def announce_done(schema: str, job_id: str) -> None:
    """A transaction of this process that ended the workflow has committed."""
    with _lock:
        events = list(_done.get((schema, job_id), ()))
    for event in events:
        event.set()


def watch_queue(schema: str, task_queue: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` when a transaction of this process queued work on the queue."""
    with _lock:
        _queues[(schema, task_queue)].add(callback)


def unwatch_queue(schema: str, task_queue: str, callback: Callable[[], None]) -> None:
    with _lock:
        callbacks = _queues.get((schema, task_queue))
        if callbacks is not None:
            callbacks.discard(callback)
            if not callbacks:
                del _queues[(schema, task_queue)]


def serves(schema: str, task_queue: str) -> bool:
    """Whether a worker of this process watches the queue."""
    with _lock:
        return bool(_queues.get((schema, task_queue)))


def announce_queued(schema: str, task_queue: str) -> None:
    """A transaction of this process that queued work on the queue has committed."""
    with _lock:
        callbacks = list(_queues.get((schema, task_queue), ()))
    for callback in callbacks:
        callback()
