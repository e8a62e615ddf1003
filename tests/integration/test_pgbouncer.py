"""Behind PgBouncer in transaction pooling mode (README "Behind PgBouncer").

Each test module starts a real PgBouncer (Debian's 1.18 here: no
protocol-level prepared statements) on a free loopback port in front of the
test PostgreSQL, with a small server pool so that clients share server
sessions. The client, the worker and its schedule thread go through it; the
wake-ups come from polling (``HOTMESH_PGBOUNCER=1`` alone) or from LISTEN on
a direct connection (``HOTMESH_LISTEN_DSN``). Workers poll only every minute
here, so a missing wake-up shows as a timeout, not as a slow pass.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hotmesh_sync import MemFlow, RetryPolicy, errors, workflow
from hotmesh_sync.schedule_spec import tick_workflow_id
from hotmesh_sync.settings import Settings
from hotmesh_sync.store.connect import make_pool, open_pool
from hotmesh_sync.store.listener import listener_for
from hotmesh_sync.store.queries import render

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
#: PgBouncer's server sessions for the test database: fewer than the clients.
SERVER_SESSIONS = 6
QUEUE = "bounced"
#: Seconds within which a wake-up must have come; the safety re-reads are slower
#: (5 s for result waiters, schedule threads; 60 s for the workers here).
PROMPT = 4.0


@dataclass
class Bouncer:
    dsn: str
    #: PgBouncer's own output, for a failing test's post-mortem.
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(server_host: str) -> list[str]:
    """PgBouncer refuses to run as root: then ``-u`` a user who may reach the
    server (the owner of its socket folder, else nobody)."""
    if os.geteuid() != 0:
        return []
    owner = "nobody"
    if server_host.startswith("/"):
        owner = pwd.getpwuid(os.stat(server_host).st_uid).pw_name
    return ["-u", owner]


def _write_config(folder: Path, server: dict[str, Any], port: int) -> Path:
    target = " ".join(f"{key}={value}" for key, value in server.items() if value)
    (folder / "users.txt").write_text(f'"{server["user"]}" ""\n')
    ini = folder / "pgbouncer.ini"
    ini.write_text("\n".join([
        "[databases]",
        f"hotmesh = {target}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = trust",
        f"auth_file = {folder / 'users.txt'}",
        "pool_mode = transaction",
        f"default_pool_size = {SERVER_SESSIONS}",
        "reserve_pool_size = 0",
        "max_client_conn = 500",
        # A client that cannot get a server session fails the test soon.
        "query_wait_timeout = 20",
        "",
    ]))
    for path in (folder, *folder.iterdir()):  # readable by the user it runs as
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ini


@pytest.fixture(scope="module")
def bouncer(pg_dsn: str) -> Iterator[Bouncer]:
    if not os.access(PGBOUNCER, os.X_OK):
        pytest.skip(f"no pgbouncer binary ({PGBOUNCER}); apt-get install pgbouncer")
    with psycopg.connect(pg_dsn) as conn:
        info = conn.info
        server = {"host": info.host, "port": info.port, "dbname": info.dbname,
                  "user": info.user, "password": info.password}
    folder = Path(tempfile.mkdtemp(prefix="hotmesh-pgbouncer-"))
    try:
        yield from _run_pgbouncer(folder, server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_pgbouncer(folder: Path, server: dict[str, Any]) -> Iterator[Bouncer]:
    port = _free_port()
    ini = _write_config(folder, server, port)
    log = folder / "pgbouncer.log"
    with log.open("wb") as out:
        process = subprocess.Popen([PGBOUNCER, *_run_as(str(server["host"])), str(ini)],
                                   stdout=out, stderr=subprocess.STDOUT)
    dsn = f"host=127.0.0.1 port={port} dbname=hotmesh user={server['user']} connect_timeout=5"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(dsn, prepare_threshold=None) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbouncer did not start:\n{log.read_text()}")
                time.sleep(0.1)
        yield Bouncer(dsn, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(params=["polling", "listen_dsn"])
def wakeups(request: pytest.FixtureRequest, pg_dsn: str,
            monkeypatch: pytest.MonkeyPatch) -> str:
    """HOTMESH_PGBOUNCER=1, with HOTMESH_LISTEN_DSN on the direct server or without."""
    monkeypatch.setenv("HOTMESH_PGBOUNCER", "1")
    monkeypatch.delenv("HOTMESH_POLL_SECONDS", raising=False)
    if request.param == "listen_dsn":
        monkeypatch.setenv("HOTMESH_LISTEN_DSN", pg_dsn)
    else:
        monkeypatch.delenv("HOTMESH_LISTEN_DSN", raising=False)
    return str(request.param)


def server_sessions(bouncer: Bouncer) -> list[tuple[int, int, str]]:
    """(backend pid, prepared statements, idle_in_transaction_session_timeout)
    of every server session PgBouncer has: as many clients as it has sessions,
    each inside a transaction, hold one each."""
    conns = [psycopg.connect(bouncer.dsn, prepare_threshold=None)
             for _ in range(SERVER_SESSIONS)]
    try:
        rows = []
        for conn in conns:  # not autocommit: each keeps its server session
            row = conn.execute(
                "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_prepared_statements),"
                " current_setting('idle_in_transaction_session_timeout')").fetchone()
            assert row is not None
            rows.append((int(row[0]), int(row[1]), str(row[2])))
        return rows
    finally:
        for conn in conns:
            conn.close()


def assert_sessions_clean(bouncer: Bouncer) -> None:
    """Nothing of ours outlived its transaction on PgBouncer's server sessions."""
    sessions = server_sessions(bouncer)
    assert len({pid for pid, _, _ in sessions}) == SERVER_SESSIONS
    assert [(prepared, timeout) for _, prepared, timeout in sessions] == \
        [(0, "0")] * SERVER_SESSIONS


# --- what runs -------------------------------------------------------------------

def shout(text: str) -> str:
    return text.upper()


acts = workflow.proxy_activities(
    activities=[shout], retry=RetryPolicy(maximum_attempts=2, initial_interval="100ms"))


def note(text: str, signal: str | None = None) -> dict[str, Any]:
    """A hook: writes to the shared entity, its return value is the signal."""
    workflow.entity().append("notes", acts.shout(text))
    return {"noted": text}


def journey(name: str) -> dict[str, Any]:
    loud = acts.shout(name)
    workflow.sleep_for("300ms")
    hooked = workflow.exec_hook(note, [name + "!"])
    workflow.entity().merge({"stage": "waiting"})
    approval = workflow.wait_for("approve")
    both = workflow.all(lambda: acts.shout("a"), lambda: acts.shout("b"))
    workflow.entity().merge({"stage": "done"})
    return {"loud": loud, "hooked": hooked, "approval": approval, "both": both}


def stamp(label: str) -> str:
    return f"ran {label}"


def start_worker(mf: MemFlow) -> None:
    # poll_interval: a worker that missed its wake-ups would sit out a minute.
    mf.worker(QUEUE, workflows=[journey, note, stamp], activities=[shout],
              concurrency=3, poll_interval=60.0).start()


# --- tests -----------------------------------------------------------------------

@pytest.mark.parametrize(("environ", "polling"), [
    ({}, False),
    ({"HOTMESH_PGBOUNCER": "1"}, True),
    ({"HOTMESH_PGBOUNCER": "yes", "HOTMESH_LISTEN_DSN": "host=direct"}, False),
    ({"HOTMESH_PGBOUNCER": "off", "HOTMESH_LISTEN_DSN": "host=direct"}, False),
])
def test_the_settings_choose_how_waiters_wake(environ: dict[str, str], polling: bool) -> None:
    """LISTEN on HOTMESH_LISTEN_DSN, else on the DSN unless it is PgBouncer: poll."""
    listener = listener_for("host=bouncer", "app", Settings.from_env(environ))
    try:
        assert listener.polling is polling
    finally:
        listener.close()


@pytest.mark.parametrize("environ", [{"HOTMESH_PGBOUNCER": "maybe"},
                                     {"HOTMESH_POLL_SECONDS": "0"},
                                     {"HOTMESH_POLL_SECONDS": "61"}])
def test_bad_pgbouncer_settings_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(errors.ConfigurationError):
        Settings.from_env(environ)


def test_a_workflow_runs_through_pgbouncer(bouncer: Bouncer, app_id: str,
                                           wakeups: str) -> None:
    """Activities, a sleep, a hook, wait_for + signal, workflow.all, entity
    commands, wait_until and result(): all through PgBouncer, all prompt."""
    with MemFlow.init(app_id=app_id, dsn=bouncer.dsn, pool_size=4) as mf:
        assert mf.listener.polling is (wakeups == "polling")
        start_worker(mf)
        handle = mf.workflow.start(workflow_name="journey", args=["ada"],
                                   task_queue=QUEUE, workflow_id="journey-1")
        document = handle.wait_until(lambda doc: doc.get("stage") == "waiting",
                                     timeout=15)
        assert document["notes"] == ["ADA!"]
        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(handle.result, 30)
            time.sleep(0.5)  # result() is waiting on its wake-up by now
            signalled = time.monotonic()
            assert handle.signal("approve", {"by": "grace"}) == 1
            result = outcome.result(timeout=30)
            took = time.monotonic() - signalled
        assert result == {"loud": "ADA", "hooked": {"noted": "ada!"},
                          "approval": {"by": "grace"}, "both": ["A", "B"]}
        assert took < PROMPT, f"result() came {took:.1f}s after the signal"
        assert handle.state() == {"notes": ["ADA!"], "stage": "done"}
        # Many workflows at once: the workers' wake-ups keep up.
        started = time.monotonic()
        handles = [mf.workflow.start(workflow_name="stamp", args=[str(i)], task_queue=QUEUE)
                   for i in range(20)]
        assert [h.result(timeout=30) for h in handles] == [f"ran {i}" for i in range(20)]
        assert time.monotonic() - started < 20
    assert_sessions_clean(bouncer)


def test_schedules_fire_through_pgbouncer(bouncer: Bouncer, app_id: str,
                                          wakeups: str) -> None:
    """A schedule made due wakes the worker's schedule thread (by polling, or
    by a NOTIFY sent through PgBouncer and heard on the direct connection)."""
    soon = (datetime.now(timezone.utc) + timedelta(hours=12)).replace(second=0, microsecond=0)
    latest = soon - timedelta(days=1)
    with MemFlow.init(app_id=app_id, dsn=bouncer.dsn, pool_size=4) as mf:
        mf.schedules.create("daily", cron=f"{soon.minute} {soon.hour} * * *",
                            workflow_name="stamp", args=["tick"], task_queue=QUEUE)
        start_worker(mf)
        time.sleep(1.0)  # the schedule thread has looked and sleeps its longest now
        made_due = time.monotonic()
        with psycopg.connect(bouncer.dsn, autocommit=True, prepare_threshold=None) as conn:
            conn.execute(render("UPDATE {schema}.schedules SET next_run_at = %s", mf.schema),
                         [latest])
            conn.execute("SELECT pg_notify(%s, 's:')", [f"hotmesh_{mf.schema}"])
        wanted = tick_workflow_id("daily", latest)
        while not any(row["id"] == wanted for row in mf.workflow.list(limit=10)):
            assert time.monotonic() - made_due < PROMPT, "the schedule did not fire"
            time.sleep(0.05)
        assert mf.workflow.get_handle(wanted).result(timeout=15) == "ran tick"
    assert_sessions_clean(bouncer)


def test_pool_settings_are_local_to_each_transaction(bouncer: Bouncer) -> None:
    """In PgBouncer mode a pool prepares nothing on the server and sets its idle
    timeout per transaction: none of it stays on the server sessions."""
    pool = make_pool(bouncer.dsn, 3, "hotmesh-test-bounced", idle_in_transaction=7.0,
                     pgbouncer=True)
    open_pool(pool)
    seen: list[str] = []

    def use() -> None:
        for _ in range(15):  # past psycopg's default threshold for preparing (5)
            with pool.connection() as conn, conn.transaction():
                row = conn.execute(
                    "SELECT current_setting('idle_in_transaction_session_timeout')").fetchone()
                with conn.transaction():  # a savepoint sets nothing again
                    conn.execute("SELECT 1")
                assert row is not None
                seen.append(str(row[0]))

    try:
        threads = [threading.Thread(target=use) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        with pool.connection() as conn:  # outside a transaction: the server default
            row = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
            assert row == ("0",)
    finally:
        pool.close()
    assert seen == ["7s"] * 45
    assert_sessions_clean(bouncer)
