"""The embedded default PostgreSQL: a server the library starts and owns.

With no DSN configured anywhere, ``resolve_dsn`` falls back to ``default_dsn``:
a cluster in the user's data folder, created on first use, started when it is
down, shared by every later process and left running when they exit. Tests use
``start_throwaway`` for a private cluster that ``stop()`` deletes again.

A data directory holds::

    <data_dir>/              owned by the server account, mode 0700
        .lock                flock'ed while a process checks, creates or starts the server
        pgdata/              the cluster; initdb writes pgdata.new, renamed once complete
        server.log           the server's own log
        .s.PGSQL.5432        the Unix socket, the only way in (listen_addresses = '')

Binaries come from the ``pgserver`` package when it is installed (it bundles a
PostgreSQL build), else from ``initdb``/``pg_ctl`` on PATH or in the usual
install folders. PostgreSQL refuses to run as root, so under root the server
runs as the ``postgres`` system user, or as a ``hotmesh`` user made for it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from hotmesh_sync.errors import ConfigurationError

from .settings import data_dir_from_env, dsn_from_env

__all__ = ["EmbeddedServer", "default_data_dir", "default_dsn", "resolve_dsn", "start_throwaway"]

#: Look for the binaries that the ``pgserver`` package bundles first.
#: Module-level so that tests (and odd installs) can change where we look.
PREFER_PGSERVER = True
#: Folders searched after PATH, in this order; within a pattern the newest version wins.
BIN_SEARCH_PATTERNS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG packages)
    "/usr/local/pgsql/bin",  # built from source
    "/opt/homebrew/opt/postgresql*/bin",  # Homebrew, Apple silicon
    "/usr/local/opt/postgresql*/bin",  # Homebrew, Intel
)

SUPERUSER = "postgres"
PORT = 5432  # with no TCP listener the port only names the socket file
_ROOT_SERVER_USERS = ("postgres", "hotmesh")  # the first that exists; the last is created
_SOCKET_PATH_MAX = 103  # AF_UNIX paths: 108 bytes on Linux, 104 on macOS, NUL included
_START_TIMEOUT_S = 60
_COMMAND_TIMEOUT_S = 120.0
_LOG_TAIL_LINES = 40

_DEFAULT_SETTINGS: Mapping[str, str] = {"listen_addresses": "''", "max_connections": "200"}
# A throwaway cluster never has to survive a crash, so skip the flushes that
# protect against one; synchronous_commit stays on so benchmarks stay honest.
_THROWAWAY_SETTINGS: Mapping[str, str] = {
    **_DEFAULT_SETTINGS,
    "fsync": "off",
    "full_page_writes": "off",
}

_NO_SERVER_MESSAGE = """\
no PostgreSQL to use: no DSN is configured and no PostgreSQL server binaries \
(initdb, pg_ctl, postgres) were found{details}. Any one of these fixes it:
  - pip install 'hotmesh-sync[embedded]'   (bundles a PostgreSQL server; Python < 3.13)
  - install PostgreSQL (apt-get install postgresql, dnf install postgresql-server, \
brew install postgresql)
  - set HOTMESH_DSN or DATABASE_URL to the DSN of a PostgreSQL database"""


def resolve_dsn(dsn: str | None) -> str:
    """The DSN to use: ``dsn``, else $HOTMESH_DSN, else $DATABASE_URL, else the embedded default."""
    if dsn is not None:
        return dsn
    # An empty variable counts as unset, as shells make them easily.
    return dsn_from_env() or default_dsn()


def default_data_dir() -> Path:
    """Where the embedded default keeps its cluster (see the module docstring)."""
    explicit = data_dir_from_env()
    if explicit:
        return Path(explicit).expanduser().resolve()
    if os.geteuid() == 0:
        # root's home is closed to the unprivileged user the server must run as.
        return Path("/var/lib/hotmesh_sync/postgres")
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return (base / "hotmesh_sync" / "postgres").resolve()


def default_dsn() -> str:
    """The DSN of this user's embedded server, creating or starting it when needed.

    Safe to call from many processes at once: one of them does the work while
    the others wait on a lock, then find the server up.
    """
    cluster = _Cluster(default_data_dir(), _server_account())
    if cluster.accepts_connections():
        return cluster.dsn
    cluster.prepare_data_dir()
    with _locked(cluster.lock_file):
        if not cluster.accepts_connections():
            _start_cluster(cluster, _DEFAULT_SETTINGS, ())
    return cluster.dsn


def default_server_state() -> dict[str, Any]:
    """What ``hotmesh-sync server status`` shows about this user's embedded
    server, without starting it: its data directory, DSN, whether it was
    ever created, and whether it runs (accepts connections) now."""
    cluster = _Cluster(default_data_dir(), _server_account())
    return {"data_dir": str(cluster.data_dir), "dsn": cluster.dsn,
            "created": (cluster.pgdata / "PG_VERSION").exists(),
            "running": cluster.accepts_connections(), "log": str(cluster.log)}


def stop_default_server() -> bool:
    """Stop this user's embedded server (its files stay); False when it was not running."""
    cluster = _Cluster(default_data_dir(), _server_account())
    version_file = cluster.pgdata / "PG_VERSION"
    if not version_file.exists():
        return False
    with _locked(cluster.lock_file):
        binaries = _find_binaries(cluster.account, version_file.read_text().strip(),
                                  cluster.pgdata)
        if not _is_running(binaries, cluster):
            return False
        stop = [binaries.path("pg_ctl"), "stop", "-w", "-s", "-m", "fast",
                "-D", str(cluster.pgdata)]
        _check(stop, cluster.account, what="stop the embedded PostgreSQL server",
               log=cluster.log)
    return True


def start_throwaway(base_dir: Path | None = None) -> EmbeddedServer:
    """Create and start a private cluster in a new temporary folder (for tests and benchmarks)."""
    account = _server_account()
    data_dir = Path(tempfile.mkdtemp(prefix="hotmesh-pg-", dir=base_dir)).resolve()
    cluster = _Cluster(data_dir, account)
    try:
        cluster.prepare_data_dir()
        with _locked(cluster.lock_file):
            binaries = _start_cluster(cluster, _THROWAWAY_SETTINGS, ("--no-sync",))
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return EmbeddedServer(cluster, binaries)


class EmbeddedServer:
    """A server that ``start_throwaway`` started; ``stop()`` shuts it down and deletes its files."""

    def __init__(self, cluster: _Cluster, binaries: _Binaries) -> None:
        self.dsn: str = cluster.dsn
        self.data_dir: Path = cluster.data_dir
        self._cluster = cluster
        self._binaries = binaries
        self._lock = threading.Lock()
        self._stopped = False
        # A process that forgets to stop it (or dies of an exception) still does at exit.
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the server and delete its data directory; calling it again does nothing."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        cluster, pg_ctl = self._cluster, self._binaries.path("pg_ctl")
        stop = [pg_ctl, "stop", "-w", "-s", "-m", "fast", "-D", str(cluster.pgdata)]
        code, output = _run(stop, cluster.account)
        if code != 0 and _is_running(self._binaries, cluster):
            raise ConfigurationError(
                f"could not stop the PostgreSQL server in {cluster.pgdata}:\n"
                f"{output.strip()}{_log_tail(cluster.log)}"
            )
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
        if cluster.socket_dir != cluster.data_dir:
            shutil.rmtree(cluster.socket_dir, ignore_errors=True)

    def restart(self) -> None:
        """Restart the server with ``pg_ctl restart -m fast``: every connection drops."""
        cluster, pg_ctl = self._cluster, self._binaries.path("pg_ctl")
        restart = [pg_ctl, "restart", "-w", "-s", "-m", "fast", "-D", str(cluster.pgdata),
                   "-l", str(cluster.log)]
        _check(restart, cluster.account, what="restart the PostgreSQL server", log=cluster.log)

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedServer(dsn={self.dsn!r})"


@dataclass(frozen=True)
class _Account:
    """The unprivileged OS user that runs the server when we are root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Binaries:
    """A folder holding initdb, pg_ctl and postgres of one PostgreSQL version."""

    bin_dir: Path
    major: str  # spelled as PG_VERSION spells it: "16", or "9.6"

    def path(self, program: str) -> str:
        return str(self.bin_dir / program)


@dataclass(frozen=True)
class _Cluster:
    """The files of one embedded server and the account that runs it (None: ourselves)."""

    data_dir: Path
    account: _Account | None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def lock_file(self) -> Path:
        return self.data_dir / ".lock"

    @property
    def socket_dir(self) -> Path:
        """The data directory itself, unless the socket's path would be too long there."""
        if len(os.fsencode(self.data_dir / f".s.PGSQL.{PORT}")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return Path("/tmp") / f"hotmesh-pg-{digest}"

    @property
    def dsn(self) -> str:
        return make_conninfo(
            "", host=str(self.socket_dir), port=PORT, user=SUPERUSER, dbname="postgres"
        )

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=5):
                return True
        except psycopg.Error:
            return False

    def prepare_data_dir(self) -> None:
        """Create the data directory (and the socket's, if apart) for the server account."""
        owner = os.geteuid() if self.account is None else self.account.uid
        for folder in dict.fromkeys([self.data_dir, self.socket_dir]):
            try:
                folder.mkdir(parents=True)
                created = True
            except FileExistsError:
                created = False
            if folder.stat().st_uid != owner:
                # Root hands the server account its new folders and the data
                # directory. Any other folder that someone else owns could
                # capture our socket.
                if self.account is None or not (created or folder == self.data_dir):
                    raise ConfigurationError(
                        f"{folder} belongs to another user; remove it or set HOTMESH_DATA_DIR"
                    )
                os.chown(folder, self.account.uid, self.account.gid)
            folder.chmod(0o700)


def _start_cluster(
    cluster: _Cluster, settings: Mapping[str, str], initdb_args: Sequence[str]
) -> _Binaries:
    """Create the cluster if it has no files yet and start it unless it runs. Hold the lock."""
    version_file = cluster.pgdata / "PG_VERSION"
    wanted = version_file.read_text().strip() if version_file.exists() else None
    binaries = _find_binaries(cluster.account, wanted, cluster.pgdata)
    if wanted is None:
        _initdb(cluster, binaries, settings, initdb_args)
    elif _is_running(binaries, cluster):
        return binaries  # up, but refusing connections: full, or still starting
    pg_ctl = binaries.path("pg_ctl")
    start = [
        pg_ctl,
        "start",
        "-w",
        "-s",
        "-t",
        str(_START_TIMEOUT_S),
        "-D",
        str(cluster.pgdata),
        "-l",
        str(cluster.log),
    ]
    _check(start, cluster.account, what="start the embedded PostgreSQL server", log=cluster.log)
    return binaries


def _initdb(
    cluster: _Cluster,
    binaries: _Binaries,
    settings: Mapping[str, str],
    initdb_args: Sequence[str],
) -> None:
    # initdb writes into a staging folder renamed at the end, so a run that was
    # killed half-way leaves nothing that looks like a cluster.
    staging = cluster.data_dir / "pgdata.new"
    shutil.rmtree(staging, ignore_errors=True)
    initdb = [
        binaries.path("initdb"),
        "-D",
        str(staging),
        "-U",
        SUPERUSER,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        *initdb_args,
    ]
    _check(initdb, cluster.account, what="create the embedded PostgreSQL cluster (initdb)")
    lines = {
        **settings,
        "port": str(PORT),
        "unix_socket_directories": _conf_string(str(cluster.socket_dir)),
    }
    with open(staging / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\n# Added by hotmesh_sync: a private server reached by its Unix socket only.\n")
        conf.writelines(f"{name} = {value}\n" for name, value in lines.items())
    staging.rename(cluster.pgdata)


def _is_running(binaries: _Binaries, cluster: _Cluster) -> bool:
    code, _ = _run([binaries.path("pg_ctl"), "status", "-D", str(cluster.pgdata)], cluster.account)
    return code == 0


def _server_account() -> _Account | None:
    """None when the server can run as us; under root, the user to run it as."""
    if os.geteuid() != 0:
        return None
    for name in _ROOT_SERVER_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return _Account(name, entry.pw_uid, entry.pw_gid)
    name = _ROOT_SERVER_USERS[-1]
    add = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    try:
        _, output = _run(add, None)
    except (OSError, subprocess.TimeoutExpired) as exc:
        output = str(exc)
    try:
        entry = pwd.getpwnam(name)  # there too when a concurrent useradd won the race
    except KeyError:
        raise ConfigurationError(
            f"PostgreSQL refuses to run as root and there is no 'postgres' user; creating "
            f"the user {name!r} failed: {output.strip()}\nCreate one of them, or set HOTMESH_DSN."
        ) from None
    return _Account(name, entry.pw_uid, entry.pw_gid)


def _find_binaries(account: _Account | None, wanted: str | None, pgdata: Path) -> _Binaries:
    """The first usable binaries, of version ``wanted`` when an existing cluster needs it."""
    others: list[_Binaries] = []
    unusable: list[str] = []
    for bin_dir in dict.fromkeys(_candidate_bin_dirs()):
        if not all((bin_dir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            continue
        # Running it proves that the server account can reach the folder and its libraries.
        try:
            code, output = _run([str(bin_dir / "postgres"), "--version"], account)
        except (OSError, subprocess.TimeoutExpired) as exc:
            code, output = -1, str(exc)
        if code != 0:
            unusable.append(f"{bin_dir}: {output.strip()}")
            continue
        binaries = _Binaries(bin_dir, _major_version(output))
        if wanted is None or binaries.major == wanted:
            return binaries
        others.append(binaries)
    if others:
        found = ", ".join(f"{b.major} in {b.bin_dir}" for b in others)
        raise ConfigurationError(
            f"the cluster in {pgdata} was made by PostgreSQL {wanted}, but only other "
            f"versions were found ({found}); install PostgreSQL {wanted}, or move that "
            f"folder away to start afresh"
        )
    details = ""
    if unusable:
        who = f"the user {account.name!r}" if account else "this user"
        details = f" that {who} can run (tried: {'; '.join(unusable)})"
    raise ConfigurationError(_NO_SERVER_MESSAGE.format(details=details))


def _candidate_bin_dirs() -> Iterator[Path]:
    if PREFER_PGSERVER:
        # find_spec locates the package without importing it: importing pgserver
        # has side effects (lock files, runtime folders) that we do not want.
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec("pgserver")
            if spec is not None and spec.origin is not None:
                yield Path(spec.origin).parent / "pginstall" / "bin"
    on_path = shutil.which("initdb")
    if on_path:
        # A symlink such as /usr/local/bin/initdb leads to the folder that has pg_ctl too.
        yield Path(on_path).resolve().parent
    for pattern in BIN_SEARCH_PATTERNS:
        yield from sorted((Path(p) for p in glob.glob(pattern)), key=_version_key, reverse=True)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path)))


def _major_version(version_output: str) -> str:
    """'postgres (PostgreSQL) 16.2' -> '16'; before PostgreSQL 10 the major had two parts."""
    match = re.search(r"PostgreSQL\)?\s+(\d+)(?:\.(\d+))?", version_output)
    if match is None:
        return version_output.strip()
    first, second = match.group(1), match.group(2)
    return f"{first}.{second}" if int(first) < 10 and second else first


def _conf_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; other processes (and threads) wait."""
    with open(path, "ab") as handle:  # append mode creates the file without truncating it
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _run(
    args: Sequence[str], account: _Account | None, timeout: float = _COMMAND_TIMEOUT_S
) -> tuple[int, str]:
    """Run a command, as ``account`` when given; return its exit code and output."""
    # Output goes to a file, not a pipe: `pg_ctl start` leaves a server behind,
    # and a server holding our pipe open would keep us reading forever. The new
    # session keeps the server out of reach of a Ctrl-C meant for us, and
    # subprocess's close_fds keeps our lock file out of the server's hands.
    with tempfile.TemporaryFile() as out:
        completed = subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            timeout=timeout,
            start_new_session=True,
            check=False,
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else [],
        )
        out.seek(0)
        return completed.returncode, out.read().decode(errors="replace")


def _check(
    args: Sequence[str], account: _Account | None, *, what: str, log: Path | None = None
) -> None:
    """Run a command that must succeed; a failure raises with its output and the server log."""
    try:
        code, output = _run(args, account)
    except (OSError, subprocess.TimeoutExpired) as exc:
        code, output = -1, str(exc)
    if code == 0:
        return
    hint = ""
    if account is not None:
        hint = (
            f"\n(PostgreSQL refuses to run as root, so it runs as the user {account.name!r}; "
            f"that user must be able to reach the data directory and the binaries)"
        )
    raise ConfigurationError(
        f"could not {what} (exit {code}): {' '.join(args)}\n{output.strip()}{_log_tail(log)}{hint}"
    )


def _log_tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(lines)
