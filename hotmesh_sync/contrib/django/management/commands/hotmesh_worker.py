"""``manage.py hotmesh_worker``: run a worker for settings.HOTMESH until SIGTERM/SIGINT.

With ``--processes N`` it supervises N processes that each run this command
(without ``--processes``): see hotmesh_sync/supervisor.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connections

from hotmesh_sync.contrib.django import get_memflow, sync_schedules
from hotmesh_sync.contrib.django.conf import load_settings, task_backend_configured
from hotmesh_sync.contrib.django.transactions import django_transactions
from hotmesh_sync.durations import to_seconds
from hotmesh_sync.errors import ConfigurationError
from hotmesh_sync.logging_setup import configure_logging
from hotmesh_sync.serving import load_functions, serve, wrap_activities
from hotmesh_sync.supervisor import DRAIN_MARGIN, Supervisor


@contextmanager
def django_db_hygiene() -> Iterator[None]:
    """What Django does around each request, done around each activity instead.

    Worker threads live long; without this an activity using the ORM could be
    handed a connection that has died or outlived CONN_MAX_AGE. Inside an
    atomic block (a transactional activity runs in one) the connection is in
    use and is left alone: closing it would end the transaction.
    """
    if any(c.in_atomic_block for c in connections.all(initialized_only=True)):
        yield
        return
    close_old_connections()
    try:
        yield
    finally:
        close_old_connections()


# Without django-stubs installed BaseCommand is Any to mypy; with them the ignore is unused.
class Command(BaseCommand):  # type: ignore[misc,unused-ignore]
    help = ("Run a HotMesh worker for the workflows of settings.HOTMESH['WORKFLOWS'] "
            "(and the tasks of Django's Tasks framework, when settings.TASKS uses "
            "HotMeshBackend) until SIGTERM/SIGINT (or --max-tasks / --max-runtime).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("modules", nargs="*", metavar="MODULE[:FUNC]",
                            help="default: settings.HOTMESH['WORKFLOWS']")
        parser.add_argument("--task-queue", help="default: settings.HOTMESH['TASK_QUEUE']")
        parser.add_argument("--concurrency", type=int,
                            help="default: settings.HOTMESH['CONCURRENCY']")
        parser.add_argument("--max-tasks", type=int, help="stop gracefully after this many tasks")
        parser.add_argument("--max-runtime", help="stop gracefully after this long, e.g. '4m'")
        parser.add_argument("--until-empty", action="store_true",
                            help="exit once nothing of the queue is due or running (cron)")
        parser.add_argument("--grace", type=float, default=30.0,
                            help="seconds in-flight tasks get on stop (default 30)")
        parser.add_argument("--processes", type=int, default=1,
                            help="run N worker processes under a supervisor that restarts "
                                 "one that dies (default 1: this process is the worker)")

    def handle(self, *args: Any, **options: Any) -> None:
        processes = options["processes"]
        if processes < 1:
            raise CommandError(f"--processes must be at least 1, not {processes}", returncode=2)
        conf = load_settings()
        specs = options["modules"] or conf.workflows
        tasks = task_backend_configured()
        if not specs and not tasks:
            raise CommandError("no workflows: set settings.HOTMESH['WORKFLOWS'] or name modules")
        # The worker's events on stderr, unless settings.LOGGING takes them.
        configure_logging("info", if_unconfigured=True)
        try:
            functions = load_functions(specs)
            if tasks:  # the queue may carry Django tasks: run them here too
                functions = with_task_functions(functions)
            max_runtime = (None if options["max_runtime"] is None
                           else to_seconds(options["max_runtime"]))
            sync_schedules()  # settings.HOTMESH["SCHEDULES"], before firing them
            if processes > 1:
                supervise(options)
                return
            serve(get_memflow(), options["task_queue"] or conf.task_queue, functions,
                  wrap_activities(functions, django_db_hygiene),
                  concurrency=options["concurrency"] or conf.concurrency,
                  max_tasks=options["max_tasks"], max_runtime=max_runtime,
                  grace=options["grace"], transactions=django_transactions(),
                  until_empty=options["until_empty"])
        except (ConfigurationError, ImproperlyConfigured, ImportError, ValueError) as exc:
            raise CommandError(str(exc)) from exc


def supervise(options: dict[str, Any]) -> None:
    """``--processes N``: N children, each running this command once more.

    A child sets Django up from the DJANGO_SETTINGS_MODULE it inherits (the
    functions were imported here first, so a typo fails once, not N times).
    """
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise CommandError("--processes needs DJANGO_SETTINGS_MODULE set (as manage.py "
                           "sets it), so that each process can load the settings")
    argv = [*options["modules"], "--grace", repr(options["grace"])]
    for name in ("task_queue", "concurrency", "max_tasks", "max_runtime"):
        if options[name] is not None:
            argv += [f"--{name.replace('_', '-')}", str(options[name])]
    if options["until_empty"]:
        argv.append("--until-empty")
    status = Supervisor(command_in_child, (argv,), options["processes"],
                        name="hotmesh-django-worker",
                        drain_timeout=options["grace"] + DRAIN_MARGIN).run()
    if status:
        raise CommandError("worker processes did not all drain (see the log)", returncode=status)


def command_in_child(argv: list[str]) -> int:
    """A supervised child: Django set up, then this command without --processes."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("hotmesh_worker", *argv)
    return 0


def with_task_functions(functions: dict[str, Any]) -> dict[str, Any]:
    """``functions`` and the workflow and activity that run Django's tasks."""
    from hotmesh_sync.contrib.django.tasks import worker_functions

    for name, fn in worker_functions().items():
        if functions.setdefault(name, fn) is not fn:
            raise ConfigurationError(f"two different functions are named {name!r}: one of "
                                     "yours and the one that runs Django's tasks")
    return functions
