"""The library never prints: its events are stdlib ``logging`` records under ``hotmesh_sync``.

Each case runs a whole workflow (an activity that is retried once, a timer, an
entity command) in a fresh Python process, whose stdout and stderr are then
exactly what that program, not the library, chose to write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent

PROGRAM = '''
import logging
import sys

import structlog

{setup}

from hotmesh_sync import MemFlow, RetryPolicy, workflow

attempts = []


def add_one(x):
    attempts.append(x)
    if len(attempts) == 1:
        raise RuntimeError("the first attempt fails")  # a warning-level event: retrying
    return x + 1


acts = workflow.proxy_activities(
    activities=[add_one], retry=RetryPolicy(maximum_attempts=3, initial_interval="100ms"))


def logged_flow(x):
    y = acts.add_one(x)
    workflow.sleep_for("100ms")
    workflow.entity().merge({{"y": y}})
    return y


dsn, app_id = sys.argv[1], sys.argv[2]
with MemFlow.init(app_id=app_id, dsn=dsn, pool_size=4) as mf:
    with mf.worker("logging", workflows=[logged_flow], activities=[add_one], concurrency=2):
        handle = mf.workflow.start(logged_flow, [1], task_queue="logging")
        assert handle.result(timeout=60) == 2
        assert handle.state() == {{"y": 2}}
{after}
print("done")
'''


def run_program(tmp_path: Path, pg_dsn: str, app_id: str, setup: str = "",
                after: str = "") -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM.format(setup=setup, after=after))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOTMESH_") and k not in ("DATABASE_URL", "PYTHONWARNINGS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, str(script), pg_dsn, app_id], capture_output=True,
                          text=True, timeout=120, env=env, cwd=str(tmp_path), check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("setup", [
    "",
    # An application's own structlog configuration (printing to stdout, as structlog's
    # default does) changes nothing for the library's events.
    "structlog.configure(processors=[structlog.processors.KeyValueRenderer()],\n"
    "                    logger_factory=structlog.PrintLoggerFactory(sys.stdout))",
], ids=["nothing-configured", "app-configures-structlog"])
def test_a_workflow_run_prints_nothing(tmp_path: Path, pg_dsn: str, app_id: str,
                                       setup: str) -> None:
    """Without a logging configuration nothing reaches stdout or stderr, warnings neither."""
    done = run_program(tmp_path, pg_dsn, app_id, setup)
    assert done.stdout == "done\n"
    assert done.stderr == ""


def test_a_logging_configuration_shows_the_events(tmp_path: Path, pg_dsn: str,
                                                  app_id: str) -> None:
    """logging.basicConfig shows the lifecycle events with their fields, on its stream
    (stderr), under logger names in hotmesh_sync, and leaves stdout to the program."""
    setup = ("logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,\n"
             "                    format='%(levelname)s %(name)s %(message)s')")
    # The app's own structlog loggers keep the app's (default) configuration.
    after = "structlog.get_logger().info('app_event')"
    done = run_program(tmp_path, pg_dsn, app_id, setup, after)
    lines = done.stderr.splitlines()
    ours = [line.split(" ", 2) for line in lines if " hotmesh_sync" in line]
    events = {message.split(" ", 1)[0] for _, _, message in ours}
    assert {"workflow_started", "activity_retrying", "workflow_completed"} <= events, lines
    assert all(name == "hotmesh_sync" or name.startswith("hotmesh_sync.")
               for _, name, _ in ours)
    started = next(message for _, _, message in ours if message.startswith("workflow_started"))
    assert "workflow_id=" in started and "workflow_name=logged_flow" in started
    retrying = next(line for line in ours if line[2].startswith("activity_retrying"))
    assert retrying[0] == "WARNING"
    assert done.stdout.splitlines()[-1] == "done"
    assert [line for line in done.stdout.splitlines() if "app_event" in line], done.stdout
    assert "workflow_" not in done.stdout


@pytest.mark.parametrize("command", [["ls"], ["status", "no-such-id"]])
def test_the_cli_logs_to_stderr_only(pg_dsn: str, app_id: str, command: list[str]) -> None:
    """hotmesh-sync --log-level debug: one JSON event per line on stderr, stdout untouched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTMESH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run(
        [sys.executable, "-m", "hotmesh_sync", "--log-level", "debug", *command,
         "--dsn", pg_dsn, "--app-id", app_id],
        capture_output=True, text=True, timeout=60, env=env, check=False)
    lines = done.stderr.splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    ready = [e for e in events if e["event"] == "memflow_ready"]
    assert ready and ready[0]["app_id"] == app_id and ready[0]["level"] == "debug", lines
    assert all(e["logger"].startswith("hotmesh_sync") for e in events)
    if command == ["ls"]:
        assert (done.returncode, done.stdout, len(events)) == (0, "(no workflows)\n", len(lines))
    else:
        assert (done.returncode, done.stdout) == (2, "")
        assert lines[-1] == f"hotmesh-sync: no workflow with id 'no-such-id' in app {app_id!r}"
        assert any(e["event"] == "command_refused" and "exception" in e for e in events)
