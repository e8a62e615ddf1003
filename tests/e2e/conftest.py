"""Fixtures for end-to-end tests: the CLI run as a subprocess, worker processes,
and app ids shared by a whole test module (their schemas dropped afterwards)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# The e2e workflow modules, the Django project and the Flask app import from here,
# whatever pytest's import mode.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from e2e_support import Cli, WorkerFactory, WorkerProcess, cli_env, drop_schema  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than about ten seconds")


@pytest.fixture(scope="module")
def module_app_id(pg_dsn: str) -> Iterator[str]:
    """An app id shared by the tests of one module; its schema is dropped afterwards."""
    app = f"e2e_{uuid.uuid4().hex[:10]}"
    yield app
    drop_schema(pg_dsn, app)


@pytest.fixture(scope="module")
def cli(pg_dsn: str, module_app_id: str) -> Cli:
    """``cli("status", wid)`` runs ``python -m hotmesh_sync status wid --dsn .. --app-id ..``."""

    def run(*args: str, timeout: float = 60.0, app_id: str | None = None,
            dsn: str | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hotmesh_sync", *args,
                   "--dsn", dsn or pg_dsn, "--app-id", app_id or module_app_id]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=cli_env(), cwd=str(HERE), check=False)

    return run


@pytest.fixture
def worker_process(pg_dsn: str, module_app_id: str) -> Iterator[WorkerFactory]:
    """``worker_process("cli_flows", "--task-queue", "q")`` starts a worker subprocess;
    any still running when the test ends is killed."""
    started: list[WorkerProcess] = []

    def start(*args: str, app_id: str | None = None) -> WorkerProcess:
        process = WorkerProcess([*args, "--dsn", pg_dsn, "--app-id", app_id or module_app_id])
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()
