"""mf.schedules against PostgreSQL, fired by real workers (API.md §12).

To fire a tick without waiting for it, a test moves the stored
``next_run_at`` into the past with plain SQL (as if no worker had run since)
and sends the notification that wakes the firing threads. The schedules use
a daily cron whose ticks fall twelve hours from now, so that no real tick
fires during a test; only ``test_a_real_one_minute_tick`` waits for the clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from schedule_flows import hold, stamp

from hotmesh_sync import MemFlow, errors
from hotmesh_sync.schedule_spec import iso, jitter_delay, tick_workflow_id
from hotmesh_sync.store.queries import render

UTC = timezone.utc
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
QUEUE = "sched"
DAY = timedelta(days=1)


# --- helpers --------------------------------------------------------------------------------

def far_daily() -> tuple[str, datetime]:
    """A daily cron (UTC) whose ticks fall twelve hours from now, and its latest
    tick (about twelve hours ago)."""
    soon = (datetime.now(UTC) + timedelta(hours=12)).replace(second=0, microsecond=0)
    return f"{soon.minute} {soon.hour} * * *", soon - DAY


def run_sql(mf: MemFlow, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        cur = conn.execute(render(query, mf.schema), params)
        return cur.fetchall() if cur.description else []


def force(mf: MemFlow, next_run_at: datetime, *schedule_ids: str) -> None:
    """Move the schedules' next_run_at (into the past: as if no worker had run
    since) and wake the workers' firing threads."""
    run_sql(mf, "UPDATE {schema}.schedules SET next_run_at = %s WHERE id = ANY(%s)",
            next_run_at, list(schedule_ids))
    run_sql(mf, "SELECT pg_notify(%s, 's:')", f"hotmesh_{mf.schema}")


def workflows_of(mf: MemFlow, schedule_id: str) -> dict[str, str]:
    """The workflows a schedule started: id -> status."""
    rows = run_sql(mf, "SELECT id, status FROM {schema}.jobs WHERE starts_with(id, %s)",
                   f"{schedule_id}@")
    return {str(r[0]): str(r[1]) for r in rows}


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def status(mf: MemFlow, workflow_id: str) -> str:
    return mf.workflow.get_handle(workflow_id).status()


# --- the API --------------------------------------------------------------------------------

def test_create_get_list_update_pause_unpause_delete(mf: MemFlow) -> None:
    made = mf.schedules.create("nightly-report", cron="0 3 * * *", workflow_name=stamp,
                               args=["night"], task_queue="reports",
                               timezone="Europe/Berlin", catchup_window="1 hour")
    assert made == mf.schedules.get("nightly-report")
    assert {k: made[k] for k in ("cron", "workflow_name", "args", "task_queue", "timezone",
                                 "overlap", "catchup_window", "jitter", "paused", "declared",
                                 "last_run_at", "last_workflow_id")} == {
        "cron": "0 3 * * *", "workflow_name": "stamp", "args": ["night"],
        "task_queue": "reports", "timezone": "Europe/Berlin", "overlap": "skip",
        "catchup_window": 3600.0, "jitter": None, "paused": False, "declared": False,
        "last_run_at": None, "last_workflow_id": None}
    first = datetime.fromisoformat(made["next_run_at"])
    assert first > datetime.now(UTC) and first - datetime.now(UTC) <= DAY + timedelta(hours=1)
    local = first.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.second) == (3, 0, 0)

    mf.schedules.create("a-first", cron="@hourly", workflow_name="stamp")
    assert [s["id"] for s in mf.schedules.list()] == ["a-first", "nightly-report"]

    # Changing the arguments keeps the next run; changing the cron text recomputes it.
    kept = mf.schedules.update("nightly-report", args=["again"], overlap="allow")
    assert (kept["args"], kept["overlap"], kept["next_run_at"]) == (
        ["again"], "allow", made["next_run_at"])
    hourly = mf.schedules.update("nightly-report", cron="@hourly", timezone="UTC")
    assert hourly["cron"] == "0 * * * *"
    assert datetime.fromisoformat(hourly["next_run_at"]) - datetime.now(UTC) <= timedelta(
        hours=1)

    paused = mf.schedules.pause("nightly-report")
    assert (paused["paused"], paused["next_run_at"]) == (True, None)
    unpaused = mf.schedules.unpause("nightly-report")
    assert (unpaused["paused"], unpaused["next_run_at"]) == (False, hourly["next_run_at"])

    with pytest.raises(errors.DuplicateScheduleError):
        mf.schedules.create("a-first", cron="@daily", workflow_name="stamp")
    redefined = mf.schedules.create("a-first", cron="@daily", workflow_name="stamp",
                                    if_exists="update")
    assert redefined["cron"] == "0 0 * * *"

    mf.schedules.delete("nightly-report")
    with pytest.raises(errors.ScheduleNotFoundError):
        mf.schedules.get("nightly-report")
    with pytest.raises(errors.ScheduleNotFoundError):
        mf.schedules.delete("nightly-report")
    assert [s["id"] for s in mf.schedules.list()] == ["a-first"]


@pytest.mark.parametrize("bad", [
    {"cron": "61 * * * *"}, {"cron": "* * * * * *"}, {"cron": "@often"},
    {"timezone": "Europe/Atlantis"}, {"overlap": "queue"}, {"catchup_window": "a while"},
    {"catchup_window": 1}, {"jitter": "-5s"}, {"workflow_name": ""},
    {"task_queue": "a\x00b"}, {"args": {"not": "a list"}}, {"if_exists": "replace"},
    {"run_timeout": "forever"}, {"priority": "high"},
])
def test_bad_input_writes_nothing(mf: MemFlow, bad: dict[str, Any]) -> None:
    keywords: dict[str, Any] = {"cron": "@daily", "workflow_name": "stamp", **bad}
    with pytest.raises((ValueError, TypeError)):
        mf.schedules.create("s", **keywords)
    assert mf.schedules.list() == []


def test_bad_updates_and_unknown_ids(mf: MemFlow) -> None:
    before = mf.schedules.create("s", cron="@daily", workflow_name="stamp")
    with pytest.raises(ValueError):
        mf.schedules.update("s", cron="nonsense")
    with pytest.raises(TypeError, match="unknown fields"):
        mf.schedules.update("s", crons="@hourly")
    assert mf.schedules.get("s") == before
    for call in (mf.schedules.get, mf.schedules.pause, mf.schedules.unpause,
                 mf.schedules.trigger, mf.schedules.delete):
        with pytest.raises(errors.ScheduleNotFoundError, match="no schedule with id 'nope'"):
            call("nope")
    with pytest.raises(errors.ScheduleNotFoundError):
        mf.schedules.update("nope", args=[1])
    with pytest.raises(ValueError):
        mf.schedules.create("x" * 500, cron="@daily", workflow_name="stamp")


# --- firing ---------------------------------------------------------------------------------

def test_trigger_starts_one_workflow_now(mf: MemFlow, worker: Any) -> None:
    """trigger() starts the workflow at once (paused or not) as "{id}@{now}"."""
    worker(QUEUE, [stamp])
    mf.schedules.create("adhoc", cron="@yearly", workflow_name="stamp", args=["now"],
                        task_queue=QUEUE, paused=True)
    before = datetime.now(UTC)
    workflow_id = mf.schedules.trigger("adhoc")
    prefix, _, when = workflow_id.partition("@")
    assert prefix == "adhoc"
    assert abs(datetime.fromisoformat(when) - before) < timedelta(seconds=5)
    assert when.endswith("+00:00")
    assert mf.workflow.get_handle(workflow_id).result(timeout=20) == "ran now"
    shown = mf.schedules.get("adhoc")
    assert (shown["last_workflow_id"], shown["last_run_at"], shown["paused"]) == (
        workflow_id, when, True)
    assert workflows_of(mf, "adhoc") == {workflow_id: "completed"}


@pytest.mark.slow
def test_a_real_one_minute_tick(mf: MemFlow, worker: Any) -> None:
    """'* * * * *' with a worker running: at the next minute one workflow starts,
    with the tick's time in its id."""
    worker(QUEUE, [stamp])
    made = mf.schedules.create("minutely", cron="* * * * *", workflow_name="stamp",
                               args=["tick"], task_queue=QUEUE)
    tick = made["next_run_at"]
    assert datetime.fromisoformat(tick).second == 0
    expected = f"minutely@{tick}"
    wait_until(lambda: workflows_of(mf, "minutely").get(expected) == "completed", timeout=75)
    assert mf.workflow.get_handle(expected).result(timeout=1) == "ran tick"
    shown = mf.schedules.get("minutely")
    assert shown["last_workflow_id"] == expected
    assert datetime.fromisoformat(shown["next_run_at"]) >= datetime.fromisoformat(
        tick) + timedelta(minutes=1)
    assert datetime.fromisoformat(shown["last_run_at"]) >= datetime.fromisoformat(tick)


@pytest.mark.parametrize(("window", "overlap", "days_ago"), [
    (None, "allow", [0]),
    ("2 days", "allow", [1, 0]),
    ("10 days", "allow", [4, 3, 2, 1, 0]),
    # Worked through oldest first, each under the overlap policy: with 'skip'
    # the first one starts and the others overlap it.
    ("10 days", "skip", [4]),
])
def test_catch_up_after_downtime(mf: MemFlow, worker: Any, window: str | None, overlap: str,
                                 days_ago: list[int]) -> None:
    """No worker ran for four and a half days (five ticks missed): the
    catch-up window decides which are started once one runs again."""
    text, latest = far_daily()
    mf.schedules.create("report", cron=text, workflow_name="stamp", args=["r"],
                        task_queue=QUEUE, catchup_window=window, overlap=overlap)
    run_sql(mf, "UPDATE {schema}.schedules SET next_run_at = %s", latest - 4 * DAY)
    worker(QUEUE, [stamp])
    expected = {tick_workflow_id("report", latest - d * DAY): "completed" for d in days_ago}
    wait_until(lambda: workflows_of(mf, "report") == expected)
    shown = mf.schedules.get("report")
    assert shown["next_run_at"] == iso(latest + DAY)
    assert shown["last_workflow_id"] == tick_workflow_id("report", latest - days_ago[-1] * DAY)


def test_paused_schedules_do_not_fire(mf: MemFlow, worker: Any) -> None:
    text, latest = far_daily()
    for schedule_id in ("on", "off"):
        mf.schedules.create(schedule_id, cron=text, workflow_name="stamp", args=[schedule_id],
                            task_queue=QUEUE)
    mf.schedules.pause("off")
    worker(QUEUE, [stamp])
    force(mf, latest, "on", "off")
    on = tick_workflow_id("on", latest)
    wait_until(lambda: workflows_of(mf, "on") == {on: "completed"})
    time.sleep(0.5)  # the same look passed over "off"
    assert workflows_of(mf, "off") == {}
    # Unpausing starts from the next tick: the one missed while paused is not caught up.
    assert mf.schedules.unpause("off")["next_run_at"] == iso(latest + DAY)
    time.sleep(0.5)
    assert workflows_of(mf, "off") == {}


def test_jitter_delays_the_start(mf: MemFlow, worker: Any) -> None:
    """The tick's workflow exists at once, but runs first after its share of the jitter."""
    text, latest = far_daily()
    mf.schedules.create("spread", cron=text, workflow_name="stamp", args=["j"],
                        task_queue=QUEUE, jitter="1 hour")
    worker(QUEUE, [stamp])
    force(mf, latest, "spread")
    workflow_id = tick_workflow_id("spread", latest)
    wait_until(lambda: workflow_id in workflows_of(mf, "spread"))
    delay = jitter_delay(workflow_id, 3600.0)
    ((run_in,),) = run_sql(
        mf, "SELECT EXTRACT(EPOCH FROM t.run_at - j.created_at)::float8 FROM {schema}.tasks t "
            "JOIN {schema}.jobs j ON j.id = t.job_id WHERE t.job_id = %s AND t.kind = 'run'",
        workflow_id)
    assert abs(run_in - delay) < 1.0
    assert status(mf, workflow_id) == "pending"


# --- overlap policies -------------------------------------------------------------------------

def held_then_tick(mf: MemFlow, worker: Any, overlap: str) -> tuple[str, str, datetime]:
    """A schedule of ``hold`` whose triggered workflow A is waiting when a tick
    comes; (A's id, the tick's workflow id, the tick)."""
    worker(QUEUE, [hold])
    text, latest = far_daily()
    mf.schedules.create("s", cron=text, workflow_name="hold", args=["x"], task_queue=QUEUE,
                        overlap=overlap)
    first = mf.schedules.trigger("s")
    wait_until(lambda: status(mf, first) == "waiting")
    force(mf, latest, "s")
    wait_until(lambda: mf.schedules.get("s")["next_run_at"] == iso(latest + DAY))
    return first, tick_workflow_id("s", latest), latest


def finish(mf: MemFlow, workflow_id: str) -> None:
    mf.workflow.signal("go", workflow_id=workflow_id)
    assert mf.workflow.get_handle(workflow_id).result(timeout=20) == "held x"


def test_overlap_skip(mf: MemFlow, worker: Any) -> None:
    """A tick while the last workflow goes is dropped; one after it ended starts."""
    first, tick_id, latest = held_then_tick(mf, worker, "skip")
    assert workflows_of(mf, "s") == {first: "waiting"}
    assert mf.schedules.get("s")["last_workflow_id"] == first
    finish(mf, first)
    force(mf, latest, "s")  # the same tick again, now that the first has ended
    wait_until(lambda: workflows_of(mf, "s").get(tick_id) == "waiting")
    assert mf.schedules.get("s")["last_workflow_id"] == tick_id
    finish(mf, tick_id)


def test_overlap_allow(mf: MemFlow, worker: Any) -> None:
    first, tick_id, _ = held_then_tick(mf, worker, "allow")
    wait_until(lambda: workflows_of(mf, "s") == {first: "waiting", tick_id: "waiting"})
    finish(mf, first)
    finish(mf, tick_id)


def test_overlap_buffer_one(mf: MemFlow, worker: Any) -> None:
    """The tick waits (buffered) and starts once the last workflow has ended."""
    first, tick_id, latest = held_then_tick(mf, worker, "buffer_one")
    shown = mf.schedules.get("s")
    assert (shown["buffered_tick"], shown["last_workflow_id"]) == (iso(latest), first)
    assert workflows_of(mf, "s") == {first: "waiting"}
    finish(mf, first)
    wait_until(lambda: workflows_of(mf, "s").get(tick_id) == "waiting", timeout=10)
    shown = mf.schedules.get("s")
    assert (shown["buffered_tick"], shown["last_workflow_id"]) == (None, tick_id)
    finish(mf, tick_id)


def test_overlap_cancel_other(mf: MemFlow, worker: Any) -> None:
    """The last workflow is cancelled (through its cleanup) and the tick starts."""
    first, tick_id, _ = held_then_tick(mf, worker, "cancel_other")
    with pytest.raises(errors.WorkflowInterruptedError, match="cancel_other"):
        mf.workflow.get_handle(first).result(timeout=20)
    wait_until(lambda: workflows_of(mf, "s") == {first: "interrupted", tick_id: "waiting"})
    assert mf.schedules.get("s")["last_workflow_id"] == tick_id
    finish(mf, tick_id)


# --- several worker processes ---------------------------------------------------------------

@pytest.fixture
def worker_processes(mf: MemFlow, tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """``start()`` runs `hotmesh-sync worker schedule_flows` in a subprocess; the
    path of its log (JSON lines). Every one is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> Path:
        log = tmp_path / f"worker-{len(started)}.log"
        with open(log, "wb") as sink:
            started.append(subprocess.Popen(
                [sys.executable, "-m", "hotmesh_sync", "worker", "schedule_flows",
                 "--task-queue", QUEUE, "--concurrency", "2", "--dsn", mf.dsn,
                 "--app-id", mf.app_id],
                cwd=HERE, stdout=subprocess.DEVNULL, stderr=sink,
                env={**os.environ, "PYTHONPATH": str(ROOT)}))
        return log

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def events(log: Path, name: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found


def test_two_worker_processes_start_each_tick_once(
        mf: MemFlow, worker_processes: Callable[[], Path]) -> None:
    """Two worker processes fire four schedules, five missed ticks each, at the
    same moment, twice over: each tick starts one workflow, and no worker
    believes it started one the other did."""
    text, latest = far_daily()
    ids = [f"s{i}" for i in range(4)]
    for schedule_id in ids:
        mf.schedules.create(schedule_id, cron=text, workflow_name="stamp", args=[schedule_id],
                            task_queue=QUEUE, catchup_window="10 days", overlap="allow")
    logs = [worker_processes() for _ in range(2)]
    wait_until(lambda: all(events(log, "worker_started") for log in logs), timeout=30)
    expected = {schedule_id: {tick_workflow_id(schedule_id, latest - d * DAY): "completed"
                              for d in range(5)} for schedule_id in ids}
    for _ in range(2):  # the second time every tick's workflow exists already
        force(mf, latest - 4 * DAY, *ids)
        wait_until(lambda: {s: workflows_of(mf, s) for s in ids} == expected, timeout=30)
        wait_until(lambda: all(mf.schedules.get(s)["next_run_at"] == iso(latest + DAY)
                               for s in ids))
    started = [wid for log in logs for event in events(log, "schedule_fired")
               for wid in event["started"]]
    assert sorted(started) == sorted(wid for s in ids for wid in expected[s])
