"""``mf.schedules``: cron schedules that start workflows (API.md §12).

A schedule is a row of the app's ``schedules`` table; every worker process
takes part in firing it (``worker/schedule_firing.py``), and each due tick
starts one workflow, ``"{schedule_id}@{tick}"``. This module checks and
writes the rows; ``sync_declared`` brings the schedules declared in
settings (Django, Flask) in line with the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from . import errors
from .cron import next_tick, zone
from .durations import Duration
from .log import get_logger
from .retry import RetryPolicy
from .schedule_spec import START_OPTIONS, ScheduleSpec, build_spec, iso, tick_workflow_id
from .store.schedules import (
    ScheduleRow,
    database_now,
    delete_schedule,
    delete_undeclared,
    get_schedule,
    insert_schedule,
    list_schedules,
    notify_schedules,
    redefine_schedule,
    set_schedule_paused,
    set_schedule_state,
    start_scheduled,
)
from .store.store import Store, Tx
from .workflow.registry import name_of

_log = get_logger("hotmesh_sync.schedules")

#: The keywords of create() that define a schedule (what settings may declare).
FIELDS = ("cron", "workflow_name", "args", "task_queue", "timezone", "overlap",
          "catchup_window", "jitter", "paused", *START_OPTIONS)


class ScheduleHost(Protocol):
    """What the facade works through (a MemFlow is one)."""

    @property
    def store(self) -> Store: ...


class Schedules:
    """``mf.schedules``: create, inspect, pause, trigger and delete schedules."""

    def __init__(self, memflow: ScheduleHost) -> None:
        self._mf = memflow

    def create(
        self,
        schedule_id: str,
        *,
        cron: str,
        workflow_name: str | Callable[..., Any],
        args: Sequence[Any] | None = None,
        task_queue: str | None = None,
        timezone: str = "UTC",
        overlap: str = "skip",
        catchup_window: Duration | None = None,
        jitter: Duration | None = None,
        paused: bool = False,
        if_exists: str = "error",
        entity: str | None = None,
        search: Mapping[str, Any] | None = None,
        retry: RetryPolicy | Mapping[str, Any] | None = None,
        run_timeout: Duration | None = None,
        expire: Duration | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        """Add a schedule (``if_exists="update"``: or redefine the one with this
        id); what ``get`` shows of it. Every value is checked before anything
        is written; a taken id raises DuplicateScheduleError."""
        if if_exists not in ("error", "update"):
            raise ValueError("if_exists must be 'error' or 'update'")
        spec = build_spec(
            schedule_id, cron=cron, workflow_name=name_of(workflow_name), args=args,
            task_queue=task_queue, timezone=timezone, overlap=overlap,
            catchup_window=catchup_window, jitter=jitter, paused=paused, entity=entity,
            search=search, retry=retry, run_timeout=run_timeout, expire=expire,
            priority=priority)
        row, created = self._mf.store.run(
            lambda tx: _put(tx, spec, declared=None, if_exists=if_exists, keep_paused=False))
        _log.info("schedule_created" if created else "schedule_updated", schedule_id=row.id,
                  cron=row.cron, timezone=row.timezone, workflow_name=row.workflow_name)
        return describe(row)

    def get(self, schedule_id: str) -> dict[str, Any]:
        """A schedule as a dict: its definition, ``next_run_at``, ``last_run_at``,
        ``last_workflow_id``, ``paused`` (times as ISO text in UTC)."""
        return describe(self._mf.store.run(lambda tx: _row(tx, schedule_id)))

    def list(self) -> list[dict[str, Any]]:
        """Every schedule of the app, by id."""
        return [describe(row) for row in self._mf.store.run(list_schedules)]

    def update(self, schedule_id: str, **fields: Any) -> dict[str, Any]:
        """Change some of a schedule's fields (the keywords of ``create``). A
        new ``cron`` or ``timezone`` recomputes ``next_run_at`` from now."""
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise TypeError(f"update() got unknown fields {unknown}; known: {list(FIELDS)}")

        def work(tx: Tx) -> ScheduleRow:
            row = _row(tx, schedule_id, lock=True)
            given = {**_keywords_of(row), **fields}
            given["workflow_name"] = name_of(given["workflow_name"])
            _redefine(tx, row, build_spec(schedule_id, **given), row.declared)
            return _row(tx, schedule_id)

        row = self._mf.store.run(work)
        _log.info("schedule_updated", schedule_id=schedule_id, fields=sorted(fields))
        return describe(row)

    def pause(self, schedule_id: str) -> dict[str, Any]:
        """Stop firing: no tick starts (a buffered one is dropped) until ``unpause``."""
        def work(tx: Tx) -> ScheduleRow:
            _row(tx, schedule_id, lock=True)
            set_schedule_paused(tx, schedule_id, True, None)
            return _row(tx, schedule_id)

        row = self._mf.store.run(work)
        _log.info("schedule_paused", schedule_id=schedule_id)
        return describe(row)

    def unpause(self, schedule_id: str) -> dict[str, Any]:
        """Fire again, from the next tick after now: the ticks that passed while
        it was paused are not caught up."""
        def work(tx: Tx) -> ScheduleRow:
            row = _row(tx, schedule_id, lock=True)
            if row.paused:
                set_schedule_paused(tx, schedule_id, False,
                                    _next_after(row.cron, row.timezone, database_now(tx)))
                notify_schedules(tx)
            return _row(tx, schedule_id)

        row = self._mf.store.run(work)
        _log.info("schedule_unpaused", schedule_id=schedule_id)
        return describe(row)

    def trigger(self, schedule_id: str) -> str:
        """Start the schedule's workflow now, outside its ticks, as
        ``"{schedule_id}@{now}"``; its id. The overlap policy does not apply
        and a paused schedule may be triggered too; the workflow becomes the
        schedule's last one (``last_workflow_id``), which later ticks' overlap
        policy looks at."""
        def work(tx: Tx) -> str:
            row = _row(tx, schedule_id, lock=True)
            now = database_now(tx)
            workflow_id = tick_workflow_id(schedule_id, now)
            if not start_scheduled(tx, row, workflow_id):
                raise errors.DuplicateWorkflowError(workflow_id)
            set_schedule_state(tx, schedule_id, next_run_at=row.next_run_at, last_run_at=now,
                               last_workflow_id=workflow_id, buffered_tick=row.buffered_tick)
            return workflow_id

        workflow_id = self._mf.store.run(work)
        _log.info("schedule_triggered", schedule_id=schedule_id, workflow_id=workflow_id)
        return workflow_id

    def delete(self, schedule_id: str) -> None:
        """Remove a schedule; the workflows it started are left alone."""
        if not self._mf.store.run(lambda tx: delete_schedule(tx, schedule_id)):
            raise errors.ScheduleNotFoundError(schedule_id)
        _log.info("schedule_deleted", schedule_id=schedule_id)


def sync_declared(memflow: ScheduleHost,
                  declared: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Bring the table in line with the schedules settings declare (id -> the
    keywords of ``create``): each is created or redefined, and marked declared;
    a declared one the settings no longer name is deleted. Schedules made
    through the API are left alone. A declaration without ``paused`` keeps
    the schedule's paused state, so a pause from the command line survives
    a deploy. Every declaration is checked first (ConfigurationError naming
    the schedule), and all is written in one transaction.

    Returns the ids ``{"created": [...], "updated": [...], "deleted": [...]}``.
    """
    if not isinstance(declared, Mapping):
        raise errors.ConfigurationError("declared schedules must be a dict: id -> "
                                        "the keywords of mf.schedules.create()")
    # By id: processes syncing at once (a rolling deploy) lock the rows in one order.
    specs = sorted(((_declared_spec(schedule_id, keywords), "paused" in keywords)
                    for schedule_id, keywords in declared.items()), key=lambda s: s[0].id)

    def work(tx: Tx) -> dict[str, list[str]]:
        done: dict[str, list[str]] = {"created": [], "updated": []}
        for spec, paused_given in specs:
            _, created = _put(tx, spec, declared=True, if_exists="update",
                              keep_paused=not paused_given)
            done["created" if created else "updated"].append(spec.id)
        done["deleted"] = delete_undeclared(tx, [spec.id for spec, _ in specs])
        notify_schedules(tx)
        return done

    done = memflow.store.run(work)
    _log.info("schedules_synced", **done)
    return done


def describe(row: ScheduleRow) -> dict[str, Any]:
    """A schedule row as ``get`` shows it: plain JSON, times in UTC ISO text."""
    def when(moment: datetime | None) -> str | None:
        return None if moment is None else iso(moment)

    return {
        "id": row.id, "cron": row.cron, "timezone": row.timezone,
        "workflow_name": row.workflow_name, "args": row.args, "task_queue": row.task_queue,
        "options": row.options, "overlap": row.overlap, "catchup_window": row.catchup_window,
        "jitter": row.jitter, "paused": row.paused, "declared": row.declared,
        "next_run_at": when(row.next_run_at), "last_run_at": when(row.last_run_at),
        "last_workflow_id": row.last_workflow_id, "buffered_tick": when(row.buffered_tick),
        "created_at": when(row.created_at), "updated_at": when(row.updated_at),
    }


def _declared_spec(schedule_id: Any, keywords: Any) -> ScheduleSpec:
    if not isinstance(keywords, Mapping):
        raise errors.ConfigurationError(
            f"schedule {schedule_id!r}: must be a dict of mf.schedules.create() keywords")
    unknown = sorted(set(keywords) - set(FIELDS))
    if unknown:
        raise errors.ConfigurationError(
            f"schedule {schedule_id!r}: unknown keys {unknown}; known: {list(FIELDS)}")
    given = dict(keywords)
    try:
        if "workflow_name" in given:
            given["workflow_name"] = name_of(given["workflow_name"])
        return build_spec(schedule_id, **given)
    except (ValueError, TypeError) as exc:
        raise errors.ConfigurationError(f"schedule {schedule_id!r}: {exc}") from exc


def _row(tx: Tx, schedule_id: str, lock: bool = False) -> ScheduleRow:
    row = get_schedule(tx, schedule_id, lock=lock)
    if row is None:
        raise errors.ScheduleNotFoundError(schedule_id)
    return row


def _put(tx: Tx, spec: ScheduleSpec, declared: bool | None, if_exists: str,
         keep_paused: bool) -> tuple[ScheduleRow, bool]:
    """Insert ``spec``, or redefine the schedule with its id (``if_exists="update"``);
    (the row now, whether it was inserted). ``declared`` None keeps the flag
    (False for a new one); ``keep_paused`` keeps an existing one's paused state."""
    existing = get_schedule(tx, spec.id, lock=True)
    if existing is None:
        next_run_at = None if spec.paused else _next_after(spec.cron, spec.timezone,
                                                          database_now(tx))
        if insert_schedule(tx, spec, bool(declared), next_run_at):
            notify_schedules(tx)
            return _row(tx, spec.id), True
        existing = _row(tx, spec.id, lock=True)  # made by another transaction meanwhile
    if if_exists != "update":
        raise errors.DuplicateScheduleError(spec.id)
    if keep_paused:
        spec = dataclasses.replace(spec, paused=existing.paused)
    _redefine(tx, existing, spec, existing.declared if declared is None else declared)
    return _row(tx, spec.id), False


def _redefine(tx: Tx, row: ScheduleRow, spec: ScheduleSpec, declared: bool) -> None:
    """Write a new definition; ``next_run_at`` is recomputed from now when the
    cron text or time zone changed or the schedule was paused, else kept."""
    if spec.paused:
        next_run_at = None
    elif (row.paused or row.next_run_at is None
          or (spec.cron, spec.timezone) != (row.cron, row.timezone)):
        next_run_at = _next_after(spec.cron, spec.timezone, database_now(tx))
    else:
        next_run_at = row.next_run_at
    redefine_schedule(tx, spec, declared, next_run_at,
                      keep_buffered=spec.overlap == "buffer_one" and not spec.paused)
    notify_schedules(tx)


def _next_after(cron: str, timezone: str, now: datetime) -> datetime:
    return next_tick(cron, zone(timezone), now)


def _keywords_of(row: ScheduleRow) -> dict[str, Any]:
    """A stored schedule as the keywords of ``create`` (to change some of them)."""
    keywords: dict[str, Any] = {
        "cron": row.cron, "workflow_name": row.workflow_name, "args": row.args,
        "task_queue": row.task_queue, "timezone": row.timezone, "overlap": row.overlap,
        "catchup_window": row.catchup_window, "jitter": row.jitter, "paused": row.paused,
    }
    keywords.update({k: v for k, v in row.options.items() if k in START_OPTIONS})
    return keywords
