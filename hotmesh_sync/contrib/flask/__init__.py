"""Flask integration: ``hm = HotMesh(app)`` or ``hm = HotMesh(); hm.init_app(app)``.

Config (every key optional)::

    HOTMESH_DSN = None               # default: $HOTMESH_DSN, $DATABASE_URL, the embedded server
    HOTMESH_APP_ID = "default"
    HOTMESH_WORKFLOWS = []           # modules (or module:function) the worker runs
    HOTMESH_TASK_QUEUE = "default"
    HOTMESH_CONCURRENCY = 8
    HOTMESH_POOL_SIZE = 10
    HOTMESH_SCHEDULES = {}           # id -> mf.schedules.create() keywords

``hm.memflow`` is the app's MemFlow: made on first use, shared by every
request (one connection pool per app and process), closed by ``hm.close()``
or at interpreter exit. ``flask hotmesh worker`` runs a worker whose activities
run inside an app context; ``flask hotmesh migrate`` provisions the schema.
Both bring the schedules of ``HOTMESH_SCHEDULES`` in line first
(``hm.sync_schedules()``).
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo

from ...durations import to_seconds
from ...errors import ConfigurationError
from ...logging_setup import configure_logging
from ...memflow import MemFlow
from ...schedules import sync_declared
from ...serving import MemFlowHolder, load_functions, migrate_schema, serve, wrap_activities
from ...supervisor import DRAIN_MARGIN, Supervisor
from .dashboard import EXTENSION, dashboard_blueprint

__all__ = ["HotMesh", "dashboard_blueprint"]

DEFAULTS: dict[str, Any] = {
    "HOTMESH_DSN": None,
    "HOTMESH_APP_ID": "default",
    "HOTMESH_WORKFLOWS": [],
    "HOTMESH_TASK_QUEUE": "default",
    "HOTMESH_CONCURRENCY": 8,
    "HOTMESH_POOL_SIZE": 10,
    "HOTMESH_SCHEDULES": {},
}


def _holder(app: Flask) -> MemFlowHolder:
    """The app's MemFlow holder: the MemFlow is made on first use, from the config then."""

    def create() -> MemFlow:
        config = app.config
        return MemFlow.init(app_id=config["HOTMESH_APP_ID"], dsn=config["HOTMESH_DSN"] or None,
                            pool_size=config["HOTMESH_POOL_SIZE"])

    return MemFlowHolder(create)


def _state(app: Flask) -> MemFlowHolder:
    try:
        state: MemFlowHolder = app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("HotMesh.init_app(app) has not been called for this app") from None
    return state


class HotMesh:
    """The Flask extension: ``hm.memflow`` and the ``flask hotmesh`` commands."""

    def __init__(self, app: Flask | None = None) -> None:
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        app.extensions[EXTENSION] = _holder(app)
        app.cli.add_command(hotmesh_commands)

    def _app(self) -> Flask:
        # Bound to one app, or (application factories) to whichever app is current.
        if self.app is not None:
            return self.app
        app: Flask = current_app
        return app

    @property
    def memflow(self) -> MemFlow:
        """The app's MemFlow (connecting now if this is its first use)."""
        return _state(self._app()).get()

    def close(self) -> None:
        """Close the app's MemFlow and its pool; the next use makes a new one."""
        _state(self._app()).close()

    def sync_schedules(self) -> dict[str, list[str]]:
        """Bring the app's schedules in line with ``HOTMESH_SCHEDULES`` (see
        ``hotmesh_sync.schedules.sync_declared``); the ids created, updated and
        deleted."""
        return _sync_schedules(self._app())


def _sync_schedules(app: Flask) -> dict[str, list[str]]:
    return sync_declared(_state(app).get(), app.config["HOTMESH_SCHEDULES"])


hotmesh_commands = AppGroup("hotmesh", help="HotMesh durable workflows.")


@hotmesh_commands.command("worker")
@click.argument("modules", nargs=-1, metavar="[MODULE[:FUNC]]...")
@click.option("--task-queue", help="Default: HOTMESH_TASK_QUEUE.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Default: HOTMESH_CONCURRENCY.")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Stop gracefully after this many.")
@click.option("--max-runtime", help="Stop gracefully after this long, e.g. '4m'.")
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="Seconds in-flight tasks get on stop.")
@click.option("--until-empty", is_flag=True,
              help="Exit once nothing of the queue is due or running (cron).")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes, under a supervisor that restarts one that dies.")
def worker_command(modules: tuple[str, ...], task_queue: str | None, concurrency: int | None,
                   max_tasks: int | None, max_runtime: str | None, grace: float,
                   until_empty: bool, processes: int) -> None:
    """Run a worker until SIGTERM/SIGINT (default modules: HOTMESH_WORKFLOWS)."""
    app: Flask = current_app
    config = app.config
    specs = modules or tuple(config["HOTMESH_WORKFLOWS"])
    if not specs:
        raise click.UsageError("no workflows: set HOTMESH_WORKFLOWS or name modules")
    # The worker's events on stderr, unless the app's logging configuration takes them.
    configure_logging("info", if_unconfigured=True)
    try:
        functions = load_functions(specs)
        runtime = None if max_runtime is None else to_seconds(max_runtime)
        # Activities run on worker threads, where Flask has no app context of its own.
        activities = wrap_activities(functions, app.app_context)
        _sync_schedules(app)  # HOTMESH_SCHEDULES, before firing them
        if processes > 1:
            _supervise(modules, task_queue, concurrency, max_tasks, max_runtime, grace,
                       until_empty, processes)
            return
        serve(_state(app).get(), task_queue or config["HOTMESH_TASK_QUEUE"], functions,
              activities, concurrency=concurrency or config["HOTMESH_CONCURRENCY"],
              max_tasks=max_tasks, max_runtime=runtime, grace=grace, until_empty=until_empty)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _supervise(modules: tuple[str, ...], task_queue: str | None, concurrency: int | None,
               max_tasks: int | None, max_runtime: str | None, grace: float,
               until_empty: bool, processes: int) -> None:
    """``--processes N``: N children, each running ``flask [--app A] hotmesh worker``
    once more (see hotmesh_sync/supervisor.py); each loads the app the way this
    command did, so the app must come from --app/FLASK_APP or be found in the
    current directory, not from a factory passed in code."""
    info = click.get_current_context().find_object(ScriptInfo)
    if info is None or info.create_app is not None:
        raise click.UsageError("--processes needs an app that each process can load: "
                               "name it with --app or FLASK_APP")
    argv = [*modules, "--grace", repr(grace)]
    for option, value in (("--task-queue", task_queue), ("--concurrency", concurrency),
                          ("--max-tasks", max_tasks), ("--max-runtime", max_runtime)):
        if value is not None:
            argv += [option, str(value)]
    if until_empty:
        argv.append("--until-empty")
    status = Supervisor(_worker_in_child, (info.app_import_path, argv), processes,
                        name="hotmesh-flask-worker", drain_timeout=grace + DRAIN_MARGIN).run()
    if status:
        click.get_current_context().exit(status)


def _worker_in_child(app_import_path: str | None, argv: list[str]) -> None:
    """A supervised child: ``flask [--app A] hotmesh worker ARGV`` (it exits with its status)."""
    from flask.cli import cli

    app = ["--app", app_import_path] if app_import_path else []
    cli.main(args=[*app, "hotmesh", "worker", *argv], prog_name="flask")


@hotmesh_commands.command("migrate")
def migrate_command() -> None:
    """Create or migrate the schema of HOTMESH_APP_ID; bring HOTMESH_SCHEDULES in line."""
    config = current_app.config
    try:
        schema, version = migrate_schema(config["HOTMESH_DSN"] or None, config["HOTMESH_APP_ID"])
        click.echo(f"HotMesh schema {schema} is at version {version}")
        synced = _sync_schedules(current_app)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("HotMesh schedules: " + ", ".join(f"{what} {len(ids)}"
                                                for what, ids in synced.items()))
