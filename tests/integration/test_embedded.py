"""The embedded PostgreSQL: created on demand, reused, restarted, shared safely, thrown away."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from hotmesh_sync import embedded
from hotmesh_sync.errors import ConfigurationError


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh HOTMESH_DATA_DIR; its server is stopped and its files removed afterwards."""
    # Not pytest's tmp_path: under root the server runs as another user, which
    # cannot enter root's private pytest folders. /tmp is open to everyone.
    path = Path(tempfile.gettempdir()) / f"hotmesh-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("HOTMESH_DATA_DIR", str(path))
    yield path
    _stop_server(path)
    shutil.rmtree(path, ignore_errors=True)


def _postmaster_pid(path: Path) -> int:
    return int((path / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def _stop_server(path: Path) -> None:
    """What `pg_ctl stop -m fast` does: SIGINT, then wait for the pid file to go."""
    pid_file = path / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return
    os.kill(_postmaster_pid(path), signal.SIGINT)
    deadline = time.monotonic() + 60
    while pid_file.exists():
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.05)


def _select_one(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


def test_default_dsn_starts_a_server_that_answers(data_dir: Path) -> None:
    """The first call creates a cluster in HOTMESH_DATA_DIR and returns a working DSN."""
    dsn = embedded.default_dsn()
    assert _select_one(dsn) == 1
    assert (data_dir / "pgdata" / "PG_VERSION").exists()


def test_server_listens_on_its_unix_socket_only(data_dir: Path) -> None:
    """No TCP listener: the socket in the data directory is the only way in."""
    with psycopg.connect(embedded.default_dsn()) as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('max_connections')::int"
        ).fetchone()
    assert row == ("", 200)
    assert (data_dir / ".s.PGSQL.5432").is_socket()


def test_second_call_reuses_the_running_server(data_dir: Path) -> None:
    """A later call returns the same DSN without a new initdb or a restart."""
    first = embedded.default_dsn()
    pid, cluster_inode = _postmaster_pid(data_dir), (data_dir / "pgdata").stat().st_ino
    assert embedded.default_dsn() == first
    assert _postmaster_pid(data_dir) == pid
    assert (data_dir / "pgdata").stat().st_ino == cluster_inode


def test_stopped_server_is_started_again(data_dir: Path) -> None:
    """When the cluster exists but its server is down, the next call starts it."""
    dsn = embedded.default_dsn()
    old_pid = _postmaster_pid(data_dir)
    _stop_server(data_dir)
    with pytest.raises(psycopg.OperationalError):
        _select_one(dsn)
    assert embedded.default_dsn() == dsn
    assert _select_one(dsn) == 1
    assert _postmaster_pid(data_dir) != old_pid


def test_many_processes_share_one_new_server(data_dir: Path) -> None:
    """Four processes racing on a fresh data directory all succeed, and one server starts."""
    # Plain processes, not a Pool: a pool whose worker dies waits forever.
    spawn = multiprocessing.get_context("spawn")
    racers = [spawn.Process(target=embedded.default_dsn) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=120)
        if racer.is_alive():
            racer.kill()
    assert [racer.exitcode for racer in racers] == [0, 0, 0, 0]
    pid = _postmaster_pid(data_dir)
    assert _select_one(embedded.default_dsn()) == 1
    assert _postmaster_pid(data_dir) == pid
    assert (data_dir / "server.log").read_text().count("starting PostgreSQL") == 1
    assert not (data_dir / "pgdata.new").exists()


def test_server_errors_surface_with_the_server_log(data_dir: Path) -> None:
    """A server that fails to start raises ConfigurationError carrying its log."""
    embedded.default_dsn()
    _stop_server(data_dir)
    with open(data_dir / "pgdata" / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("max_connections = banana\n")
    with pytest.raises(ConfigurationError, match="banana"):
        embedded.default_dsn()


def test_no_binaries_raises_configuration_error(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no server binaries anywhere, the error says how to get a database."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(embedded, "BIN_SEARCH_PATTERNS", ())
    monkeypatch.setattr(embedded, "PREFER_PGSERVER", False)
    with pytest.raises(ConfigurationError) as caught:
        embedded.default_dsn()
    message = str(caught.value)
    assert "pip install 'hotmesh-sync[embedded]'" in message
    assert "install PostgreSQL" in message
    assert "HOTMESH_DSN" in message and "DATABASE_URL" in message


def test_resolve_dsn_prefers_the_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit DSN beats every variable."""
    monkeypatch.setenv("HOTMESH_DSN", "host=from-hotmesh-dsn")
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-database-url")
    assert embedded.resolve_dsn("host=given") == "host=given"


def test_resolve_dsn_prefers_hotmesh_dsn_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """$HOTMESH_DSN comes before $DATABASE_URL."""
    monkeypatch.setenv("HOTMESH_DSN", "host=from-hotmesh-dsn")
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-database-url")
    assert embedded.resolve_dsn(None) == "host=from-hotmesh-dsn"


def test_resolve_dsn_falls_back_to_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """$DATABASE_URL is used when $HOTMESH_DSN is unset or empty."""
    monkeypatch.setenv("HOTMESH_DSN", "")
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-database-url")
    assert embedded.resolve_dsn(None) == "postgresql://from-database-url"


def test_resolve_dsn_falls_back_to_the_embedded_default(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing configured, the embedded default server is used."""
    monkeypatch.delenv("HOTMESH_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    dsn = embedded.resolve_dsn(None)
    assert dsn == embedded.default_dsn()
    assert _select_one(dsn) == 1


def test_throwaway_server_runs_and_stop_deletes_it() -> None:
    """A throwaway server answers, skips fsync, keeps synchronous commit; stop() removes it."""
    with embedded.start_throwaway() as server:
        with psycopg.connect(server.dsn) as conn:
            row = conn.execute(
                "SELECT current_setting('fsync'), current_setting('synchronous_commit'),"
                " current_setting('max_connections')::int"
            ).fetchone()
        assert row == ("off", "on", 200)
        data_dir = server.data_dir
        assert data_dir.is_dir()
    assert not data_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        _select_one(server.dsn)
    server.stop()  # a second stop does nothing


def test_throwaway_in_a_deep_folder_puts_its_socket_in_tmp() -> None:
    """A data directory too deep for a Unix socket path gets its socket in a short /tmp folder."""
    base = Path(tempfile.mkdtemp(prefix="hotmesh-test-"))
    base.chmod(0o755)  # reachable by the server account when we are root
    deep = base / ("d" * 100)
    deep.mkdir(mode=0o755)
    try:
        with embedded.start_throwaway(deep) as server:
            socket_dir = Path(str(conninfo_to_dict(server.dsn)["host"]))
            assert socket_dir.parent == Path("/tmp")
            assert server.data_dir.parent == deep
            assert _select_one(server.dsn) == 1
        assert not socket_dir.exists()
        assert not list(deep.iterdir())
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("postgres (PostgreSQL) 16.2", "16"),
        ("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", "15"),
        ("postgres (PostgreSQL) 9.6.24", "9.6"),
        ("postgres (PostgreSQL) 17beta1", "17"),
    ],
)
def test_major_version_matches_pg_version_spelling(output: str, major: str) -> None:
    """`postgres --version` is read the way PG_VERSION spells a major version."""
    assert embedded._major_version(output) == major


def test_pgserver_binaries_are_preferred_when_installed() -> None:
    """With the `embedded` extra installed, a new cluster runs pgserver's bundled PostgreSQL."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        pytest.skip("pgserver is not installed (pip install 'hotmesh-sync[embedded]')")
    bundled = Path(spec.origin).parent / "pginstall" / "bin"
    shipped = subprocess.run(
        [str(bundled / "postgres"), "--version"], capture_output=True, text=True, check=True
    )
    with embedded.start_throwaway() as server:
        assert _select_one(server.dsn) == 1
        made_by = (server.data_dir / "pgdata" / "PG_VERSION").read_text().strip()
    assert made_by == embedded._major_version(shipped.stdout)
