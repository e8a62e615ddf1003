"""Every ``hotmesh-sync`` command end to end, as subprocesses against a live worker process."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from e2e_support import Cli, WorkerProcess, cli_env, drop_schema, parsed, wait_until

from hotmesh_sync import cli as cli_module

QUEUE = "cli"
InProcess = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module", autouse=True)
def live_worker(pg_dsn: str, module_app_id: str) -> Iterator[WorkerProcess]:
    """One worker process serving cli_flows on QUEUE for the whole module."""
    process = WorkerProcess(["cli_flows", "--task-queue", QUEUE, "--concurrency", "4",
                             "--dsn", pg_dsn, "--app-id", module_app_id])
    process.wait_for_event("worker_ready")
    yield process
    assert process.stop() == 0


def new_id() -> str:
    return f"wf-{uuid.uuid4().hex[:8]}"


def test_start_wait_prints_the_result(cli: Cli) -> None:
    """start --wait prints a string result as is, and exits 0."""
    done = cli("start", "greet", "--args", '["Jane"]', "--task-queue", QUEUE, "--wait",
               "--timeout", "30")
    assert (done.returncode, done.stdout.strip()) == (0, "HELLO, JANE"), done.stderr


def test_start_wait_json(cli: Cli) -> None:
    """start --wait --json prints one JSON object with the id, status and result."""
    wid = new_id()
    done = cli("start", "echo", "--args", '[1, {"a": [true, null]}]', "--task-queue", QUEUE,
               "--id", wid, "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert parsed(done) == {"workflow_id": wid, "status": "completed",
                            "result": [1, {"a": [True, None]}]}


def test_start_prints_the_id_and_result_waits(cli: Cli) -> None:
    """start without --wait prints the new id; result ID then waits for the outcome."""
    started = cli("start", "echo", "--args", '"single"', "--task-queue", QUEUE)
    assert started.returncode == 0, started.stderr
    wid = started.stdout.strip()
    assert len(wid) == 32  # a uuid4 hex
    done = cli("result", wid, "--timeout", "30s", "--json")
    assert parsed(done)["result"] == ["single"]


def test_failed_workflow_exits_1(cli: Cli) -> None:
    """A failed workflow: exit 1 and one line on stderr, from start --wait and from result."""
    wid = new_id()
    done = cli("start", "fails", "--args", '["boom"]', "--task-queue", QUEUE, "--id", wid,
               "--wait")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "failed [598] ValueError: boom" in done.stderr
    again = cli("result", wid, "--json")
    assert again.returncode == 1
    assert parsed(again) == {"workflow_id": wid, "status": "failed", "error": {
        "code": 598, "error_type": "ValueError", "message": "boom"}}
    assert cli("status", wid).stdout.strip() == "failed"


def test_status_ls_entity_steps(cli: Cli) -> None:
    """A finished workflow as status, ls (human and JSON), entity (whole and a path) and steps."""
    wid, label = new_id(), f"e-{uuid.uuid4().hex[:6]}"
    started = cli("start", "remember", "--args", '["colour", "blue"]', "--task-queue", QUEUE,
                  "--id", wid, "--entity", label, "--search", '{"tier": "gold"}', "--wait")
    assert started.returncode == 0, started.stderr

    status = cli("status", wid, "--json")
    row = parsed(status)
    assert (row["workflow_id"], row["status"], row["entity"], row["workflow_name"]) == (
        wid, "completed", label, "remember")
    assert cli("status", wid).stdout == "completed\n"

    listed = parsed(cli("ls", "--entity", label, "--json"))
    assert [(r["id"], r["status"], r["task_queue"]) for r in listed] == [
        (wid, "completed", QUEUE)]
    table = cli("ls", "--entity", label).stdout.splitlines()
    assert table[0].split() == ["ID", "WORKFLOW", "QUEUE", "ENTITY", "STATUS", "CREATED"]
    assert table[1].split()[:5] == [wid, "remember", QUEUE, label, "completed"]
    assert parsed(cli("ls", "--status", "failed", "--entity", label, "--json")) == []

    document = {"tier": "gold", "colour": "blue", "log": ["colour"]}
    assert parsed(cli("entity", wid, "--json"))["value"] == document
    assert json.loads(cli("entity", wid).stdout) == document
    assert parsed(cli("entity", wid, "log.0", "--json")) == {
        "workflow_id": wid, "path": "log.0", "value": "colour"}

    steps = parsed(cli("steps", wid, "--json"))
    assert [(s["kind"], s["name"]) for s in steps] == [
        ("entity", "merge"), ("entity", "append"), ("entity", "get")]
    human = cli("steps", wid).stdout.splitlines()
    assert human[0].split()[:3] == ["#", "KIND", "NAME"] and len(human) == 4


def test_signal_and_interrupt(cli: Cli) -> None:
    """signal reaches a waiting workflow; interrupt cancels one (result then exits 1)."""
    signalled, cancelled = new_id(), new_id()
    for wid in (signalled, cancelled):
        assert cli("start", "waits_for_go", "--task-queue", QUEUE, "--id", wid).returncode == 0
    wait_until(lambda: cli("status", signalled).stdout.strip() == "waiting")

    sent = cli("signal", signalled, "go", "--data", '{"x": 1}', "--json")
    assert parsed(sent) == {"workflow_id": signalled, "signal_id": "go", "reached": 1}
    assert parsed(cli("result", signalled, "--timeout", "30", "--json"))["result"] == {"x": 1}
    assert parsed(cli("entity", signalled, "got.x", "--json"))["value"] == 1

    stopped = cli("interrupt", cancelled, "--reason", "changed my mind", "--json")
    # Its coordinator gets CancelledError in its worker (and could clean up):
    # the workflow is interrupted once that activation has run.
    assert parsed(stopped)["interrupted"] is True
    assert parsed(stopped)["status"] in ("waiting", "interrupted")
    outcome = cli("result", cancelled)
    assert outcome.returncode == 1
    assert "interrupted [410]" in outcome.stderr and "changed my mind" in outcome.stderr
    again = cli("interrupt", cancelled)
    assert (again.returncode, again.stdout.strip()) == (
        0, f"{cancelled} had already ended (interrupted)")


def test_force_interrupt_ends_at_once(cli: Cli) -> None:
    wid = new_id()
    cli("start", "waits_for_go", "--task-queue", QUEUE, "--id", wid)
    wait_until(lambda: cli("status", wid).stdout.strip() == "waiting")
    stopped = cli("interrupt", wid, "--force", "--json")
    assert parsed(stopped) == {"workflow_id": wid, "interrupted": True,
                               "status": "interrupted"}


def test_runs_steps_of_a_run_restart_and_run_timeout(cli: Cli) -> None:
    wid = new_id()
    done = cli("start", "rounds", "--args", "[1, 3]", "--task-queue", QUEUE, "--id", wid,
               "--wait", "--timeout", "30")
    assert (done.returncode, done.stdout.strip()) == (0, "3")
    runs = parsed(cli("runs", wid, "--json"))
    assert [r["status"] for r in runs] == ["continued", "continued", "completed"]
    human = cli("runs", wid).stdout.splitlines()
    assert human[0].split()[:3] == ["#", "RUN", "STATUS"] and len(human) == 4
    first = cli("steps", wid, "--run", runs[0]["run_id"], "--json")
    assert first.returncode == 0 and parsed(first) == []  # rounds records no steps
    again = cli("start", "rounds", "--args", "[5, 5]", "--task-queue", QUEUE, "--id", wid,
                "--if-exists", "restart", "--wait", "--timeout", "30")
    assert (again.returncode, again.stdout.strip()) == (0, "5")
    assert len(parsed(cli("runs", wid, "--json"))) == 4
    timed = cli("start", "waits_for_go", "--task-queue", QUEUE, "--run-timeout", "0.5s",
                "--wait", "--timeout", "30")
    assert timed.returncode == 1 and "[596]" in timed.stderr
    bad = cli("start", "echo", "--task-queue", QUEUE, "--run-timeout", "soon")
    assert bad.returncode == 2


def test_result_timeout_exits_1(cli: Cli) -> None:
    """result --timeout on a workflow that does not finish exits 1, saying it is still waiting."""
    wid = new_id()
    cli("start", "waits_for_go", "--task-queue", QUEUE, "--id", wid)
    done = cli("result", wid, "--timeout", "0.5", "--json")
    assert done.returncode == 1
    assert parsed(done)["timed_out"] is True
    assert "did not finish within 0.5s" in done.stderr
    cli("interrupt", wid)


@pytest.fixture
def in_process(pg_dsn: str, module_app_id: str,
               capsys: pytest.CaptureFixture[str]) -> Iterator[InProcess]:
    """``cli.main()`` called in this process (fast, for the many refusal cases):
    returns (exit status, stdout, stderr)."""

    logger = logging.getLogger("hotmesh_sync")
    saved = (logger.level, list(logger.handlers))

    def run(*args: str) -> tuple[int, str, str]:
        status = cli_module.main([*args, "--dsn", pg_dsn, "--app-id", module_app_id])
        out, err = capsys.readouterr()
        return status, out, err

    yield run
    # main() configured the hotmesh_sync logger (level, a stderr handler): undo that
    # for the tests that follow in this process.
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]


def test_unknown_workflow_exits_2(cli: Cli, module_app_id: str) -> None:
    """An unknown id: exit 2 and one line naming it and the app searched."""
    done = cli("result", "no-such-id")
    assert done.returncode == 2
    assert done.stderr == (f"hotmesh-sync: no workflow with id 'no-such-id' in app "
                           f"{module_app_id!r}\n")


@pytest.mark.parametrize("command", [
    ["status", "no-such-id"], ["signal", "no-such-id", "go"], ["interrupt", "no-such-id"],
    ["entity", "no-such-id"], ["steps", "no-such-id"],
])
def test_every_command_refuses_an_unknown_id(in_process: InProcess, command: list[str]) -> None:
    """Every command that takes an id exits 2 with one line naming it when it is unknown."""
    status, out, err = in_process(*command)
    assert (status, out) == (2, "")
    assert err.startswith("hotmesh-sync: no workflow with id 'no-such-id' in app ")
    assert err.count("\n") == 1


def test_bad_usage_exits_2(cli: Cli) -> None:
    """Bad usage: exit 2 and a one-line reason (as a real process)."""
    done = cli("bogus")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "invalid choice: 'bogus'" in done.stderr


@pytest.mark.parametrize(("command", "reason"), [
    (["start", "echo", "--args", "[1,"], "--args is not valid JSON"),
    (["start", "echo", "--search", "[1]"], "--search must be a JSON object"),
    (["start", "echo", "--args", "[{1: 2}]"], "--args is not valid JSON"),
    (["start", "echo", "--timeout", "5"], "--timeout goes with --wait"),
    (["worker", "cli_flows"], "--task-queue"),
    (["worker", "no_such_module_xyz", "--task-queue", "q"], "cannot import 'no_such_module_xyz'"),
    (["worker", "cli_flows:nope", "--task-queue", "q"], "has no function 'nope'"),
    (["worker", "cli_flows", "--task-queue", "q", "--max-tasks", "0"], "--max-tasks"),
    (["purge", "--older-than", "soon"], "--older-than"),
    (["ls", "--limit", "0"], "--limit must be at least 1"),
    (["ls", "--status", "sleeping"], "invalid choice: 'sleeping'"),
    (["entity", "x", "a..b"], ""),
])
def test_refusals_exit_2(in_process: InProcess, command: list[str], reason: str) -> None:
    """Each kind of bad usage exits 2 with a one-line reason on stderr."""
    status, out, err = in_process(*command)
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and reason in err


def test_bad_app_id_exits_2(cli: Cli) -> None:
    done = cli("ls", app_id="not valid!")
    assert done.returncode == 2 and "app_id" in done.stderr


def test_duplicate_id_exits_2(cli: Cli) -> None:
    wid = new_id()
    assert cli("start", "echo", "--task-queue", QUEUE, "--id", wid, "--wait").returncode == 0
    again = cli("start", "echo", "--task-queue", QUEUE, "--id", wid)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_unreachable_database_exits_2(cli: Cli) -> None:
    done = cli("ls", dsn="host=127.0.0.1 port=1 user=nobody dbname=nothing connect_timeout=2")
    assert done.returncode == 2
    assert done.stderr.startswith("hotmesh-sync: cannot connect to PostgreSQL")
    assert done.stderr.count("\n") == 1


PSYCOPG_ERRORS = {name for name in dir(psycopg.errors)
                  if isinstance(getattr(psycopg.errors, name), type)}


@pytest.mark.parametrize(("args", "dsn", "app_id", "reason"), [
    (["ls", "--limit", "-1"], None, None, "--limit"),
    (["ls", "--limit", "100000000000000000000"], None, None, ""),
    (["ls"], "host=127.0.0.1 port=notaport", None, "port"),
    (["ls"], "nonsense===", None, "nonsense"),
    (["ls"], "postgresql://someone:s3cret@[::1", None, ""),
    (["ls"], None, "pg_x", "pg_x"),
    (["migrate"], None, "pg_x", "pg_x"),
], ids=["negative-limit", "huge-limit", "bad-port", "unparsable-dsn", "unparsable-uri",
        "reserved-app-id", "reserved-app-id-migrate"])
def test_bad_input_exits_2_without_a_database_error(
        cli: Cli, args: list[str], dsn: str | None, app_id: str | None, reason: str) -> None:
    """A malformed DSN, a value PostgreSQL refuses or a schema name it keeps: exit 2 and
    one line that names the problem, never a psycopg exception (nor a password)."""
    done = cli(*args, dsn=dsn, app_id=app_id)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.startswith("hotmesh-sync: ") and done.stderr.count("\n") == 1
    assert reason in done.stderr
    assert not any(f"{name}:" in done.stderr for name in PSYCOPG_ERRORS), done.stderr
    assert "s3cret" not in done.stderr


def test_migrate_and_purge(cli: Cli, pg_dsn: str) -> None:
    """migrate reports the schema version; purge removes finished workflows and says how many."""
    app = f"e2e_{uuid.uuid4().hex[:10]}"
    try:
        migrated = parsed(cli("migrate", "--json", app_id=app))
        assert migrated["schema"] == app and migrated["version"] >= 1
        assert cli("migrate", app_id=app).stdout == f"schema {app} is at version " \
                                                    f"{migrated['version']}\n"
    finally:
        drop_schema(pg_dsn, app)

    wid = new_id()
    assert cli("start", "echo", "--task-queue", QUEUE, "--id", wid, "--wait").returncode == 0
    kept = parsed(cli("purge", "--json"))  # the default keeps 7 days
    assert kept["purged"] == 0 and kept["older_than_seconds"] == 7 * 86400
    purged = cli("purge", "--older-than", "0s")
    assert purged.returncode == 0 and purged.stdout.startswith("purged ")
    assert int(purged.stdout.split()[1]) >= 1
    assert cli("status", wid).returncode == 2


def test_options_before_the_command(cli: Cli, pg_dsn: str, module_app_id: str) -> None:
    """--dsn, --app-id and --json are also accepted before the command name."""
    done = subprocess.run(
        [sys.executable, "-m", "hotmesh_sync", "--json", "--dsn", pg_dsn, "--app-id",
         module_app_id, "ls", "--limit", "1"],
        capture_output=True, text=True, timeout=60, env=cli_env(),
        check=False)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)


def test_environment_gives_the_dsn_and_app_id(pg_dsn: str, module_app_id: str) -> None:
    """Without --dsn/--app-id the CLI reads $HOTMESH_DSN and $HOTMESH_APP_ID."""
    env = dict(cli_env(), HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=module_app_id)
    done = subprocess.run([sys.executable, "-m", "hotmesh_sync", "start", "echo", "--args",
                           '["env"]', "--task-queue", QUEUE, "--wait", "--json"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == ["env"]


def test_demo_runs(cli: Cli, pg_dsn: str) -> None:
    """demo runs the lead's demo module when it is installed, against the given database."""
    pytest.importorskip("hotmesh_sync.demo")
    app = f"e2e_{uuid.uuid4().hex[:10]}"
    try:
        done = cli("demo", app_id=app, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "embedded PostgreSQL" not in done.stdout  # a DSN was given
        as_json = cli("demo", "--json", app_id=app, timeout=120)
        assert as_json.returncode == 0, as_json.stderr
        outcome = json.loads(as_json.stdout)  # one JSON value, nothing else
        assert outcome["app_id"] == app and len(outcome["workflows"]) == 2
        assert all(doc["status"] == "completed" for doc in outcome["workflows"].values())
    finally:
        drop_schema(pg_dsn, app)


def test_demo_missing_exits_2(monkeypatch: pytest.MonkeyPatch, in_process: InProcess) -> None:
    """Without hotmesh_sync.demo the demo command says so and exits 2."""
    monkeypatch.setitem(sys.modules, "hotmesh_sync.demo", None)  # makes the import fail
    status, out, err = in_process("demo")
    assert (status, out) == (2, "")
    assert "hotmesh_sync.demo is missing" in err
