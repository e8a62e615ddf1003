"""The ``hotmesh-sync`` command line (also ``python -m hotmesh_sync``).

Exit status: 0 success; 1 a workflow failed, was interrupted or did not
finish within ``--timeout`` (``result``, ``start --wait``), or the database
failed; 2 bad usage (also a value or name the database refuses, a malformed
DSN), an unknown workflow or schedule id, a schedule id that is taken, or no
database to connect to.
Errors are one line on stderr; command output goes to stdout, as JSON with
``--json``; log events go to stderr (see ``logging_setup``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

import psycopg

from . import __version__, errors
from .durations import to_seconds
from .log import get_logger
from .logging_setup import LEVELS, configure_logging
from .memflow import MemFlow
from .serving import load_functions, migrate_schema, serve
from .settings import dsn_from_env
from .supervisor import DRAIN_MARGIN, Supervisor

PROG = "hotmesh-sync"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_log = get_logger("hotmesh_sync.cli")

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that cannot be carried out as written (exit status 2)."""


# --- output ---------------------------------------------------------------------------

def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: Any, pretty: bool = False) -> str:
    return json.dumps(value, default=_json_default, indent=2 if pretty else None,
                      ensure_ascii=False)


def emit(args: argparse.Namespace, data: Any, human: str | None = None) -> None:
    """Print ``data`` as one line of JSON with --json, else ``human`` (or ``data`` pretty)."""
    if args.json:
        print(to_json(data))
    elif human is not None:
        print(human)
    elif isinstance(data, str):
        print(data)
    else:
        print(to_json(data, pretty=True))


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Left-aligned columns, as wide as their widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else to_json(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(value: Any) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text[:19].replace("T", " ")


def fail(message: str, status: int = EXIT_USAGE) -> int:
    """Print one line on stderr (multi-line database messages are joined) and return status."""
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"{PROG}: {line}", file=sys.stderr)
    return status


# --- parsing helpers ------------------------------------------------------------------

def parse_json(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} is not valid JSON ({exc.msg} at column {exc.colno})") from exc


def parse_seconds(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return to_seconds(text)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{option}: {exc}") from exc


def open_memflow(args: argparse.Namespace, pool_size: int = 2) -> MemFlow:
    # None lets MemFlow fall back to $HOTMESH_DSN, $DATABASE_URL, then the embedded server.
    return MemFlow.init(app_id=args.app_id, dsn=args.dsn or None, pool_size=pool_size)


def outcome(mf: MemFlow, args: argparse.Namespace, workflow_id: str,
            timeout: float | None) -> int:
    """Wait for a workflow and print its result (0) or why it did not succeed (1)."""
    handle = mf.workflow.get_handle(workflow_id)
    try:
        value = handle.result(timeout=timeout)
    except errors.WorkflowFailedError as exc:
        status = "interrupted" if isinstance(exc, errors.WorkflowInterruptedError) else "failed"
        if args.json:
            emit(args, {"workflow_id": workflow_id, "status": status, "error": {
                "code": exc.code, "error_type": exc.error_type, "message": exc.message}})
        return fail(f"workflow {workflow_id!r} {status} [{exc.code}] {exc.error_type}: "
                    f"{exc.message}", EXIT_FAILED)
    except TimeoutError:
        status = handle.status()
        if args.json:
            emit(args, {"workflow_id": workflow_id, "status": status, "timed_out": True})
        return fail(f"workflow {workflow_id!r} did not finish within {timeout:g}s "
                    f"(it is {status})", EXIT_FAILED)
    emit(args, {"workflow_id": workflow_id, "status": "completed", "result": value},
         human=value if isinstance(value, str) else to_json(value, pretty=True))
    return EXIT_OK


# --- commands -------------------------------------------------------------------------

def cmd_worker(args: argparse.Namespace) -> int:
    if args.processes < 1:
        raise UsageError(f"--processes must be at least 1, not {args.processes}")
    # Like `python -m`, find the user's modules relative to where the command runs.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    functions = load_functions(args.modules)
    max_runtime = parse_seconds(args.max_runtime, "--max-runtime")
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if args.max_tasks is not None and args.max_tasks < 1:
        raise UsageError("--max-tasks must be at least 1")
    if args.processes > 1:
        return _worker_processes(args)
    with open_memflow(args) as mf:
        serve(mf, args.task_queue, functions, functions, concurrency=args.concurrency,
              max_tasks=args.max_tasks, max_runtime=max_runtime, grace=args.grace,
              until_empty=args.until_empty)
    return EXIT_OK


def _worker_processes(args: argparse.Namespace) -> int:
    """``worker --processes N``: this same command, N times, under a supervisor.

    The modules were imported here already, so a typo fails once, with status 2.
    The DSN is resolved (the embedded server started) and the schema migrated
    here, once, not by N children at the same moment; the children get the
    resolved DSN. Its exit status is the supervisor's (see supervisor.py).
    """
    from .embedded import resolve_dsn

    dsn = resolve_dsn(args.dsn or None)
    migrate_schema(dsn, args.app_id)
    # The child's command line travels pickled through a pipe: the DSN is not shown by ps.
    argv = ["worker", *args.modules, "--task-queue", args.task_queue,
            "--concurrency", str(args.concurrency), "--grace", repr(args.grace),
            "--dsn", dsn, "--app-id", args.app_id, "--log-level", args.log_level or "info"]
    if args.max_tasks is not None:
        argv += ["--max-tasks", str(args.max_tasks)]
    if args.max_runtime is not None:
        argv += ["--max-runtime", args.max_runtime]
    if args.until_empty:
        argv.append("--until-empty")
    return Supervisor(main, (argv,), args.processes,
                      drain_timeout=args.grace + DRAIN_MARGIN).run()


def cmd_start(args: argparse.Namespace) -> int:
    raw_args = parse_json(args.args, "--args")
    call_args = [] if raw_args is None else raw_args if isinstance(raw_args, list) else [raw_args]
    search = parse_json(args.search, "--search")
    if search is not None and not isinstance(search, dict):
        raise UsageError("--search must be a JSON object")
    timeout = parse_seconds(args.timeout, "--timeout")
    if timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    run_timeout = parse_seconds(args.run_timeout, "--run-timeout")
    with open_memflow(args) as mf:
        handle = mf.workflow.start(args.name, call_args, task_queue=args.task_queue,
                                   workflow_id=args.id, entity=args.entity, search=search,
                                   if_exists=args.if_exists, run_timeout=run_timeout)
        _warn_if_unserved(mf, args.name, handle.describe()["task_queue"])
        if args.wait:
            return outcome(mf, args, handle.workflow_id, timeout)
        emit(args, {"workflow_id": handle.workflow_id}, human=handle.workflow_id)
    return EXIT_OK


def _warn_if_unserved(mf: MemFlow, name: str, queue: str) -> None:
    """Say so on stderr when no live worker would run what was just started."""
    serving = [w for w in mf.workers() if queue in w["task_queues"]]
    if not serving:
        print(f"{PROG}: warning: no live worker serves queue {queue!r}; the workflow "
              f"waits until one does (hotmesh-sync worker MODULE --task-queue {queue})",
              file=sys.stderr)
    elif not any(name in w["workflows"] for w in serving):
        print(f"{PROG}: warning: no live worker of queue {queue!r} registers {name!r}; "
              "the workflow waits until one does", file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        row = mf.workflow.get_handle(args.id).describe()
    human = str(row["status"])
    if row.get("waiting_for") and row["status"] not in ("completed", "failed", "interrupted"):
        human += f" ({row['waiting_for']})"
    emit(args, {"workflow_id": row.pop("id"), **row}, human=human)
    return EXIT_OK


def cmd_result(args: argparse.Namespace) -> int:
    timeout = parse_seconds(args.timeout, "--timeout")
    with open_memflow(args) as mf:
        return outcome(mf, args, args.id, timeout)


def cmd_signal(args: argparse.Namespace) -> int:
    data = parse_json(args.data, "--data")
    with open_memflow(args) as mf:
        reached = mf.workflow.signal(args.signal, data, workflow_id=args.id)
        status = mf.workflow.get_handle(args.id).status() if not reached else None
    if not reached:  # it has ended: nothing could ever take the signal
        if args.json:
            emit(args, {"workflow_id": args.id, "signal_id": args.signal, "reached": 0,
                        "status": status})
        return fail(f"workflow {args.id!r} has ended ({status}): signal {args.signal!r} "
                    "was not delivered", EXIT_FAILED)
    emit(args, {"workflow_id": args.id, "signal_id": args.signal, "reached": reached},
         human=f"signal {args.signal!r} sent to {args.id}")
    return EXIT_OK


def cmd_interrupt(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        handle = mf.workflow.get_handle(args.id)
        done = handle.interrupt(reason=args.reason, descend=args.descend, force=args.force)
        status = handle.status()
    if not done:
        human = f"{args.id} had already ended ({status})"
    elif status == "interrupted":
        human = f"interrupted {args.id}"
    else:  # its coordinator gets CancelledError and may clean up first
        human = (f"cancellation of {args.id} requested: its cleanup runs in a worker "
                 "(--force ends it at once)")
    emit(args, {"workflow_id": args.id, "interrupted": done, "status": status}, human=human)
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    with open_memflow(args) as mf:
        rows = mf.workflow.list(entity=args.entity, status=args.status, limit=args.limit)
    human = table([[r["id"], r["workflow_name"], r["task_queue"], r["entity"] or "",
                    r["status"] + (" (no worker registers it)" if r.get("waiting_for")
                                   and r["status"] == "pending" else ""),
                    _when(r["created_at"])] for r in rows],
                  ["ID", "WORKFLOW", "QUEUE", "ENTITY", "STATUS", "CREATED"])
    emit(args, rows, human=human if rows else "(no workflows)")
    return EXIT_OK


def cmd_entity(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        mf.workflow.get_handle(args.id)  # an unknown id is an error, not an empty document
        value = mf.entity(args.id).get(args.path)
    emit(args, {"workflow_id": args.id, "path": args.path, "value": value},
         human=to_json(value, pretty=True))
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        runs = mf.workflow.get_handle(args.id).runs()
    human = table([[str(r["run_number"]), r["run_id"], r["status"], _when(r["started_at"]),
                    _when(r["ended_at"]) if r["ended_at"] else "-", _short(r["reason"] or "")]
                   for r in runs], ["#", "RUN", "STATUS", "STARTED", "ENDED", "REASON"])
    emit(args, runs, human=human)
    return EXIT_OK


def cmd_steps(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        steps = mf.workflow.get_handle(args.id).steps(run_id=args.run)

    def shown(step: dict[str, Any]) -> str:
        error = step["error"]
        if error:
            return _short(f"error {error.get('error_type', '')}: {error.get('message', '')}")
        return _short(step["result"])

    human = table([[str(i), s["kind"], s["name"], s["run_id"] or "-", s["key"], shown(s),
                    _when(s["at"])] for i, s in enumerate(steps, 1)],
                  ["#", "KIND", "NAME", "RUN", "KEY", "OUTCOME", "AT"])
    emit(args, steps, human=human if steps else "(no steps recorded)")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    schema, version = migrate_schema(args.dsn or None, args.app_id)
    emit(args, {"app_id": args.app_id, "schema": schema, "version": version},
         human=f"schema {schema} is at version {version}")
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    seconds = parse_seconds(args.older_than, "--older-than")
    assert seconds is not None
    with open_memflow(args) as mf:
        _log.info("purge_started", app_id=args.app_id, older_than=args.older_than)
        count = mf.purge(older_than=seconds)
    emit(args, {"purged": count, "older_than_seconds": seconds},
         human=f"purged {count} finished workflow{'' if count == 1 else 's'} "
               f"older than {args.older_than}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    timeout = parse_seconds(args.timeout, "--timeout")
    if timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    with open_memflow(args) as mf:
        handle = mf.workflow.get_handle(args.id)
        resumed = handle.retry()
        if resumed and args.wait:
            return outcome(mf, args, args.id, timeout)
        status = handle.status()
    human = (f"resumed {args.id} from the step that failed" if resumed
             else f"{args.id} has not failed (it is {status}): nothing to retry")
    emit(args, {"workflow_id": args.id, "resumed": resumed, "status": status}, human=human)
    return EXIT_OK


# --- schedules ------------------------------------------------------------------------

def _next_run(row: dict[str, Any]) -> str:
    return "paused" if row["paused"] else _when(row["next_run_at"]) if row["next_run_at"] else "-"


def cmd_schedule_ls(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        rows = mf.schedules.list()
    human = table([[r["id"], r["cron"], r["timezone"], r["workflow_name"], r["task_queue"],
                    r["overlap"], _next_run(r), r["last_workflow_id"] or "-"] for r in rows],
                  ["ID", "CRON", "TIMEZONE", "WORKFLOW", "QUEUE", "OVERLAP", "NEXT RUN (UTC)",
                   "LAST WORKFLOW"])
    emit(args, rows, human=human if rows else "(no schedules)")
    return EXIT_OK


def cmd_schedule_get(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        emit(args, mf.schedules.get(args.id))
    return EXIT_OK


def cmd_schedule_create(args: argparse.Namespace) -> int:
    raw_args = parse_json(args.args, "--args")
    call_args = [] if raw_args is None else raw_args if isinstance(raw_args, list) else [raw_args]
    with open_memflow(args) as mf:
        row = mf.schedules.create(
            args.id, cron=args.cron, workflow_name=args.workflow, args=call_args,
            task_queue=args.task_queue, timezone=args.timezone, overlap=args.overlap,
            catchup_window=args.catchup_window, jitter=args.jitter, paused=args.paused,
            if_exists=args.if_exists)
    emit(args, row, human=f"schedule {row['id']} ({row['cron']}, {row['timezone']}): "
                          f"next run {_next_run(row)}")
    return EXIT_OK


def cmd_schedule_pause(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        row = mf.schedules.pause(args.id)
    emit(args, row, human=f"paused schedule {args.id}")
    return EXIT_OK


def cmd_schedule_unpause(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        row = mf.schedules.unpause(args.id)
    emit(args, row, human=f"unpaused schedule {args.id}: next run {_next_run(row)}")
    return EXIT_OK


def cmd_schedule_trigger(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        workflow_id = mf.schedules.trigger(args.id)
    emit(args, {"schedule_id": args.id, "workflow_id": workflow_id}, human=workflow_id)
    return EXIT_OK


def cmd_schedule_delete(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        mf.schedules.delete(args.id)
    emit(args, {"schedule_id": args.id, "deleted": True}, human=f"deleted schedule {args.id}")
    return EXIT_OK


def cmd_workers(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        rows = mf.workers()
    human = table([[w["id"], ",".join(w["task_queues"]), str(len(w["workflows"])),
                    str(len(w["activities"])), _when(w["started_at"]), _when(w["last_seen"])]
                   for w in rows], ["WORKER", "QUEUES", "WORKFLOWS", "ACTIVITIES", "STARTED",
                                    "LAST SEEN"])
    emit(args, rows, human=human if rows else "(no live workers)")
    return EXIT_OK


def cmd_queue_ls(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        rows = [dict(mf.queues.get(q["name"]), name=q["name"]) for q in mf.queues.list()]
    human = table([[r["name"], str(r["concurrency"] or "-"), r["rate_limit"] or "-",
                    str(r["running"]), str(r["ready"])] for r in rows],
                  ["QUEUE", "CONCURRENCY", "RATE", "RUNNING", "READY"])
    emit(args, rows, human=human if rows else "(no queue has limits)")
    return EXIT_OK


def cmd_queue_set(args: argparse.Namespace) -> int:
    with open_memflow(args) as mf:
        state = mf.queues.configure(args.queue, concurrency=args.concurrency,
                                    rate_limit=args.rate_limit)
    emit(args, {"name": args.queue, **state},
         human=f"{args.queue}: concurrency {state['concurrency'] or 'unlimited'}, "
               f"rate {state['rate_limit'] or 'unlimited'}")
    return EXIT_OK


def cmd_server(args: argparse.Namespace) -> int:
    from .embedded import default_server_state, stop_default_server

    if args.action == "stop":
        stopped = stop_default_server()
        emit(args, {"stopped": stopped},
             human="stopped" if stopped else "the embedded server was not running")
        return EXIT_OK
    state = default_server_state()
    if args.action == "url":
        emit(args, {"dsn": state["dsn"]}, human=state["dsn"])
        return EXIT_OK
    human = (f"{'running' if state['running'] else 'not running'}"
             f"{'' if state['created'] else ' (never started)'}\n"
             f"data directory: {state['data_dir']}\nconnect with:   psql \"{state['dsn']}\"\n"
             f"server log:     {state['log']}")
    emit(args, state, human=human)
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    from .ui import Dashboard
    from .ui.serve import check_binding, serve

    # Both before connecting: a refusal costs nothing. (A port past 65535 would
    # otherwise end in the socket's OverflowError, a traceback.)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    token = check_binding(args.host, args.token)
    with open_memflow(args, pool_size=6) as mf:
        def ready(address: str) -> None:
            print(f"Dashboard of app {mf.app_id!r} at {address} (Ctrl-C stops it)", flush=True)

        try:
            serve(Dashboard(mf, token=token), args.host, args.port, ready=ready)
        except OSError as exc:  # the port is taken, or the address is not this machine's
            return fail(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        demo = importlib.import_module("hotmesh_sync.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "hotmesh_sync.demo":
            raise
        return fail("the demo is not part of this installation (hotmesh_sync.demo is missing)")
    embedded = not (args.dsn or dsn_from_env())
    with open_memflow(args, pool_size=4) as mf:
        if embedded and not args.json:
            from .embedded import default_data_dir

            print(f"Using the embedded PostgreSQL server in {default_data_dir()} (started if "
                  "it was not running; it keeps running after the demo: "
                  f"'{PROG} server stop' stops it).\n", flush=True)
        return int(demo.main(mf, as_json=args.json))


# --- the parser -----------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (the full usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """--dsn, --app-id, --json, --log-level: before the command (defaults) or after it.

    After the command they default to SUPPRESS so they override only when given.
    """
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--dsn", default=default(None),
                        help="libpq DSN (default: $HOTMESH_DSN, $DATABASE_URL, then the "
                             "embedded server)")
    parser.add_argument("--app-id", default=default(os.environ.get("HOTMESH_APP_ID") or "default"),
                        help="the app id, one schema per app (default: $HOTMESH_APP_ID or "
                             "'default')")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="machine-readable output: one JSON value on stdout")
    parser.add_argument("--log-level", choices=list(LEVELS), default=default(None),
                        help="log events at this level and above to stderr (default: info for "
                             "worker, warning otherwise)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Durable workflows on PostgreSQL.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _common(sub, suppress=True)
        sub.set_defaults(handler=handler)
        return sub

    p = command("worker", cmd_worker, "run a worker in the foreground until SIGTERM/SIGINT")
    p.add_argument("modules", nargs="+", metavar="MODULE[:FUNC]",
                   help="a module (all its public functions) or one function in it; each is "
                        "registered as a workflow and as an activity")
    p.add_argument("--task-queue", required=True, help="the queue to take tasks from")
    p.add_argument("--concurrency", type=int, default=8, help="worker threads (default 8)")
    p.add_argument("--max-tasks", type=int, help="stop gracefully after this many tasks")
    p.add_argument("--max-runtime", metavar="DURATION",
                   help="stop gracefully after this long, e.g. '4m' (cron-style runs)")
    p.add_argument("--until-empty", action="store_true",
                   help="exit 0 once nothing of the queue is due or running (cron-style runs)")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                   help="on stop, how long in-flight tasks may take before they are handed "
                        "back (default 30)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run N worker processes (each with --concurrency threads) under a "
                        "supervisor that restarts one that dies and drains them all on "
                        "SIGTERM/SIGINT (default 1: this process is the worker)")

    p = command("start", cmd_start, "start a workflow and print its id")
    p.add_argument("name", help="the workflow name")
    p.add_argument("--args", help="the arguments, a JSON array (any other JSON value is the "
                                  "single argument)")
    p.add_argument("--task-queue", help="default: the entity, else 'default'")
    p.add_argument("--id", help="the workflow id (default: a new uuid)")
    p.add_argument("--entity", help="the entity label stored with the workflow")
    p.add_argument("--search", help="a JSON object merged into the entity before the first run")
    p.add_argument("--if-exists", choices=["error", "attach", "restart"], default="error",
                   help="when the id is taken: fail (default), attach to it, or begin a new "
                        "run if its workflow has ended")
    p.add_argument("--run-timeout", metavar="DURATION",
                   help="fail a run that lasts longer (596), e.g. '1 hour'")
    p.add_argument("--wait", action="store_true", help="wait and print the result")
    p.add_argument("--timeout", metavar="DURATION", help="with --wait: give up after this long")

    p = command("status", cmd_status, "print a workflow's status")
    p.add_argument("id")

    p = command("result", cmd_result, "wait for a workflow and print its result")
    p.add_argument("id")
    p.add_argument("--timeout", metavar="DURATION", help="give up after this long")

    p = command("signal", cmd_signal, "send a signal to a workflow")
    p.add_argument("id")
    p.add_argument("signal", help="the signal id")
    p.add_argument("--data", help="the signal's data, JSON")

    p = command("interrupt", cmd_interrupt, "interrupt (cancel) a workflow")
    p.add_argument("id")
    p.add_argument("--reason")
    p.add_argument("--descend", action="store_true", help="also interrupt its children")
    p.add_argument("--force", action="store_true",
                   help="end it at once, without letting its code clean up")

    p = command("ls", cmd_ls, "list workflows, newest first")
    p.add_argument("--entity")
    p.add_argument("--status", choices=["pending", "running", "waiting", "completed", "failed",
                                        "interrupted"])
    p.add_argument("--limit", type=int, default=20, help="default 20")

    p = command("entity", cmd_entity, "print a workflow's entity document (or a path in it)")
    p.add_argument("id")
    p.add_argument("path", nargs="?", help="a dotted path, e.g. 'perspectives.optimistic'")

    p = command("steps", cmd_steps, "print a workflow's recorded durable steps")
    p.add_argument("id")
    p.add_argument("--run", metavar="RUN_ID", help="an earlier run's steps (see 'runs')")

    p = command("runs", cmd_runs, "list the runs of a workflow id (continue-as-new, restarts)")
    p.add_argument("id")

    command("migrate", cmd_migrate, "create or migrate the app's schema")

    p = command("purge", cmd_purge, "remove finished workflows")
    p.add_argument("--older-than", default="7 days", metavar="DURATION",
                   help="default '7 days'")

    p = command("retry", cmd_retry, "run a failed workflow again from the step that failed")
    p.add_argument("id")
    p.add_argument("--wait", action="store_true", help="wait and print the result")
    p.add_argument("--timeout", metavar="DURATION", help="with --wait: give up after this long")

    _schedule_commands(command("schedule", cmd_schedule_ls, "manage cron schedules"))

    command("demo", cmd_demo, "run the research agent and document pipeline demo")

    command("workers", cmd_workers, "list the live workers of the app")

    p = command("queue", cmd_queue_ls, "flow control of task queues: ls | set Q ...")
    queue = p.add_subparsers(dest="queue_command", metavar="ACTION")
    q = queue.add_parser("ls", help="queues that have limits, with what runs and waits")
    _common(q, suppress=True)
    q.set_defaults(handler=cmd_queue_ls)
    q = queue.add_parser("set", help="set (or, without options, lift) a queue's limits")
    _common(q, suppress=True)
    q.add_argument("queue")
    q.add_argument("--concurrency", type=int, help="at most N of its activities at once")
    q.add_argument("--rate-limit", help="at most N activity starts per period, e.g. '100/minute'")
    q.set_defaults(handler=cmd_queue_set)

    p = command("ui", cmd_ui, "serve the web dashboard (127.0.0.1:8765 unless told)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1); any other needs a token")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument("--token", help="require this token to sign in (default $HOTMESH_UI_TOKEN)")

    p = command("server", cmd_server,
                "the embedded PostgreSQL server: status | url | stop")
    p.add_argument("action", choices=["status", "url", "stop"])
    return parser


def _schedule_commands(parser: argparse.ArgumentParser) -> None:
    """``schedule ls|get|create|pause|unpause|trigger|delete``."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        _common(sub, suppress=True)
        sub.set_defaults(handler=handler)
        return sub

    action("ls", cmd_schedule_ls, "list the app's schedules")
    _schedule_create(action("create", cmd_schedule_create, "create a schedule"))
    for name, handler, help_text in (
            ("get", cmd_schedule_get, "print a schedule"),
            ("pause", cmd_schedule_pause, "stop firing a schedule until unpause"),
            ("unpause", cmd_schedule_unpause,
             "fire a paused schedule again, from its next tick (missed ones are not caught up)"),
            ("trigger", cmd_schedule_trigger,
             "start the schedule's workflow now and print its id"),
            ("delete", cmd_schedule_delete, "remove a schedule")):
        action(name, handler, help_text).add_argument("id")


def _schedule_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the schedule id; its workflows are '<id>@<tick>'")
    p.add_argument("--cron", required=True,
                   help="five fields ('0 2 * * *') or @yearly, @monthly, @weekly, @daily, "
                        "@hourly")
    p.add_argument("--workflow", required=True, help="the workflow name")
    p.add_argument("--task-queue", help="default: 'default'")
    p.add_argument("--args", help="the arguments, a JSON array (any other JSON value is the "
                                  "single argument)")
    p.add_argument("--timezone", default="UTC", help="an IANA name (default UTC)")
    p.add_argument("--overlap", choices=["skip", "allow", "buffer_one", "cancel_other"],
                   default="skip", help="when the last workflow still runs (default skip)")
    p.add_argument("--catchup-window", metavar="DURATION",
                   help="start ticks missed while no worker ran if at most this old "
                        "(default: only the latest)")
    p.add_argument("--jitter", metavar="DURATION",
                   help="delay each start by a part of this, the same in every worker")
    p.add_argument("--paused", action="store_true", help="create it paused")
    p.add_argument("--if-exists", choices=["error", "update"], default="error",
                   help="when the id is taken: fail (default) or redefine it")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging(args.log_level or ("info" if args.command == "worker" else "warning"))
    handler: Handler = args.handler
    try:
        return handler(args)
    except (UsageError, errors.ConfigurationError, errors.WorkflowNotFoundError,
            errors.DuplicateWorkflowError, errors.ScheduleNotFoundError,
            errors.DuplicateScheduleError, ValueError, TypeError) as exc:
        # ValueError/TypeError: the library's checks of names, JSON values and paths.
        _log.debug("command_refused", exc_info=True)
        if isinstance(exc, errors.WorkflowNotFoundError):  # which app was searched
            return fail(f"{exc} in app {args.app_id!r}", EXIT_USAGE)
        return fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130
    except (psycopg.DataError, psycopg.errors.ReservedName) as exc:
        # What the database refused as a value (a number out of range, text it cannot
        # store) or a name it keeps (`pg_*`): bad input that the library's checks missed.
        _log.debug("command_refused", exc_info=True)
        return fail(f"invalid input: {exc}", EXIT_USAGE)
    except (errors.HotMeshError, psycopg.Error) as exc:
        _log.debug("command_failed", exc_info=True)
        return fail(f"{type(exc).__name__}: {exc}", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
