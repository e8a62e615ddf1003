"""``hotmesh-sync worker`` as a process: graceful stop on signals, --max-tasks, --max-runtime."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from e2e_support import Cli, WorkerFactory, cli_env, parsed, wait_until


def test_sigterm_finishes_in_flight_work_and_exits_0(
        cli: Cli, worker_process: WorkerFactory, tmp_path: Path) -> None:
    """SIGTERM while an activity runs: the activity and its workflow finish, then exit 0."""
    marker = tmp_path / "started"
    worker = worker_process("cli_flows", "--task-queue", "graceful", "--concurrency", "2")
    worker.wait_for_event("worker_ready")
    wid = f"slow-{uuid.uuid4().hex[:8]}"
    started = cli("start", "slow", "--args", f'["{marker}", 1.5]', "--task-queue", "graceful",
                  "--id", wid)
    assert started.returncode == 0, started.stderr
    wait_until(marker.exists)

    assert worker.stop() == 0
    draining = worker.wait_for_event("worker_draining")
    assert draining["reason"] == "SIGTERM"
    assert parsed(cli("result", wid, "--timeout", "1", "--json"))["result"] == "slow step done"
    assert not any(e["event"] == "worker_handed_back" for e in worker.events)


def test_second_signal_stops_at_once(
        cli: Cli, worker_process: WorkerFactory, tmp_path: Path) -> None:
    """A second SIGTERM while draining ends the process without waiting for the activity."""
    marker = tmp_path / "started"
    worker = worker_process("cli_flows", "--task-queue", "impatient")
    worker.wait_for_event("worker_ready")
    cli("start", "slow", "--args", f'["{marker}", 30]', "--task-queue", "impatient")
    wait_until(marker.exists)
    worker.proc.send_signal(signal.SIGTERM)
    worker.wait_for_event("worker_draining")
    began = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == -signal.SIGTERM
    assert time.monotonic() - began < 5


def test_sigint_on_an_idle_worker_exits_0(worker_process: WorkerFactory) -> None:
    worker = worker_process("cli_flows", "--task-queue", "idle-int")
    worker.wait_for_event("worker_ready")
    worker.proc.send_signal(signal.SIGINT)
    assert worker.wait() == 0
    assert worker.wait_for_event("worker_draining")["reason"] == "SIGINT"


def test_max_tasks_drains_and_exits(cli: Cli, pg_dsn: str, module_app_id: str) -> None:
    """With --max-tasks 3 a worker does three of four queued workflows, and exits 0;
    its three threads race for the last task, and none takes a fourth."""
    label = f"batch-{uuid.uuid4().hex[:6]}"
    for i in range(4):
        assert cli("start", "echo", "--args", f"[{i}]", "--task-queue", "batch",
                   "--entity", label).returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "hotmesh_sync", "worker", "cli_flows", "--task-queue", "batch",
         "--concurrency", "3", "--max-tasks", "3", "--dsn", pg_dsn, "--app-id", module_app_id],
        capture_output=True, text=True, timeout=60, env=cli_env(), check=False)
    assert done.returncode == 0, done.stderr
    assert '"reason": "max_tasks"' in done.stderr
    statuses = sorted(row["status"] for row in parsed(cli("ls", "--entity", label, "--json")))
    assert statuses == ["completed", "completed", "completed", "pending"]


def test_max_runtime_exits_0_and_func_registers_one(
        worker_process: WorkerFactory) -> None:
    """--max-runtime ends an idle worker on time; MODULE:FUNC registers just that function."""
    began = time.monotonic()
    worker = worker_process("cli_flows:echo", "--task-queue", "short", "--max-runtime", "1s")
    assert worker.wait_for_event("worker_ready")["functions"] == ["echo"]
    assert worker.wait(timeout=30) == 0
    assert worker.wait_for_event("worker_draining")["reason"] == "max_runtime"
    assert time.monotonic() - began < 15
