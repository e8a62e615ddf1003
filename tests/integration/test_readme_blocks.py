"""Every fenced block of README.md, run as written where it can be, against a real
PostgreSQL; the ones that cannot run are listed with the reason.

What happens to each block is in ``readme_plans.PLANS``, keyed by the heading the
block sits under and its position there. A block without a plan fails
``test_every_block_has_a_plan``, as does a plan whose block is gone or changed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from readme_blocks import (
    README,
    Block,
    block,
    check_command,
    commands,
    fresh_database,
    read_blocks,
    run_command,
    shell_env,
)
from readme_plans import (
    COMMON_IMPORTS,
    NOT_ON_PYPI,
    PLANS,
    TEST_SUITE,
    ByTest,
    InProcess,
    Run,
    Shell,
    Sql,
    Text,
    run_code,
    run_part,
    split,
)

from hotmesh_sync import MemFlow, errors, workflow

HERE = Path(__file__).resolve().parent


def _keys(kind: type) -> list[tuple[str, int]]:
    return [key for key, plan in PLANS.items() if isinstance(plan, kind)]


def _id(key: tuple[str, int]) -> str:
    return f"{key[0].lstrip('# ')}-{key[1]}"


def _code(key: tuple[str, int], **values: str) -> str:
    """The block's code with its plan's replacements made (each must apply)."""
    plan = PLANS[key]
    code = block(*key).code
    for old, new in getattr(plan, "replace", ()):
        assert old in code, f"{_id(key)}: the replaced text {old!r} is no longer in the block"
        for name, value in values.items():
            new = new.replace("{" + name + "}", value)
        code = code.replace(old, new)
    return code


# --- the accounting -------------------------------------------------------------------------

def plan_problems(blocks: list[Block]) -> list[str]:
    """What is wrong between README's blocks and PLANS: blocks without a plan, plans
    without a block, plans whose block changed under them."""
    found = {b.key: b for b in blocks}
    problems = [f"{b}: no test runs it and readme_plans.PLANS does not list it (run it, or "
                "list it with the reason it cannot run)" for key, b in found.items()
                if key not in PLANS]
    problems += [f"PLANS names {_id(key)}, which README.md no longer has"
                 for key in PLANS if key not in found]
    for key, plan in PLANS.items():
        if key not in found:
            continue
        here = found[key]
        if here.lang != plan.lang:
            problems.append(f"{here}: planned as {plan.lang!r}")
        if plan.contains not in here.code:
            problems.append(f"{here} no longer contains {plan.contains!r}: was another "
                            "block moved here?")
        if isinstance(plan, ByTest) and not callable(globals().get(plan.test)):
            problems.append(f"{here}: no test named {plan.test}")
        if isinstance(plan, Shell):
            listed = commands(here.code)
            problems += [f"{here}: no command starts with {prefix!r}"
                         for prefix, _ in plan.skip if not any(c.startswith(prefix)
                                                                for c in listed)]
    return problems


def test_every_block_has_a_plan() -> None:
    problems = plan_problems(read_blocks())
    assert not problems, "\n".join(problems)
    for key, plan in PLANS.items():
        if isinstance(plan, InProcess):  # its replacements apply, its parts are found
            split(_code(key, app_id="a", schema="s"), plan.parts)


def test_a_new_block_or_a_lost_one_is_caught() -> None:
    text = README.read_text(encoding="utf-8")
    added = read_blocks(text + "\n## A new section\n\n```python\nprint('hi')\n```\n")
    assert plan_problems(added) == [
        f"README.md:{added[-1].line} '## A new section' block 0 (python): no test runs it "
        "and readme_plans.PLANS does not list it (run it, or list it with the reason it "
        "cannot run)"]
    lost = [b for b in read_blocks(text) if b.key != ("### cron", 0)]
    assert plan_problems(lost) == ["PLANS names cron-0, which README.md no longer has"]
    shifted = [b if b.key != ("## Django", 4) else
               Block(b.heading, b.index, b.lang, "print('moved')\n", b.line)
               for b in read_blocks(text)]
    [moved] = plan_problems(shifted)
    assert "no longer contains 'urlpatterns'" in moved


# --- python, in this process ----------------------------------------------------------------

@pytest.fixture
def run(pg_dsn: str, app_id: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """The prelude of every python block: the common imports and ``mf`` on the test's app;
    ``MemFlow.init()`` without a DSN finds the test database through $HOTMESH_DSN."""
    monkeypatch.setenv("HOTMESH_DSN", pg_dsn)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    mf = MemFlow.init(app_id=app_id, dsn=pg_dsn, pool_size=4)
    ns: dict[str, Any] = {"__name__": "readme_block"}
    run_code(COMMON_IMPORTS, ns)
    ns["mf"] = mf
    current = Run(mf, app_id, pg_dsn, ns)
    try:
        yield current
    finally:
        current.close()
        mf.close()


@pytest.mark.parametrize("key", _keys(InProcess), ids=_id)
def test_python_block(key: tuple[str, int], run: Run) -> None:
    plan = PLANS[key]
    assert isinstance(plan, InProcess)
    if plan.setup is not None:
        plan.setup(run)
    for part, code in split(_code(key, app_id=run.app_id, schema=run.schema), plan.parts):
        if part.before is not None:
            part.before(run)
        run_part(run, code, part)
    if plan.check is not None:
        plan.check(run)


@pytest.mark.parametrize("key", _keys(Text), ids=_id)
def test_text_block(key: tuple[str, int], run: Run) -> None:
    plan = PLANS[key]
    assert isinstance(plan, Text)
    plan.check(run, block(*key).code)


# --- SQL, with psql -------------------------------------------------------------------------

def _populate(mf: MemFlow) -> None:
    """Workflows for the README's queries to find: a premium agent, one waiting, an order."""

    def agent(doc: dict[str, Any], wait: bool) -> str:
        workflow.entity().set(doc)
        if wait:
            workflow.wait_for("go")
        return "ok"

    with mf.worker("sql", {"agent": agent, "fulfil_order": agent}, poll_interval=1.0):
        started = [
            mf.workflow.start("agent", [{"status": "done", "confidence": 0.9, "isPremium": True},
                                        False], task_queue="sql", workflow_id="agent-premium",
                              entity="research-agent"),
            mf.workflow.start("agent", [{"status": "asking", "confidence": 0.5}, True],
                              task_queue="sql", workflow_id="agent-waiting",
                              entity="research-agent"),
            mf.workflow.start("agent", [{"shipping": {"country": "NL"}}, False],
                              task_queue="sql", workflow_id="order-nl", entity="order"),
            mf.workflow.start("fulfil_order", [{}, True], task_queue="sql",
                              workflow_id="order-waiting", entity="order"),
        ]
        deadline = time.monotonic() + 30
        while {h.status() for h in started} - {"completed", "waiting"}:
            assert time.monotonic() < deadline, [h.status() for h in started]
            time.sleep(0.05)


@pytest.mark.parametrize("key", _keys(Sql), ids=_id)
def test_sql_block(key: tuple[str, int], pg_dsn: str, app_id: str, tmp_path: Path) -> None:
    plan = PLANS[key]
    assert isinstance(plan, Sql)
    with MemFlow.init(app_id=app_id, dsn=pg_dsn, pool_size=2) as mf:
        _populate(mf)
        schema = mf.schema
    script = tmp_path / "block.sql"
    code = block(*key).code
    assert "my_app." in code, "README's SQL names the schema my_app"
    script.write_text(code.replace("my_app.", f"{schema}."))
    psql = shutil.which("psql")
    assert psql is not None, "psql is needed to run README's SQL as a reader would"
    done = subprocess.run([psql, "-X", "-v", "ON_ERROR_STOP=1", "-d", pg_dsn, "-f", str(script)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for text in plan.expect:
        assert text in done.stdout, f"{text!r} not in the output:\n{done.stdout}"


# --- shell ----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", _keys(Shell), ids=_id)
def test_shell_block(key: tuple[str, int], pg_dsn: str, app_id: str, tmp_path: Path) -> None:
    plan = PLANS[key]
    assert isinstance(plan, Shell)
    cwd = plan.cwd or tmp_path
    ran = 0
    database = fresh_database(pg_dsn) if plan.fresh_database else nullcontext(pg_dsn)
    with database as dsn:
        env = shell_env(dsn, None if plan.fresh_database else app_id)
        for command in commands(block(*key).code):
            if any(command.startswith(prefix) for prefix, _ in plan.skip):
                continue
            check_command(command, env, cwd)
            ran += 1
    assert ran, "a shell plan that runs nothing should be a NotRun"


# --- blocks with tests of their own ---------------------------------------------------------

def test_the_shape_of_it_runs_twice_as_written(pg_dsn: str, app_id: str,
                                               tmp_path: Path) -> None:
    # The block's own app id, in a schema of the test's; run twice: a fixed id
    # must not fail the second time.
    code = block("## The shape of it").code.replace('app_id="my-app"', f'app_id="{app_id}"')
    script = tmp_path / "shape.py"
    script.write_text(code)
    env = dict(os.environ, HOTMESH_DSN=pg_dsn)
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=90, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "'status': 'completed'" in done.stdout
        assert "'optimistic': {'length': " in done.stdout


def test_try_it_as_a_newcomer(tmp_path: Path) -> None:
    """Both "Try it" blocks, in order, with no database configured: the demo starts the
    embedded server (in a data directory of the test's), the next block looks at it and
    stops it."""
    # /tmp, not tmp_path: as root the server runs as another user, who cannot enter
    # root's private pytest folders.
    data_dir = Path(tempfile.gettempdir()) / f"hotmesh-readme-{uuid.uuid4().hex[:12]}"
    env = shell_env(None, None, HOTMESH_DATA_DIR=str(data_dir))
    skip = {"python3 -m venv": NOT_ON_PYPI, "python -m pytest": TEST_SUITE}
    expected = {"hotmesh-sync demo": "Both workflows completed",
                "hotmesh-sync server status": "running",
                'psql "$(hotmesh-sync server url)"': "(2 rows)",
                "hotmesh-sync server stop": "stopped"}
    ran = []
    try:
        for index in (0, 1):
            for command in commands(block("## Try it: two commands", index).code):
                if any(command.startswith(prefix) for prefix in skip):
                    continue
                done = check_command(command, env, tmp_path, timeout=300)
                [want] = [v for k, v in expected.items() if command.startswith(k)]
                assert want in done.stdout, f"{command}: {want!r} not in\n{done.stdout}"
                ran.append(command)
        assert len(ran) == len(expected)
    finally:
        run_command("hotmesh-sync server stop", env, tmp_path)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_testing_block_passes_under_pytest(pg_dsn: str, tmp_path: Path) -> None:
    """The block is a test module of a project that installed the package: pytest runs it."""
    (tmp_path / "test_trial.py").write_text(block("## Testing your workflows").code)
    env = dict(os.environ, HOTMESH_TEST_DSN=pg_dsn)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_trial.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def _make_shop(where: Path, init: str = "") -> None:
    """``<where>/shop``: a package whose ``workflows`` module is readme_shop.py."""
    (where / "shop").mkdir()
    (where / "shop" / "__init__.py").write_text(init)
    shutil.copy(HERE / "readme_shop.py", where / "shop" / "workflows.py")


class _Background:
    """A long-running README command (a worker), stopped with SIGTERM as systemd would."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path) -> None:
        self.log = cwd / f"background-{uuid.uuid4().hex[:6]}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(["bash", "-c", "exec " + command], env=env,
                                            cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def wait_serving(self, mf: MemFlow, queue: str) -> None:
        deadline = time.monotonic() + 30
        while not any(queue in w["task_queues"] for w in mf.workers()):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker did not come up"
            time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def _failed_order_41(mf: MemFlow, queue: str) -> None:
    """order-41: failed, because its product was missing (a file the test then removes)."""
    handle = mf.workflow.start("fulfil_order", [41], task_queue=queue, workflow_id="order-41")
    with pytest.raises(errors.WorkflowFailedError):
        handle.result(timeout=30)


def test_the_command_line_block(pg_dsn: str, app_id: str, tmp_path: Path) -> None:
    """The block's commands in order, against a worker that its own line starts
    (``hotmesh-sync worker shop.workflows``, with readme_shop.py as shop.workflows).
    Before the first command that names them, the test makes what the block assumes:
    order-41 failed (its retry then succeeds) and poller-1 with two runs."""
    _make_shop(tmp_path)
    (tmp_path / "missing-41").touch()
    env = shell_env(pg_dsn, app_id)
    skip = {"export HOTMESH_DSN=": "the test sets HOTMESH_DSN to its own database",
            "export HOTMESH_APP_ID=": "the test sets HOTMESH_APP_ID to its own app"}
    worker: _Background | None = None
    outputs: dict[str, str] = {}
    try:
        with MemFlow.init(app_id=app_id, dsn=pg_dsn, pool_size=2) as mf:
            run_id = ""
            for command in commands(block("## The command line").code):
                if any(command.startswith(prefix) for prefix in skip):
                    continue
                if command.startswith("hotmesh-sync worker "):
                    worker = _Background(command, env, tmp_path)
                    worker.wait_serving(mf, "orders")
                    _failed_order_41(mf, "orders")
                    (tmp_path / "missing-41").unlink()
                    poller = mf.workflow.start("poller", task_queue="orders",
                                               workflow_id="poller-1")
                    assert poller.result(timeout=30) == 1
                    run_id = poller.runs()[0]["run_id"]
                    continue
                outputs[command] = check_command(command.replace("RUN_ID", run_id), env,
                                                 tmp_path).stdout
            assert mf.workflow.get_handle("order-42").state()["approved_by"] == "jane"
        assert worker is not None and worker.stop() == 0, worker and worker.log.read_text()
    finally:
        if worker is not None and worker.process.poll() is None:
            worker.stop()
    shown = {command.split(" --")[0]: out for command, out in outputs.items()}
    assert '"shipped": true' in shown["hotmesh-sync result order-42"]
    assert shown["hotmesh-sync entity order-42 shipping.address"].strip() == '"1 Main Street"'
    assert '"shipped": true' in shown["hotmesh-sync retry order-41"]
    assert "continued" in shown["hotmesh-sync runs poller-1"]


def test_the_command_line_transcript(pg_dsn: str, app_id: str, tmp_path: Path) -> None:
    """The console block: each ``$`` command run, its shown lines printed (stdout or
    stderr), nothing else on stdout, and ``echo $?`` the status the command exited with."""
    _make_shop(tmp_path)
    (tmp_path / "missing-41").touch()
    env = shell_env(pg_dsn, app_id)
    entries: list[tuple[str, list[str]]] = []
    for line in block("## The command line", 1).code.splitlines():
        if line.startswith("$ "):
            entries.append((line[2:], []))
        elif line.strip():
            entries[-1][1].append(line)
    worker = _Background("hotmesh-sync worker shop.workflows --task-queue default", env, tmp_path)
    try:
        with MemFlow.init(app_id=app_id, dsn=pg_dsn, pool_size=2) as mf:
            worker.wait_serving(mf, "default")
            _failed_order_41(mf, "default")
        status: int | None = None
        for command, shown in entries:
            if command == "echo $?":
                assert shown == [str(status)]
                continue
            done = run_command(command, env, tmp_path, timeout=60)
            status = done.returncode
            printed = done.stdout.splitlines() + done.stderr.splitlines()
            for line in shown:
                assert line in printed, f"$ {command}\nshown: {line}\nprinted: {printed}"
            assert set(done.stdout.splitlines()) <= set(shown), done.stdout
        assert worker.stop() == 0, worker.log.read_text()
    finally:
        if worker.process.poll() is None:
            worker.stop()


def test_the_flask_blocks(pg_dsn: str, app_id: str, tmp_path: Path) -> None:
    """The package layout, ``shop/__init__.py`` as written (its DSN and app id the
    test's), its migrate and worker commands, and a request to its view."""
    layout = block("## Flask", 1).code
    assert {"shop/", "__init__.py", "workflows.py"} <= {line.split()[0] for line in
                                                        layout.splitlines() if line.strip()}
    init = block("## Flask", 2).code
    for old, new in (('HOTMESH_DSN="postgresql://shop@db/shop"', f'HOTMESH_DSN="{pg_dsn}"'),
                     ('HOTMESH_APP_ID="shop"', f'HOTMESH_APP_ID="{app_id}"')):
        assert old in init
        init = init.replace(old, new)
    _make_shop(tmp_path, init)
    env = shell_env(None, None)  # the app's config names the database
    skip = {"flask --app shop hotmesh worker --max-tasks": "a cron-style worker that runs "
            "for up to 4 minutes; tests/e2e/test_flask_ext.py runs it with limits"}
    worker: _Background | None = None
    request = ("from shop import create_app\n"
               "response = create_app().test_client().post('/orders/7')\n"
               "print(response.status_code, response.get_json()['workflow_id'])\n")
    try:
        with MemFlow.init(app_id=app_id, dsn=pg_dsn, pool_size=2) as mf:
            for command in commands(block("## Flask", 3).code):
                if any(command.startswith(prefix) for prefix in skip):
                    continue
                if command == "flask --app shop hotmesh worker":
                    worker = _Background(command, env, tmp_path)
                    worker.wait_serving(mf, "orders")
                    continue
                check_command(command, env, tmp_path)
            assert worker is not None
            done = check_command(f'python -c "{request}"', env, tmp_path)
            status_code, workflow_id = done.stdout.split()
            assert status_code == "202"
            assert mf.workflow.get_handle(workflow_id).result(timeout=30) == {"shipped": True}
        assert worker.stop() == 0, worker.log.read_text()
    finally:
        if worker is not None and worker.process.poll() is None:
            worker.stop()
