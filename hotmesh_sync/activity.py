"""What an activity can ask about the attempt it runs in (API.md §11).

The worker sets the context around each attempt; these functions read it::

    from hotmesh_sync import activity

    def transcode(video_id: str) -> str:
        done = activity.heartbeat_details() or 0      # progress of an earlier attempt
        for chunk in range(done, 100):
            encode_chunk(video_id, chunk)
            activity.heartbeat(chunk + 1)             # keeps the lease; raises
                                                      # CancelledError once interrupted
        return "ok"

Outside an activity run by a worker they raise ``errors.NotInWorkflowError``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from . import errors

__all__ = ["ActivityInfo", "heartbeat", "heartbeat_details", "info", "is_cancelled"]


@dataclass(frozen=True)
class ActivityInfo:
    """Who and where this attempt is."""

    workflow_id: str
    activity_name: str
    #: 1 for the first attempt, one more for each retry.
    attempt: int
    task_queue: str
    #: The position of the durable call in its workflow (``"3"``, ``"4.1.0"``).
    step: str
    #: When this attempt times out (its ``timeout``), or None without one.
    deadline: datetime | None
    #: The hook run that called it ('' for the coordinator).
    run_id: str = ""


class AttemptContext(Protocol):
    """What the worker provides for one running attempt."""

    @property
    def info(self) -> ActivityInfo: ...

    @property
    def details(self) -> Any: ...

    def beat(self, details: Any) -> str | None:
        """Extend the lease and keep ``details`` (when not None); the reason
        the attempt should stop, or None."""
        ...

    def cancelled(self) -> str | None:
        """The reason the attempt should stop, or None (no lease change)."""
        ...


_current: contextvars.ContextVar[AttemptContext | None] = contextvars.ContextVar(
    "hotmesh_sync_activity", default=None)


@contextmanager
def running(context: AttemptContext) -> Iterator[None]:
    """Make ``context`` the current attempt's (the worker wraps each attempt)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def _context() -> AttemptContext:
    context = _current.get()
    if context is None:
        raise errors.NotInWorkflowError(
            "hotmesh_sync.activity works only inside an activity run by a worker")
    return context


def info() -> ActivityInfo:
    """This attempt's workflow id, activity name, attempt, queue, step and deadline."""
    return _context().info


def heartbeat(details: Any = None) -> None:
    """Tell the worker this attempt is alive: extends its lease and keeps
    ``details`` (JSON) for a later attempt to resume from.

    Raises ``errors.CancelledError`` once the workflow was interrupted (or
    ended, or stopped waiting for this call): stop, clean up, and let it out.
    """
    reason = _context().beat(details)
    if reason is not None:
        raise errors.CancelledError(reason, reason=reason)


def is_cancelled() -> bool:
    """Whether this attempt should stop (see ``heartbeat``), without raising."""
    return _context().cancelled() is not None


def heartbeat_details() -> Any:
    """The last details heartbeated by an earlier attempt of this call (None if none)."""
    return _context().details
