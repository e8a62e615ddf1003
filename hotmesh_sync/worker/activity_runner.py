"""Running one activity attempt and turning its outcome into a durable record."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .. import errors
from ..jsonvalue import normalized
from ..payloads import decode_args, encode
from ..records import ErrorRecord, StepRecord, error_message, to_record
from ..retry import decide


def call_with_timeout(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any],
                      timeout: float | None) -> Any:
    """Call ``fn``; with a timeout, in a helper thread we stop waiting for.

    Python cannot kill a thread: a timed-out attempt keeps running in the
    background while its retry is scheduled. Activities should be idempotent.
    """
    if inspect.iscoroutinefunction(fn):
        fn = _awaited(fn)
    if timeout is None:
        return _settled(fn(*args, **kwargs))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = _settled(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    # The helper thread sees this one's context: hotmesh_sync.activity works there too.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,),
                              name="hotmesh-activity-timed", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"activity attempt exceeded its timeout of {timeout}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _awaited(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An ``async def`` activity as a plain function: run to completion in
    this worker thread with its own event loop."""

    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return run


def _settled(value: Any) -> Any:
    """The value itself, or what it resolves to when it is awaitable (an
    activity returning a coroutine, e.g. a partial of an async function)."""
    if inspect.isawaitable(value):
        async def wait() -> Any:
            return await value

        return asyncio.run(wait())
    return value


def success(name: str, value: Any) -> StepRecord:
    return StepRecord("activity", name, value, None)


def classify_failure(payload: dict[str, Any],
                     exc: BaseException) -> tuple[StepRecord | None, float]:
    """(final record, 0) when the failure is final, else (None, seconds to the retry)."""
    name = str(payload["name"])
    attempt = int(payload["attempt"])
    decision = decide(payload["retry"], exc, attempt)
    if decision.delay is not None:
        return None, decision.delay
    error = to_record(exc)
    # The causes go along: the error behind the activity's own (a connection
    # refused behind "charge failed") is often the one that says why.
    if decision.reason == "exhausted":
        attempts = f"{attempt} attempt{'' if attempt == 1 else 's'}"
        error = ErrorRecord("MaxedError", error.error_type,
                            f"{error.message} (after {attempts})", causes=error.causes)
    else:
        error = ErrorRecord("FatalError", error.error_type, error.message, causes=error.causes)
    return StepRecord("activity", name, None, error.to_json()), 0.0


def run_attempt(fn: Callable[..., Any] | None, payload: dict[str, Any]) -> Any:
    """Run one attempt; the JSON-checked result, or the exception it raised."""
    if fn is None:
        raise LookupError(f"no activity named {payload['name']!r} is registered on this worker")
    try:
        args, kwargs = decode_args(fn, payload.get("args", []), payload.get("kwargs", {}))
    except TypeError as exc:  # the stored arguments do not fit the function's hints
        raise errors.FatalError(error_message(exc), "TypeError") from None
    value = call_with_timeout(fn, args, kwargs, payload.get("timeout"))
    try:
        return normalized(encode(value), f"the result of activity {payload['name']!r}")
    except (TypeError, ValueError) as exc:
        raise errors.FatalError(error_message(exc), type(exc).__name__) from None
