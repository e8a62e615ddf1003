"""The operations commands: workers, queue, server, --until-empty, and what the CLI
says about work that cannot run (API.md §13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from e2e_support import HERE, Cli, WorkerFactory, cli_env, parsed, wait_until


def new_id() -> str:
    return f"op-{uuid.uuid4().hex[:8]}"


def test_workers_lists_live_workers(cli: Cli, worker_process: WorkerFactory) -> None:
    assert cli("workers").stdout.strip() == "(no live workers)"
    process = worker_process("cli_flows", "--task-queue", "ops")
    process.wait_for_event("worker_ready")
    rows = parsed(cli("workers", "--json"))
    assert len(rows) == 1 and rows[0]["task_queues"] == ["ops"]
    assert "greet" in rows[0]["workflows"] and rows[0]["pid"] == process.proc.pid
    human = cli("workers").stdout.splitlines()
    assert human[0].split()[:2] == ["WORKER", "QUEUES"] and len(human) == 2
    assert process.stop() == 0
    assert parsed(cli("workers", "--json")) == []


def test_start_warns_when_nothing_would_run_it(cli: Cli, worker_process: WorkerFactory) -> None:
    lonely = cli("start", "greet", "--args", '["x"]', "--task-queue", "nobody-here")
    assert lonely.returncode == 0
    assert "no live worker serves queue 'nobody-here'" in lonely.stderr
    process = worker_process("cli_flows", "--task-queue", "ops-warn")
    process.wait_for_event("worker_ready")
    unknown = cli("start", "no_such_flow", "--task-queue", "ops-warn", "--id", (wid := new_id()))
    assert "no live worker of queue 'ops-warn' registers 'no_such_flow'" in unknown.stderr
    expected = "pending (waiting for a worker that registers 'no_such_flow' on queue 'ops-warn')"
    wait_until(lambda: cli("status", wid).stdout.strip() == expected)
    assert "no worker registers it" in cli("ls").stdout
    known = cli("start", "greet", "--args", '["y"]', "--task-queue", "ops-warn")
    assert known.returncode == 0 and "warning" not in known.stderr
    assert process.stop() == 0


def test_until_empty_drains_and_exits_0(cli: Cli, pg_dsn: str, module_app_id: str) -> None:
    ids = [new_id() for _ in range(3)]
    for wid in ids:
        cli("start", "greet", "--args", f'["{wid}"]', "--task-queue", "cron", "--id", wid)
    done = subprocess.run(
        [sys.executable, "-m", "hotmesh_sync", "worker", "cli_flows", "--task-queue", "cron",
         "--until-empty", "--dsn", pg_dsn, "--app-id", module_app_id],
        capture_output=True, text=True, timeout=120, env=cli_env(), cwd=str(HERE))
    assert done.returncode == 0, done.stderr
    for wid in ids:
        assert parsed(cli("result", wid, "--json"))["result"] == f"HELLO, {wid.upper()}"


def test_queue_set_and_ls(cli: Cli) -> None:
    assert cli("queue", "ls").stdout.strip() == "(no queue has limits)"
    out = parsed(cli("queue", "set", "mail", "--concurrency", "3", "--rate-limit", "10/second",
                     "--json"))
    assert out == {"name": "mail", "concurrency": 3, "rate_limit": "10/second",
                   "running": 0, "ready": 0}
    assert [r["name"] for r in parsed(cli("queue", "ls", "--json"))] == ["mail"]
    bad = cli("queue", "set", "mail", "--rate-limit", "fast")
    assert bad.returncode == 2 and "rate limit" in bad.stderr
    lifted = parsed(cli("queue", "set", "mail", "--json"))
    assert lifted["concurrency"] is None and lifted["rate_limit"] is None


def test_signal_to_an_ended_workflow_is_not_sent(cli: Cli, worker_process: WorkerFactory) -> None:
    process = worker_process("cli_flows", "--task-queue", "ops-sig")
    process.wait_for_event("worker_ready")
    wid = new_id()
    cli("start", "greet", "--args", '["z"]', "--task-queue", "ops-sig", "--id", wid, "--wait")
    sent = cli("signal", wid, "go")
    assert sent.returncode == 1
    assert f"workflow {wid!r} has ended (completed)" in sent.stderr
    assert process.stop() == 0


def test_an_unknown_id_names_the_app_searched(cli: Cli, module_app_id: str) -> None:
    missing = cli("status", "nope")
    assert missing.returncode == 2
    assert f"no workflow with id 'nope' in app {module_app_id!r}" in missing.stderr


def test_server_status_url_and_stop_of_a_server_never_started(tmp_path: Path) -> None:
    # A data directory of its own: the user's real embedded server is never touched.
    env = dict(cli_env(), HOTMESH_DATA_DIR=str(tmp_path / "pg"))

    def server(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotmesh_sync", "server", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    status = server("status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["running"] is False and state["created"] is False
    assert state["data_dir"] == str((tmp_path / "pg").resolve())
    url = server("url")
    assert url.returncode == 0 and url.stdout.strip() == state["dsn"]
    stop = server("stop")
    assert stop.returncode == 0 and "was not running" in stop.stdout
    assert not (tmp_path / "pg" / "pgdata").exists()  # status and url start nothing
    assert "never started" in server("status").stdout
    assert os.environ.get("HOTMESH_DATA_DIR") != str(tmp_path / "pg")
