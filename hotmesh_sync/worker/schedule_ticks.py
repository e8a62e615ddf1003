"""Firing one schedule, inside the transaction that holds its row lock.

The lock (``FOR UPDATE SKIP LOCKED``) keeps two workers from firing one
schedule at once; the workflow id ``"{schedule_id}@{tick}"`` keeps a tick
from starting twice even so (``create_workflow`` refuses a taken id). Each
due tick then meets the overlap policy, judged against the schedule's last
workflow:

- ``skip``: while it is still going, the tick is dropped;
- ``allow``: the tick starts regardless;
- ``buffer_one``: the tick waits (one at most: a newer one replaces it) and
  starts once that workflow has ended;
- ``cancel_other``: that workflow is cancelled (its code may clean up, as
  for ``handle.interrupt()``) and the tick starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..cron import zone
from ..records import interrupted_error
from ..schedule_spec import due_ticks, jitter_delay, tick_workflow_id
from ..store.schedules import ScheduleRow, set_schedule_state, start_scheduled
from ..store.store import TERMINAL, Tx

#: Ticks one transaction starts at most (a long catch-up goes on in the next).
MAX_TICKS = 100


@dataclass
class Fired:
    """What firing one schedule did: workflow ids by outcome."""

    schedule_id: str
    started: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    buffered: str | None = None


def fire_due(tx: Tx, row: ScheduleRow, now: datetime) -> Fired:
    """Start the due ticks of a locked schedule and store when it fires next."""
    assert row.next_run_at is not None  # only due schedules are locked
    ticks, next_run_at = due_ticks(row.cron, zone(row.timezone), row.next_run_at, now,
                                   row.catchup_window, MAX_TICKS)
    firing = _Firing(tx, row, now)
    if row.overlap == "buffer_one":
        firing.start_buffered()  # it is older than any tick due now
    for tick in ticks:
        firing.tick(tick)
    # Past MAX_TICKS, next_run_at is the first tick left: still due, so the
    # firing thread locks the schedule again at once and goes on.
    firing.save(next_run_at)
    return firing.fired


def fire_buffered(tx: Tx, row: ScheduleRow, now: datetime) -> Fired:
    """Start the buffered tick of a locked schedule whose last workflow ended."""
    firing = _Firing(tx, row, now)
    firing.start_buffered()
    firing.save(row.next_run_at)
    return firing.fired


class _Firing:
    """The schedule's state while its ticks are worked through, one by one."""

    def __init__(self, tx: Tx, row: ScheduleRow, now: datetime) -> None:
        self.tx, self.row, self.now = tx, row, now
        self.last_workflow_id = row.last_workflow_id
        self.last_run_at = row.last_run_at
        self.buffered = row.buffered_tick
        self.fired = Fired(row.id)

    def tick(self, tick: datetime) -> None:
        workflow_id = tick_workflow_id(self.row.id, tick)
        if workflow_id == self.last_workflow_id:
            return  # this tick's workflow is the last one already
        overlap = self.row.overlap
        last = self.last_workflow_id
        if overlap != "allow" and last is not None and self._going(last):
            if overlap == "skip":
                self.fired.skipped.append(workflow_id)
                return
            if overlap == "buffer_one":
                self.buffered = tick
                self.fired.buffered = workflow_id
                return
            # cancel_other: not forced, so the workflow's code may clean up.
            self.tx.cancel(last, interrupted_error(
                f"schedule {self.row.id!r} started {workflow_id} (overlap cancel_other)"),
                descend=False, force=False)
            self.fired.cancelled.append(last)
        self._start(tick)

    def start_buffered(self) -> None:
        last = self.last_workflow_id
        if self.buffered is None or (last is not None and self._going(last)):
            return
        tick, self.buffered = self.buffered, None
        self._start(tick)

    def save(self, next_run_at: datetime | None) -> None:
        set_schedule_state(self.tx, self.row.id, next_run_at=next_run_at,
                           last_run_at=self.last_run_at,
                           last_workflow_id=self.last_workflow_id,
                           buffered_tick=self.buffered)

    def _start(self, tick: datetime) -> None:
        workflow_id = tick_workflow_id(self.row.id, tick)
        if start_scheduled(self.tx, self.row, workflow_id,
                           jitter_delay(workflow_id, self.row.jitter)):
            self.fired.started.append(workflow_id)
            self.last_run_at = self.now
        # Started now or before: either way it is the tick's one workflow.
        self.last_workflow_id = workflow_id

    def _going(self, workflow_id: str) -> bool:
        status = self.tx.job_status(workflow_id)
        return status is not None and status not in TERMINAL
