"""`hotmesh-sync schedule ...` and `hotmesh-sync retry` end to end, against a live
worker process: the command line run as a subprocess, and (for the many small
checks) ``cli.main()`` called in this process."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Cli, WorkerProcess, parsed

from hotmesh_sync import cli as cli_module

QUEUE = "cli-sched"
InProcess = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module", autouse=True)
def live_worker(pg_dsn: str, module_app_id: str) -> Iterator[WorkerProcess]:
    """One worker process serving schedule_cli_flows on QUEUE for the whole module."""
    process = WorkerProcess(["schedule_cli_flows", "--task-queue", QUEUE, "--concurrency", "2",
                             "--dsn", pg_dsn, "--app-id", module_app_id])
    process.wait_for_event("worker_ready")
    yield process
    assert process.stop() == 0


@pytest.fixture
def run(pg_dsn: str, module_app_id: str,
        capsys: pytest.CaptureFixture[str]) -> Iterator[InProcess]:
    """``cli.main()`` in this process: (exit status, stdout, stderr)."""
    logger = logging.getLogger("hotmesh_sync")
    saved = (logger.level, list(logger.handlers))

    def main(*args: str) -> tuple[int, str, str]:
        status = cli_module.main([*args, "--dsn", pg_dsn, "--app-id", module_app_id])
        out, err = capsys.readouterr()
        return status, out, err

    yield main
    # main() configured the hotmesh_sync logger: undo that for the tests that follow.
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]


def as_json(done: tuple[int, str, str]) -> Any:
    status, out, err = done
    assert status == 0, err
    return json.loads(out)


def test_schedule_create_ls_get_pause_trigger_unpause_delete(cli: Cli, run: InProcess) -> None:
    made = cli("schedule", "create", "nightly", "--cron", "0 2 * * *", "--workflow", "stamp",
               "--task-queue", QUEUE, "--args", '["night"]', "--timezone", "Europe/Berlin",
               "--overlap", "allow", "--catchup-window", "1 hour", "--jitter", "5s", "--json")
    assert made.returncode == 0, made.stderr
    row = parsed(made)
    assert (row["id"], row["cron"], row["workflow_name"], row["args"], row["timezone"],
            row["overlap"], row["catchup_window"], row["jitter"], row["paused"]) == (
        "nightly", "0 2 * * *", "stamp", ["night"], "Europe/Berlin", "allow", 3600.0, 5.0, False)

    status, _, err = run("schedule", "create", "nightly", "--cron", "@daily", "--workflow",
                         "stamp")
    assert status == 2 and "a schedule with id 'nightly' already exists" in err
    status, out, err = run("schedule", "create", "nightly", "--cron", "0 2 * * *", "--workflow",
                           "stamp", "--task-queue", QUEUE, "--args", '["night"]', "--timezone",
                           "Europe/Berlin", "--if-exists", "update")
    assert status == 0, err
    assert out.startswith("schedule nightly (0 2 * * *, Europe/Berlin): next run ")

    listed = cli("schedule", "ls").stdout.splitlines()
    assert listed[0].split() == ["ID", "CRON", "TIMEZONE", "WORKFLOW", "QUEUE", "OVERLAP",
                                 "NEXT", "RUN", "(UTC)", "LAST", "WORKFLOW"]
    assert listed[1].split()[:2] == ["nightly", "0"]
    assert [s["id"] for s in as_json(run("schedule", "ls", "--json"))] == ["nightly"]
    assert as_json(run("schedule", "get", "nightly", "--json"))["overlap"] == "skip"

    assert run("schedule", "pause", "nightly")[:2] == (0, "paused schedule nightly\n")
    assert "paused" in run("schedule", "ls")[1].splitlines()[1].split()

    triggered = cli("schedule", "trigger", "nightly", "--json")
    workflow_id = parsed(triggered)["workflow_id"]
    assert workflow_id.startswith("nightly@") and workflow_id.endswith("+00:00")
    assert run("result", workflow_id, "--timeout", "30")[1].strip() == "ran night"
    assert as_json(run("schedule", "get", "nightly", "--json"))["last_workflow_id"] == (
        workflow_id)

    unpaused = as_json(run("schedule", "unpause", "nightly", "--json"))
    assert unpaused["paused"] is False and unpaused["next_run_at"] is not None

    assert run("schedule", "delete", "nightly")[:2] == (0, "deleted schedule nightly\n")
    status, _, err = run("schedule", "get", "nightly")
    assert status == 2 and "no schedule with id 'nightly'" in err
    assert run("schedule", "ls")[1].strip() == "(no schedules)"


@pytest.mark.parametrize(("options", "complaint"), [
    (["--cron", "0 2 * *"], "five fields"),
    (["--cron", "@fortnightly"], "unknown cron name"),
    (["--cron", "@daily", "--timezone", "Mars/Base"], "unknown timezone"),
    (["--cron", "@daily", "--catchup-window", "a while"], "duration"),
    (["--cron", "@daily", "--args", "[1"], "--args is not valid JSON"),
])
def test_schedule_create_refuses_bad_input(run: InProcess, options: list[str],
                                           complaint: str) -> None:
    status, _, err = run("schedule", "create", "bad", "--workflow", "stamp", *options)
    assert status == 2
    assert complaint in err and err.count("\n") == 1
    assert run("schedule", "get", "bad")[0] == 2  # nothing was written


def test_retry_resumes_a_failed_workflow(cli: Cli, run: InProcess, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    wid = f"wf-{uuid.uuid4().hex[:8]}"
    failed = cli("start", "needs_marker", "--args", f'["{marker}"]', "--task-queue", QUEUE,
                 "--id", wid, "--wait", "--timeout", "30")
    assert failed.returncode == 1 and "is missing" in failed.stderr
    marker.write_text("here")
    resumed = cli("retry", wid, "--wait", "--timeout", "30")
    assert (resumed.returncode, resumed.stdout.strip()) == (0, "marker found"), resumed.stderr
    assert as_json(run("retry", wid, "--json")) == {
        "workflow_id": wid, "resumed": False, "status": "completed"}
    assert run("retry", wid)[1].strip() == (
        f"{wid} has not failed (it is completed): nothing to retry")
    status, _, err = run("retry", "no-such-workflow")
    assert status == 2 and "no workflow with id" in err
