"""The schedules table: typed access to the queries of ``sql/schedule_queries.sql``.

Every function takes the ``Tx`` of the caller's transaction, like the ``Tx``
methods: what a schedule means (ticks, overlap, catch-up) is decided above
the store, in ``schedules.py`` and ``worker/schedule_ticks.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import class_row

from ..schedule_spec import ScheduleSpec
from .store import Tx, create_workflow, jsonb


@dataclass(frozen=True)
class ScheduleRow:
    """One row of ``{schema}.schedules``."""

    id: str
    cron: str
    timezone: str
    workflow_name: str
    args: list[Any]
    task_queue: str
    options: dict[str, Any]
    overlap: str
    catchup_window: float | None
    jitter: float | None
    paused: bool
    declared: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_workflow_id: str | None
    buffered_tick: datetime | None
    created_at: datetime
    updated_at: datetime


def _definition(spec: ScheduleSpec, declared: bool,
                next_run_at: datetime | None) -> dict[str, Any]:
    return dict(
        id=spec.id, cron=spec.cron, timezone=spec.timezone, workflow_name=spec.workflow_name,
        args=jsonb(spec.args, "schedule args"), task_queue=spec.task_queue,
        options=jsonb(spec.options, "schedule options"), overlap=spec.overlap,
        catchup_window=spec.catchup_window, jitter=spec.jitter, paused=spec.paused,
        declared=declared, next_run_at=next_run_at)


def insert_schedule(tx: Tx, spec: ScheduleSpec, declared: bool,
                    next_run_at: datetime | None) -> bool:
    """Add a schedule; False when the id is taken."""
    return tx._one("insert_schedule", _definition(spec, declared, next_run_at)) is not None


def redefine_schedule(tx: Tx, spec: ScheduleSpec, declared: bool,
                      next_run_at: datetime | None, keep_buffered: bool) -> None:
    """Replace an existing schedule's definition (its last run stays)."""
    params = _definition(spec, declared, next_run_at)
    params["keep_buffered"] = keep_buffered
    tx._run("redefine_schedule", params)


def get_schedule(tx: Tx, schedule_id: str, lock: bool = False) -> ScheduleRow | None:
    """A schedule (with ``lock``, its row locked until the transaction ends)."""
    return tx._one_as(ScheduleRow, "lock_schedule" if lock else "get_schedule",
                      dict(id=schedule_id))


def list_schedules(tx: Tx) -> list[ScheduleRow]:
    """Every schedule, by id."""
    with tx._conn.cursor(row_factory=class_row(ScheduleRow)) as cur:
        cur.execute(tx._sql("list_schedules"), {})
        return cur.fetchall()


def delete_schedule(tx: Tx, schedule_id: str) -> bool:
    return tx._one("delete_schedule", dict(id=schedule_id)) is not None


def delete_undeclared(tx: Tx, keep: list[str]) -> list[str]:
    """Drop the schedules settings declared that are not in ``keep``; their ids."""
    cur = tx._conn.execute(tx._sql("delete_undeclared"), dict(keep=keep))
    return sorted(str(row[0]) for row in cur)


def lock_due_schedule(tx: Tx, held: list[str]) -> ScheduleRow | None:
    """Lock one due, unpaused schedule no other transaction holds (not in ``held``)."""
    return tx._one_as(ScheduleRow, "lock_due_schedule", dict(held=held))


def lock_buffered_schedule(tx: Tx, held: list[str]) -> ScheduleRow | None:
    """Lock one schedule whose buffered tick may start: its last workflow ended."""
    return tx._one_as(ScheduleRow, "lock_buffered_schedule", dict(held=held))


def set_schedule_state(tx: Tx, schedule_id: str, *, next_run_at: datetime | None,
                       last_run_at: datetime | None, last_workflow_id: str | None,
                       buffered_tick: datetime | None) -> None:
    """What firing (or a trigger) leaves behind."""
    tx._run("set_schedule_state", dict(
        id=schedule_id, next_run_at=next_run_at, last_run_at=last_run_at,
        last_workflow_id=last_workflow_id, buffered_tick=buffered_tick))


def set_schedule_paused(tx: Tx, schedule_id: str, paused: bool,
                        next_run_at: datetime | None) -> None:
    tx._run("set_schedule_paused", dict(id=schedule_id, paused=paused, next_run_at=next_run_at))


def schedule_wait(tx: Tx) -> tuple[float | None, bool]:
    """(Seconds until the next tick is due, negative when overdue, None when no
    schedule runs; whether a buffered tick waits for a workflow to end)."""
    row = tx._one("schedule_wait", {})
    assert row is not None  # an aggregate: always one row
    return (None if row[0] is None else float(row[0])), bool(row[1])


def database_now(tx: Tx) -> datetime:
    """The transaction's time on the database's clock, the one every worker shares."""
    row = tx._one("database_now", {})
    assert row is not None
    moment: datetime = row[0]
    return moment


def notify_schedules(tx: Tx) -> None:
    """Wake every worker's firing thread (on commit) to look at the schedules again."""
    tx._one("notify_schedules", dict(schema=tx._q.schema))


def start_scheduled(tx: Tx, row: ScheduleRow, workflow_id: str, delay: float = 0.0) -> bool:
    """Start the schedule's workflow as ``workflow_id``, its first run ``delay``
    seconds from now; False when that id exists already (the tick was started)."""
    options = row.options
    spec: dict[str, Any] = {
        "workflow_id": workflow_id,
        "workflow_name": row.workflow_name,
        "task_queue": row.task_queue,
        "entity": options.get("entity"),
        "args": row.args,
        "search": options.get("search") or {},
        "retry": options.get("retry"),
        "expire_seconds": options.get("expire"),
        "run_timeout": options.get("run_timeout"),
        "run_id": uuid.uuid4().hex,
    }
    if options.get("priority") is not None:
        spec["priority"] = options["priority"]
    if not create_workflow(tx, spec):
        return False
    if delay > 0:
        tx._run("delay_first_run", dict(id=workflow_id, delay=delay))
    return True
