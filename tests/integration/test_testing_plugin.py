"""The package's pytest plugin (hotmesh_sync.testing), used as a project would use it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from hotmesh_sync import MemFlow, errors, workflow
from hotmesh_sync.testing import skip_time


def trial(days: int) -> str:
    workflow.sleep_for(f"{days} days")
    return "trial over"


def approval() -> Any:
    return workflow.wait_for("approve", timeout="1 day")


def slow_job() -> str:
    workflow.sleep_for("2 hours")
    return "done"


def test_skip_time_fires_timers_now(memflow: MemFlow, run_worker: Any,
                                    pg_dsn: str) -> None:
    # The plugin's database is the suite's (HOTMESH_TEST_DSN or its throwaway).
    assert memflow.dsn == os.environ["HOTMESH_TEST_DSN"] == pg_dsn
    with run_worker(task_queue="q", workflows=[trial, approval, slow_job]) as w:
        sleeper = memflow.workflow.start(trial, [14], task_queue="q")
        waiter = memflow.workflow.start(approval, task_queue="q")
        timed = memflow.workflow.start(slow_job, task_queue="q", run_timeout="1 hour")
        for handle in (sleeper, waiter, timed):
            while handle.status() == "pending":
                time.sleep(0.02)  # its first activation queues the timer
        assert w.skip_time("1 day") >= 2  # the wait's timeout and the run deadline
        assert waiter.result(timeout=10) is None
        with pytest.raises(errors.WorkflowFailedError) as info:
            timed.result(timeout=10)
        assert info.value.code == 596
        assert sleeper.status() == "waiting"  # 14 days: not within one
        assert skip_time(memflow, "14 days") == 1
        assert sleeper.result(timeout=10) == "trial over"


def test_skip_time_refuses_bad_spans(memflow: MemFlow) -> None:
    for bad in (-1, "soon", float("inf")):
        with pytest.raises(ValueError):
            skip_time(memflow, bad)


def test_the_plugin_is_active_in_a_project_that_only_installs_the_package(
        tmp_path: Path, pg_dsn: str) -> None:
    (tmp_path / "test_project.py").write_text(textwrap.dedent("""
        from hotmesh_sync import workflow

        def nap() -> str:
            workflow.sleep_for("3 days")
            return "rested"

        def test_nap(memflow, run_worker):
            with run_worker(task_queue="q", workflows=[nap]) as w:
                handle = memflow.workflow.start(nap, task_queue="q")
                while handle.status() == "pending":
                    pass
                w.skip_time("3 days")
                assert handle.result(timeout=10) == "rested"
    """))
    env = dict(os.environ, HOTMESH_TEST_DSN=pg_dsn)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_project.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def report() -> str:
    return "report ready"


def test_skip_time_fires_each_schedule_tick_due_within_it(memflow: MemFlow,
                                                          run_worker: Any) -> None:
    memflow.schedules.create("hourly", cron="0 * * * *", workflow_name="report", args=[],
                             task_queue="q", overlap="allow")
    memflow.schedules.create("daily", cron="0 3 * * *", workflow_name="report", args=[],
                             task_queue="q", paused=True)
    first = memflow.schedules.get("hourly")["next_run_at"]
    with run_worker(task_queue="q", workflows=[report], schedules=False) as w:
        assert w.skip_time("3 hours") == 3
        started = sorted(r["id"] for r in memflow.workflow.list())
        assert len(started) == 3 and started[0] == f"hourly@{first}"
        for workflow_id in started:
            assert memflow.workflow.get_handle(workflow_id).result(timeout=10) == "report ready"
    assert memflow.schedules.get("hourly")["next_run_at"] > started[-1].split("@")[1]
