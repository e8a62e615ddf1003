"""``proxy_activities``: durable stand-ins for activity functions."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from ..durations import Duration, to_seconds
from ..jsonvalue import normalized
from ..names import check_name
from ..payloads import decode_result, encode_args, encode_kwargs, result_decoder
from ..records import from_record
from ..retry import RetryPolicy
from .context import RunContext, current
from .registry import as_table, ref_of
from .suspension import Pending


class ActivityProxy:
    """Attribute access gives a durable caller for the activity of that name."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], retry: RetryPolicy,
                 task_queue: str | None, timeout: float | None) -> None:
        self._functions = dict(functions)
        self._refs = {name: ref_of(fn) for name, fn in functions.items()}
        self._names = frozenset(functions)
        self._retry = retry
        self._task_queue = task_queue
        self._timeout = timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Only reached for names not set yet: each caller is made once and
        # kept as an attribute, since replays look it up on every call. A
        # replay makes every recorded call again: the caller checks the name
        # and finds how results are rebuilt once, here, not on each call.
        if name.startswith("_") or (self._names and name not in self._names):
            raise AttributeError(f"no activity named {name!r} in this proxy")
        try:
            check_name(name, "activity name")
        except ValueError:
            return functools.partial(self.call, name)  # refused at the call, as ever
        decode = result_decoder(self._functions.get(name))

        def call(*args: Any, **kwargs: Any) -> Any:
            ctx = current()
            key, record = ctx.step("activity", name)
            if record is None:
                self._schedule(ctx, key, name, args, kwargs)
            if record.error is not None:
                raise from_record(record.error)
            return decode(record.result)

        call.__name__ = name
        setattr(self, name, call)
        return call

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run activity ``name`` durably: once, recorded, replayed."""
        ctx = current()
        check_name(name, "activity name")
        key, record = ctx.step("activity", name)
        if record is None:
            self._schedule(ctx, key, name, args, kwargs)
        if record.error is not None:
            raise from_record(record.error)
        # Rebuilt from the activity's return hint (a dataclass, a datetime...).
        return decode_result(self._functions.get(name), record.result)

    def _schedule(self, ctx: RunContext, key: str, name: str, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> NoReturn:
        """Suspend the run on a new call of activity ``name`` at ``key``."""
        payload = {
            "name": name,
            "ref": self._refs.get(name),
            "args": normalized(encode_args(args), f"arguments of activity {name!r}"),
            "kwargs": normalized(encode_kwargs(kwargs),
                                 f"keyword arguments of activity {name!r}"),
            "attempt": 1,
            "retry": self._retry.to_json(),
            "timeout": self._timeout,
            "task_queue": self._task_queue or ctx.task_queue,
        }
        # The function travels up with the pending call, so the worker that
        # runs this workflow can run the activity without a global registry.
        ctx.suspend([Pending("activity", key, payload, function=self._functions.get(name))])


def proxy_activities(
    activities: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]]
    | types.ModuleType | None = None,
    retry: RetryPolicy | None = None,
    task_queue: str | None = None,
    timeout: Duration | None = None,
) -> ActivityProxy:
    """Durable callers for ``activities``; meant for module level.

    A worker that runs a workflow using this proxy can run these activities
    too; a worker of another ``task_queue`` needs them in its ``activities``.
    """
    table = as_table(activities)
    for name in table:
        check_name(name, "activity name")
    if task_queue is not None:
        check_name(task_queue, "task_queue")
    return ActivityProxy(
        table,
        retry or RetryPolicy(),
        task_queue,
        None if timeout is None else to_seconds(timeout),
    )
