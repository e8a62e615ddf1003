"""The report of one run: a table for people, a JSON document for machines."""

from __future__ import annotations

import json
import os
import platform
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from .harness import RunContext, server_facts
from .results import Outcome, format_value
from .targets import Verdict


def machine_facts(dsn: str) -> dict[str, Any]:
    """Where the figures came from: cores, memory, load, Python, PostgreSQL settings."""
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        facts["postgresql"] = server_facts(dsn)
    except Exception as exc:  # the report must not fail for want of its context
        facts["postgresql"] = {"error": repr(exc)}
    return facts


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def render_table(outcomes: list[Outcome], verdicts: list[Verdict]) -> str:
    """Every figure, grouped by benchmark, then the targets with PASS / MISS."""
    lines: list[str] = []
    for outcome in outcomes:
        lines.append(f"\n{outcome.title}  [{outcome.seconds:.1f}s]")
        if outcome.skipped:
            lines.append(f"  skipped: {outcome.skipped}")
        if outcome.error:
            lines.append(f"  ERROR: {outcome.error}")
        for metric in outcome.metrics:
            lines.append(f"  {metric.label:<58} {format_value(metric.value):>10} {metric.unit}")
        for note in outcome.notes:
            lines.append(f"  note: {note}")
    lines.append("\ntargets (ratios measured in this run)")
    for verdict in verdicts:
        lines.append(f"  {verdict.status:<5} {verdict.target.label:<50} "
                     f"{verdict.shown:>14}   goal {verdict.goal}")
    return "\n".join(lines)


def write_json(path: Path, ctx: RunContext, argv: list[str], machine: dict[str, Any],
               outcomes: list[Outcome], verdicts: list[Verdict]) -> None:
    document = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "benchmarks", *argv]),
        "quick": ctx.quick,
        "sizes": ctx.sizes.__dict__,
        "machine": machine,
        "benchmarks": [o.to_json() for o in outcomes],
        "targets": [
            {"label": v.target.label, "status": v.status, "measured": v.measured,
             "goal": v.goal, "numerator": v.target.numerator,
             "denominator": v.target.denominator}
            for v in verdicts
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
