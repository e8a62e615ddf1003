"""Helpers of the end-to-end tests (imported by conftest.py and the test modules):
the CLI's environment, worker subprocesses and their JSON log events, polling."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def drop_schema(dsn: str, app_id: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(app_id.lower().replace("-", "_"))))


def cli_env() -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout and tests/e2e importable, and
    no DSN or app id inherited, so that only the command line decides."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HOTMESH_DSN", "DATABASE_URL", "HOTMESH_APP_ID")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


Cli = Callable[..., "subprocess.CompletedProcess[str]"]


def parsed(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a --json command printed (failing the test with its stderr if none)."""
    assert result.stdout.strip(), f"no output; stderr: {result.stderr}"
    return json.loads(result.stdout)


class WorkerProcess:
    """``hotmesh-sync worker ...`` in a subprocess, with its JSON log lines collected."""

    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotmesh_sync", "worker", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
            cwd=str(HERE))
        self.events: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.other_lines.append(line)
                continue
            self.events.append(event)
            self._lines.put(event)

    def wait_for_event(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in list(self.events):
            if event.get("event") == name:
                return event
        while time.monotonic() < deadline:
            try:
                event = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event.get("event") == name:
                return event
        raise AssertionError(f"no {name!r} event within {timeout}s; exit code "
                             f"{self.proc.poll()}; saw {self.events} {self.other_lines}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status (killing it if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)


WorkerFactory = Callable[..., WorkerProcess]


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0,
               interval: float = 0.05) -> None:
    """Poll ``predicate`` until it holds (for states seen from outside a process)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
