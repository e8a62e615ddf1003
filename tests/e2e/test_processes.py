"""Several worker processes under one supervisor: ``hotmesh-sync worker --processes N``,
``Worker(processes=N)``, ``manage.py hotmesh_worker --processes N`` and
``flask hotmesh worker --processes N``. Real processes, real PostgreSQL.

Which process ran a step is shown by ``process_flows.rendezvous``: with one
thread per process, two rendezvous in flight at once need two processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import HERE, Cli, WorkerFactory, WorkerProcess, cli_env, wait_until

from hotmesh_sync import MemFlow, errors


@pytest.fixture(scope="module")
def memflow(pg_dsn: str, module_app_id: str) -> Iterator[MemFlow]:
    with MemFlow.init(module_app_id, pg_dsn, pool_size=2) as mf:
        yield mf


def events(worker: WorkerProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in list(worker.events) if e.get("event") == name]


def meet_in_pairs(mf: MemFlow, queue: str, folder: Path) -> set[int]:
    """Two rendezvous at once on ``queue``; the pids of the processes that ran them."""
    folder.mkdir()
    handles = [mf.workflow.start("rendezvous", [str(folder), 1], task_queue=queue)
               for _ in range(2)]
    return {int(h.result(timeout=90)) for h in handles}


def test_cli_processes_share_the_work_restart_and_drain(
        memflow: MemFlow, worker_process: WorkerFactory, tmp_path: Path) -> None:
    """Two children both work; a SIGKILLed one is started again and work goes on;
    SIGTERM to the supervisor lets an in-flight activity finish, then exits 0."""
    supervisor = worker_process("process_flows", "cli_flows", "--task-queue", "procs",
                                "--concurrency", "1", "--processes", "2")
    wait_until(lambda: len(events(supervisor, "worker_ready")) == 2, timeout=60)
    children = {e["pid"] for e in events(supervisor, "worker_process_started")}
    assert len(children) == 2 and supervisor.proc.pid not in children

    assert meet_in_pairs(memflow, "procs", tmp_path / "first") == children
    live = {w["pid"] for w in memflow.workers() if "procs" in w["task_queues"]}
    assert live == children

    killed = min(children)
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: len(events(supervisor, "worker_process_started")) == 3, timeout=60)
    [died] = events(supervisor, "worker_process_died")
    assert (died["pid"], died["exit"]) == (killed, "SIGKILL")
    now = {e["pid"] for e in events(supervisor, "worker_process_started")} - {killed}
    assert meet_in_pairs(memflow, "procs", tmp_path / "second") == now

    marker = tmp_path / "slow-started"
    slow = memflow.workflow.start("slow", [str(marker), 1.5], task_queue="procs")
    wait_until(marker.exists, timeout=60)
    assert supervisor.stop(timeout=60) == 0
    assert slow.result(timeout=1) == "slow step done"
    [drained] = events(supervisor, "worker_processes_drained")
    assert drained["failed"] is False
    assert not events(supervisor, "worker_process_killed")


def test_supervisor_dies_and_its_children_drain(worker_process: WorkerFactory) -> None:
    """A supervisor killed outright leaves no worker running unsupervised."""
    supervisor = worker_process("process_flows", "--task-queue", "orphans", "--processes", "2",
                                "--concurrency", "1")
    wait_until(lambda: len(events(supervisor, "worker_ready")) == 2, timeout=60)
    supervisor.proc.kill()
    supervisor.proc.wait()
    wait_until(lambda: len(events(supervisor, "supervisor_gone")) == 2, timeout=30)
    wait_until(lambda: len(events(supervisor, "worker_exited")) == 2, timeout=60)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_processes_is_usage_error(cli: Cli, value: str) -> None:
    done = cli("worker", "process_flows", "--task-queue", "never", "--processes", value)
    assert done.returncode == 2, done.stderr
    assert "--processes" in done.stderr
    assert "worker_process_started" not in done.stderr


def test_until_empty_children_exit_and_so_does_the_supervisor(
        cli: Cli, memflow: MemFlow) -> None:
    """Children that finish on their own (exit 0) are not replaced: the supervisor exits 0."""
    handles = [memflow.workflow.start("echo", [i], task_queue="procs-batch") for i in range(4)]
    done = cli("worker", "cli_flows", "--task-queue", "procs-batch", "--processes", "2",
               "--until-empty", timeout=120)
    assert done.returncode == 0, done.stderr
    assert [h.result(timeout=1) for h in handles] == [[i] for i in range(4)]
    assert done.stderr.count('"worker_process_exited"') == 2
    assert '"worker_process_died"' not in done.stderr


WORKER_SCRIPT = """
import sys

import process_flows
from hotmesh_sync import MemFlow

if __name__ == "__main__":  # each spawned process imports this file again
    dsn, app_id = sys.argv[1:]
    with MemFlow.init(app_id, dsn, pool_size=2) as mf:
        mf.worker("procs-api", [process_flows.rendezvous], concurrency=1, processes=2).run()
"""


def test_worker_processes_run_in_a_script(memflow: MemFlow, pg_dsn: str, module_app_id: str,
                                          tmp_path: Path) -> None:
    """``mf.worker(..., processes=2).run()``: two processes work; SIGTERM drains, exit 0."""
    script = tmp_path / "run_worker.py"
    script.write_text(WORKER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), pg_dsn, module_app_id],
                            env=cli_env(), cwd=str(HERE), stderr=subprocess.PIPE, text=True)
    try:
        pids = meet_in_pairs(memflow, "procs-api", tmp_path / "met")
        assert len(pids) == 2 and proc.pid not in pids
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_worker_processes_in_the_background(memflow: MemFlow, tmp_path: Path) -> None:
    """``with mf.worker(..., processes=2):`` supervises from a thread; leaving drains them."""
    import process_flows

    with memflow.worker("procs-bg", [process_flows.rendezvous], concurrency=1,
                        processes=2) as worker:
        assert worker.processes == 2
        pids = meet_in_pairs(memflow, "procs-bg", tmp_path / "met")
        assert len(pids) == 2 and os.getpid() not in pids
    assert worker.stop() == []  # stopped already: nothing was killed


def test_worker_processes_refuse_what_a_process_cannot_import(memflow: MemFlow) -> None:
    def nested(x: int) -> int:
        return x

    with pytest.raises(errors.ConfigurationError, match="'nested' cannot be"):
        memflow.worker("procs-bad", {"nested": nested}, processes=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="processes must be a whole number"):
            memflow.worker("procs-bad", [], processes=bad)


# --- Django and Flask: their worker commands run the same supervisor ----------------

def test_django_command_runs_processes(memflow: MemFlow, pg_dsn: str,
                                       module_app_id: str) -> None:
    pytest.importorskip("django")
    env = dict(cli_env(), DJANGO_SETTINGS_MODULE="e2e_shop.settings", E2E_SHOP_DSN=pg_dsn,
               E2E_SHOP_APP_ID=module_app_id)
    handles = [memflow.workflow.start("ping", [i], task_queue="procs-django") for i in range(3)]

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "django", "hotmesh_worker", *args],
                              cwd=str(HERE), env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    done = manage("--task-queue", "procs-django", "--processes", "2", "--until-empty")
    assert done.returncode == 0, done.stderr
    assert [h.result(timeout=1) for h in handles] == [0, 1, 2]
    assert done.stderr.count('"worker_process_started"') == 2
    refused = manage("--task-queue", "procs-django", "--processes", "0")
    assert refused.returncode == 2
    assert "--processes must be at least 1" in refused.stderr


def test_flask_command_runs_processes(memflow: MemFlow, pg_dsn: str,
                                      module_app_id: str) -> None:
    pytest.importorskip("flask")
    app = f"e2e_flask_app:create_app(HOTMESH_DSN={pg_dsn!r}, HOTMESH_APP_ID={module_app_id!r})"
    handles = [memflow.workflow.start("ping", [i], task_queue="procs-flask") for i in range(3)]

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flask", "--app", app, "hotmesh", "worker",
                               "--task-queue", "procs-flask", *args], cwd=str(HERE),
                              env=cli_env(), capture_output=True, text=True, timeout=120,
                              check=False)

    done = flask("--processes", "2", "--until-empty")
    assert done.returncode == 0, done.stderr
    assert [h.result(timeout=1) for h in handles] == [0, 1, 2]
    assert done.stderr.count('"worker_process_started"') == 2
    refused = flask("--processes", "0")
    assert refused.returncode == 2 and "--processes" in refused.stderr
