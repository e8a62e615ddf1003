"""What a schedule is, checked before anything is written (pure, no I/O).

``build_spec`` turns the keywords of ``mf.schedules.create`` into the values
of one ``schedules`` row, or raises ValueError/TypeError naming the bad one.
``due_ticks``, ``tick_workflow_id`` and ``jitter_delay`` are the rules every
worker applies identically, so that each tick's workflow has one id, and one
start time, wherever it fires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .cron import UTC, last_tick, next_tick, normalize, ticks_between, zone
from .durations import Duration, to_seconds
from .jsonvalue import normalized
from .names import MAX_NAME, check_name
from .payloads import encode_args
from .retry import RetryPolicy

#: What a tick does when the workflow of the last one is still going.
OVERLAPS = ("skip", "allow", "buffer_one", "cancel_other")

#: The shortest catch-up window: a tick is fired a few seconds late even
#: when every worker runs, and a shorter window would drop it.
MIN_CATCHUP_WINDOW = 10.0

#: Room left in a workflow id after the schedule id: ``@`` and an ISO time in
#: UTC with microseconds (``2025-06-01T02:00:00.123456+00:00``).
_TICK_SUFFIX = 33
MAX_SCHEDULE_ID = MAX_NAME - _TICK_SUFFIX

_INT32 = 2**31

#: The keywords of create() that become the start options of each workflow.
START_OPTIONS = ("entity", "search", "retry", "run_timeout", "expire", "priority")


@dataclass(frozen=True)
class ScheduleSpec:
    """The definition of a schedule, as stored (durations in seconds)."""

    id: str
    cron: str
    timezone: str
    workflow_name: str
    task_queue: str
    args: list[Any] = field(default_factory=list)
    #: Start options of each workflow (only those given): see START_OPTIONS.
    options: dict[str, Any] = field(default_factory=dict)
    overlap: str = "skip"
    catchup_window: float | None = None
    jitter: float | None = None
    paused: bool = False


def build_spec(
    schedule_id: str,
    *,
    cron: str,
    workflow_name: str,
    args: Sequence[Any] | None = None,
    task_queue: str | None = None,
    timezone: str = "UTC",
    overlap: str = "skip",
    catchup_window: Duration | None = None,
    jitter: Duration | None = None,
    paused: bool = False,
    entity: str | None = None,
    search: Mapping[str, Any] | None = None,
    retry: RetryPolicy | Mapping[str, Any] | None = None,
    run_timeout: Duration | None = None,
    expire: Duration | None = None,
    priority: int | None = None,
) -> ScheduleSpec:
    """The row of a schedule; ValueError/TypeError for the first bad value."""
    check_schedule_id(schedule_id)
    cron_fields = normalize(cron)
    zone(timezone)
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {', '.join(OVERLAPS)}, not {overlap!r}")
    if args is not None and not isinstance(args, (list, tuple)):
        raise TypeError("args must be a list or tuple of JSON values")
    if not isinstance(paused, bool):
        raise TypeError("paused must be True or False")
    window = None if catchup_window is None else to_seconds(catchup_window)
    if window is not None and window < MIN_CATCHUP_WINDOW:
        raise ValueError(f"catchup_window must be at least {MIN_CATCHUP_WINDOW:g} seconds "
                         "(or None: only the most recent missed tick)")
    spread = None if jitter is None else to_seconds(jitter)
    return ScheduleSpec(
        id=schedule_id,
        cron=cron_fields,
        timezone=timezone,
        workflow_name=check_name(workflow_name, "workflow_name"),
        task_queue=check_name(task_queue or entity or "default", "task_queue"),
        args=normalized(encode_args(args or []), "schedule args"),
        options=_options(entity, search, retry, run_timeout, expire, priority),
        overlap=overlap,
        catchup_window=window,
        jitter=spread or None,
        paused=paused,
    )


def check_schedule_id(schedule_id: Any) -> str:
    """``schedule_id`` if it can name a schedule (and prefix its workflow ids)."""
    check_name(schedule_id, "schedule id")
    if len(schedule_id) > MAX_SCHEDULE_ID:
        raise ValueError(f"a schedule id is at most {MAX_SCHEDULE_ID} characters: its "
                         "workflow ids add '@' and the tick's time")
    return str(schedule_id)


def tick_workflow_id(schedule_id: str, tick: datetime) -> str:
    """The id of the workflow a tick starts: ``"{schedule_id}@{tick}"``, the
    tick in UTC as ``datetime.isoformat()`` writes it
    (``nightly@2025-06-01T02:00:00+00:00``; microseconds only when not zero,
    as for ``trigger``). Being the same in every worker, it is what makes a
    tick start one workflow however many fire it."""
    return f"{schedule_id}@{iso(tick)}"


def due_ticks(cron: str, tz: ZoneInfo, next_run_at: datetime, now: datetime,
              catchup_window: float | None, limit: int) -> tuple[list[datetime], datetime]:
    """The ticks to start now, oldest first, and the ``next_run_at`` after them.

    Due are the ticks from ``next_run_at`` up to ``now``. With no
    ``catchup_window`` only the latest of them starts (ticks missed while no
    worker ran are dropped); with one, every due tick at most that old. At
    most ``limit`` are returned: ``next_run_at`` is then the first one left,
    and the caller fires again at once.
    """
    if next_run_at > now:
        return [], next_run_at
    if catchup_window is None:
        latest = last_tick(cron, tz, now)
        ticks = [latest] if latest is not None and latest >= next_run_at else []
        return ticks, next_tick(cron, tz, now)
    start = max(next_run_at, now - timedelta(seconds=catchup_window))
    ticks = ticks_between(cron, tz, start, now, limit + 1)
    if len(ticks) > limit:
        return ticks[:limit], ticks[limit]
    return ticks, next_tick(cron, tz, now)


def iso(moment: datetime) -> str:
    """A time as every schedule field and workflow id shows it: ISO, in UTC."""
    return moment.astimezone(UTC).isoformat()


def jitter_delay(workflow_id: str, jitter: float | None) -> float:
    """Seconds a tick's workflow waits before its first run: a part of
    ``jitter`` drawn from a hash of its id, so every worker draws the same."""
    if not jitter:
        return 0.0
    digest = hashlib.sha256(workflow_id.encode("utf-8")).digest()
    return jitter * int.from_bytes(digest[:8], "big") / 2.0**64


def _options(entity: str | None, search: Mapping[str, Any] | None,
             retry: RetryPolicy | Mapping[str, Any] | None, run_timeout: Duration | None,
             expire: Duration | None, priority: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if entity is not None:
        options["entity"] = check_name(entity, "entity")
    if search is not None:
        if not isinstance(search, Mapping):
            raise TypeError("search must be a dict")
        options["search"] = normalized(dict(search), "search")
    if retry is not None:
        options["retry"] = retry_json(retry)
    if run_timeout is not None:
        options["run_timeout"] = to_seconds(run_timeout)
    if expire is not None:
        options["expire"] = to_seconds(expire)
    if priority is not None:
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TypeError("priority must be an int")
        if not -_INT32 <= priority < _INT32:
            raise ValueError("priority must fit in 32 bits")
        options["priority"] = priority
    return options


def retry_json(retry: RetryPolicy | Mapping[str, Any]) -> dict[str, Any]:
    """A retry policy in its stored form; a mapping holds RetryPolicy's keywords
    (``non_retryable`` as exception class names), as settings files can."""
    if isinstance(retry, RetryPolicy):
        return retry.to_json()
    if not isinstance(retry, Mapping):
        raise TypeError("retry must be a RetryPolicy or a dict of its keywords")
    given = dict(retry)
    names = given.pop("non_retryable", [])
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError("retry['non_retryable'] must be a list of exception class names")
    try:
        policy = RetryPolicy(**given)
    except TypeError as exc:
        raise TypeError(f"retry: {exc}") from None
    return {**policy.to_json(), "non_retryable": list(names)}
