"""Retrying transient database faults, at the store boundary only.

A lost connection, a serialization failure or a deadlock says nothing about
the work itself: the whole transaction is safe to run again, because every
write it makes is either idempotent or rolled back with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import errors as pg_errors
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from ..log import get_logger

T = TypeVar("T")
_log = get_logger("hotmesh_sync.store")

#: How long one operation keeps retrying before the fault is raised.
RETRY_SECONDS = 60.0


def is_transient(exc: BaseException) -> bool:
    """True for faults that a fresh attempt of the same transaction can clear."""
    if isinstance(exc, (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)):
        return True
    if isinstance(exc, (pg_errors.AdminShutdown, pg_errors.CannotConnectNow)):
        return True
    if isinstance(exc, psycopg.OperationalError):
        return True
    # The pool raises its own error when no connection can be had in time
    # (for instance while the server restarts).
    return type(exc).__name__ == "PoolTimeout"


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    _log.warning("database_retry", attempt=state.attempt_number, error=repr(exc))


def transient_retry(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate a function that runs whole transactions, so faults retry it."""
    return retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_delay(RETRY_SECONDS),
        wait=wait_exponential(multiplier=0.05, max=2.0),
        before_sleep=_log_retry,
        reraise=True,
    )(fn)


def call_with_retry(fn: Callable[[], T]) -> T:
    """``fn()``, retried by ``transient_retry`` after a transient fault.

    The first try goes straight through: building tenacity's retry state for
    every transaction is a measurable cost on the hot path.
    """
    try:
        return fn()
    except Exception as exc:
        if not is_transient(exc):
            raise
        _log.warning("database_retry", attempt=1, error=repr(exc))
    return transient_retry(fn)()
