"""``python -m benchmarks --dsn DSN [--quick] [--only NAME,...] [--json PATH] [--profile]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import (
    bench_backlog,
    bench_commit,
    bench_dashboard,
    bench_dbos,
    bench_entity,
    bench_fanout,
    bench_flow,
    bench_inprocess,
    bench_latency,
    bench_processes,
    bench_replay,
    bench_retention,
    bench_throughput,
    profiling,
    sqltrace,
)
from .harness import RunContext, quiet_logging
from .report import machine_facts, render_table, write_json
from .results import Outcome
from .sizes import FULL, QUICK
from .targets import evaluate

BENCHMARKS: dict[str, Callable[[RunContext], Outcome]] = {
    # The DBOS figures run right after ours they are held against.
    "commit_limit": bench_commit.run,
    "throughput": bench_throughput.run,
    "latency": bench_latency.run,
    "dbos": bench_dbos.run,
    "entity": bench_entity.run,
    "replay": bench_replay.run,
    "fanout": bench_fanout.run,
    "backlog": bench_backlog.run,
    "flow": bench_flow.run,
    # Spawns 1, 2 and 4 worker processes (hotmesh-sync worker --processes N).
    "processes": bench_processes.run,
    "inprocess": bench_inprocess.run,
    # Loads a million finished workflows: minutes of its own (--quick: 20,000).
    "retention": bench_retention.run,
    # Loads 100,000 workflows, then times the dashboard's pages over them.
    "dashboard": bench_dashboard.run,
}
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure hotmesh_sync (and DBOS Transact beside it) on one PostgreSQL.")
    parser.add_argument("--dsn", default=os.environ.get("HOTMESH_DSN"),
                        help="libpq connection string (default: $HOTMESH_DSN)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: the whole run in a minute or two (a smoke check)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json",
                        help="where to write the JSON report (default: %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="sample each benchmark's worker process with py-spy; slows it")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("--dsn is required (or set $HOTMESH_DSN)")
    unknown = {n for n in args.only.split(",") if n} - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return args


def run_one(name: str, ctx: RunContext) -> Outcome:
    """Run one benchmark; its failure becomes an error in its outcome, not the run's end."""
    profile = ctx.profile_path(name)
    if profile is not None:  # a previous run's samples
        profile.unlink(missing_ok=True)
        profile.with_suffix(".sql.json").unlink(missing_ok=True)
    began = time.perf_counter()
    try:
        outcome = BENCHMARKS[name](ctx)
    except Exception as exc:
        traceback.print_exc()
        outcome = Outcome(name, name, error=f"{type(exc).__name__}: {exc}")
    outcome.seconds = time.perf_counter() - began
    if profile is not None and profile.exists():
        attach_profile(outcome, profile)
    return outcome


def attach_profile(outcome: Outcome, raw: Path) -> None:
    """Summarize a py-spy profile (and the SQL trace) beside it; name the top in the notes."""
    stacks = profiling.read_samples(raw)
    by_self = profiling.hotspots(stacks, 25, by="self")
    by_total = profiling.hotspots(stacks, 40, by="total")
    parts = [profiling.render(by_self, f"{outcome.name}: worker samples by self time"),
             profiling.render(by_total, f"{outcome.name}: by total time")]
    top = ", ".join(f"{s.function} {s.self_pct:.0f}%" for s in by_self[:5])
    outcome.notes.append(f"profile ({sum(stacks.values())} samples): {top}")
    trace_file = raw.with_suffix(".sql.json")
    if trace_file.exists():
        trace = {name: (int(c), float(s))
                 for name, (c, s) in json.loads(trace_file.read_text()).items()}
        unit, count = outcome.unit or ("run", 1)
        parts.append(sqltrace.render(trace, count, f"{outcome.name}: SQL per {unit}"))
        statements = sum(c for name, (c, _) in trace.items() if not name.startswith("tx:"))
        outcome.notes.append(f"SQL: {statements / count:.1f} statements per {unit}")
    summary = raw.with_suffix(".summary.txt")
    summary.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    outcome.notes.append(f"profile summary: {summary}")


def redacted(argv: list[str]) -> list[str]:
    """The command line without any password in the DSN."""
    shown = []
    for i, arg in enumerate(argv):
        if i > 0 and argv[i - 1] == "--dsn":
            params = conninfo_to_dict(arg)
            params.pop("password", None)
            arg = make_conninfo(**{k: str(v) for k, v in params.items()})
        shown.append(arg)
    return shown


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    quiet_logging()
    ctx = RunContext(dsn=args.dsn, sizes=QUICK if args.quick else FULL, quick=args.quick,
                     results_dir=args.json.resolve().parent, profile=args.profile)
    names = [n for n in BENCHMARKS if not args.only or n in args.only.split(",")]
    machine = machine_facts(ctx.dsn)
    outcomes = []
    for name in names:
        print(f"-> {name} ...", file=sys.stderr, flush=True)
        outcome = run_one(name, ctx)
        print(f"   {name} done in {outcome.seconds:.1f}s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    verdicts = evaluate(outcomes)
    pg = machine.get("postgresql", {})
    print(f"machine: {machine['cpus']} cpus ({machine['cpu_model']}), load "
          f"{machine['load_average']}, Python {machine['python']}, PostgreSQL "
          f"{pg.get('server_version')} (synchronous_commit={pg.get('synchronous_commit')})")
    print(render_table(outcomes, verdicts))
    write_json(args.json, ctx, redacted(argv), machine, outcomes, verdicts)
    print(f"\nJSON: {args.json}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
