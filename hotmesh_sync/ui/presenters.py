"""Rows as the pages show them: durations, the step timeline, errors, patches.

Pure functions of what the store returned, so each is tested without a
browser. The timeline derives when a step started from what is recorded: a
coordinator reaches a durable call right after the activation that recorded
the step before it, so a step starts when the previous step of its lane (or
of the lane that forked it) was recorded, and the first one when its run
started. Steps recorded in one activation share a time and take no width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: The timeline is drawn in this many units across (an SVG viewBox).
SCALE = 1000
TERMINAL = ("completed", "failed", "interrupted")


def duration(seconds: float | None) -> str:
    """A short human duration: 35 ms, 1.2 s, 3 min 2 s, 2 h 5 min, 3 d 4 h."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def span(start: datetime | None, end: datetime | None) -> str:
    """The duration between two moments; to now while ``end`` is None."""
    if start is None:
        return ""
    return duration(((end or datetime.now(timezone.utc)) - start).total_seconds())


def short_json(value: Any, limit: int = 120) -> str:
    """Compact JSON, cut at ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str)


@dataclass
class ErrorView:
    code: int | None
    error_type: str
    kind: str
    message: str
    causes: list[tuple[str, str]]


def error_view(record: Any) -> ErrorView | None:
    """A stored error record (step, run or workflow) as the page shows it."""
    if not isinstance(record, dict):
        return None
    causes = [(str(c.get("error_type", "")), str(c.get("message", "")))
              for c in record.get("causes") or [] if isinstance(c, dict)]
    code = record.get("code")
    return ErrorView(code=code if isinstance(code, int) else None,
                     error_type=str(record.get("error_type") or record.get("type") or "Error"),
                     kind=str(record.get("type") or ""),
                     message=str(record.get("message", "")), causes=causes)


@dataclass
class StepView:
    key: str
    kind: str
    name: str
    state: str  # "done", "failed", "running", "queued", "sleeping", "waiting"
    start: datetime
    end: datetime | None
    detail: str = ""
    error: ErrorView | None = None
    attempt: int | None = None
    x: int = 0
    width: int = 0

    @property
    def took(self) -> str:
        return span(self.start, self.end)


@dataclass
class Lane:
    """One sequence of calls: the run's own, or one branch of a workflow.all."""

    path: str
    label: str
    steps: list[StepView] = field(default_factory=list)


@dataclass
class RunTimeline:
    run_id: str
    title: str
    status: str
    lanes: list[Lane]


def lane_of(step_key: str) -> str:
    """The branch a step key belongs to: "" for the run's own calls, "3.1"
    for the second branch of the workflow.all at call 3."""
    return step_key.rpartition(".")[0]


def _lane_label(path: str) -> str:
    if not path:
        return "main"
    parts = path.split(".")
    # Pairs of (call of the all, branch index), outermost first.
    labels = [f"all@{parts[i]} branch {parts[i + 1]}" for i in range(0, len(parts) - 1, 2)]
    return " › ".join(labels) or path


def timeline(steps: list[dict[str, Any]], runs: list[dict[str, Any]],
             tasks: list[dict[str, Any]], waits: list[dict[str, Any]],
             job: dict[str, Any]) -> list[RunTimeline]:
    """The steps of the coordinator and of each hook, as lanes of bars on one
    time axis (the workflow's run start to its end, or now)."""
    now = datetime.now(timezone.utc)
    starts = {str(r["run_id"]): r["created_at"] for r in runs}
    starts[""] = job["run_started_at"]
    views: dict[str, list[StepView]] = {}
    for run_id in [""] + [str(r["run_id"]) for r in runs if r["run_id"] != ""]:
        mine = [s for s in steps if s["run_id"] == run_id]
        views[run_id] = _recorded(mine, starts.get(run_id) or job["run_started_at"])
    for task in tasks:
        views.setdefault(str(task["run_id"]), []).append(_in_flight(task, now))
    for wait in waits:
        views.setdefault(str(wait["run_id"]), []).append(StepView(
            key=str(wait["step_key"]), kind="wait", name=str(wait["signal_id"]),
            state="waiting", start=wait["created_at"], end=None,
            detail=f"waiting for signal {wait['signal_id']!r}"))
    origin = job["run_started_at"]
    finish = job["completed_at"] if job["status"] in TERMINAL and job["completed_at"] else now
    ends = [v.end or now for vs in views.values() for v in vs]
    finish = max([finish, *ends]) if ends else finish
    total = max((finish - origin).total_seconds(), 1e-6)
    names = {str(r["run_id"]): (str(r["workflow_name"]), str(r["status"])) for r in runs}
    result: list[RunTimeline] = []
    for run_id, step_views in views.items():
        if not step_views and run_id != "":
            continue
        for view in step_views:
            _place(view, origin, total, now)
        title, status = names.get(run_id, (str(job["workflow_name"]), str(job["status"])))
        if run_id == "":
            title, status = str(job["workflow_name"]), str(job["status"])
        result.append(RunTimeline(run_id=run_id, title=title, status=status,
                                  lanes=_lanes(step_views)))
    return result


def _recorded(steps: list[dict[str, Any]], run_start: datetime) -> list[StepView]:
    """Recorded steps, each starting when its lane (or an enclosing one) last
    recorded something before it."""
    latest: dict[str, datetime] = {}
    views: list[StepView] = []
    for step in steps:
        key = str(step["step_key"])
        lane = lane_of(key)
        start = run_start
        probe = lane
        while True:  # this lane, else the lane that forked it, and so on out
            if probe in latest:
                start = max(start, latest[probe])
                break
            if probe == "":
                break
            probe = lane_of(lane_of(probe))
        end = step["created_at"]
        latest[lane] = end
        error = error_view(step["error"])
        views.append(StepView(
            key=key, kind=str(step["kind"]), name=str(step["name"]),
            state="failed" if error else "done", start=min(start, end), end=end,
            detail="" if step["result"] is None else short_json(step["result"], 90),
            error=error, attempt=_attempts(step["error"])))
    return views


def _attempts(error: Any) -> int | None:
    if isinstance(error, dict) and isinstance(error.get("attempts"), int):
        return int(error["attempts"])
    return None


def _in_flight(task: dict[str, Any], now: datetime) -> StepView:
    kind = str(task["kind"])
    payload = task["payload"] if isinstance(task["payload"], dict) else {}
    name = str(payload.get("name") or payload.get("activity") or kind)
    if kind == "timer":
        state, detail = "sleeping", f"until {task['run_at']:%Y-%m-%d %H:%M:%S} UTC"
    elif task["leased_by"] and task["lease_until"] and task["lease_until"] > now:
        state, detail = "running", f"on {task['leased_by']}"
    elif task["run_at"] > now:
        state, detail = "queued", f"due {task['run_at']:%Y-%m-%d %H:%M:%S} UTC"
    else:
        state, detail = "queued", "waiting for a worker"
    return StepView(key=str(task["step_key"] or ""), kind=kind, name=name, state=state,
                    start=task["created_at"], end=None, detail=detail,
                    attempt=int(task["claims"]) if task["claims"] else None)


def _place(view: StepView, origin: datetime, total: float, now: datetime) -> None:
    begin = max((view.start - origin).total_seconds(), 0.0)
    end = max(((view.end or now) - origin).total_seconds(), begin)
    view.x = min(int(begin / total * SCALE), SCALE - 1)
    # At least a sliver, so an instant step is still a visible mark.
    view.width = max(int((end - begin) / total * SCALE), 2)
    view.width = min(view.width, SCALE - view.x)


def _lanes(views: list[StepView]) -> list[Lane]:
    lanes: dict[str, Lane] = {}
    for view in views:
        path = lane_of(view.key) if view.kind not in ("run", "hook") else ""
        lane = lanes.get(path)
        if lane is None:
            lane = lanes[path] = Lane(path=path, label=_lane_label(path))
        lane.steps.append(view)
    # Branches in their order in the code, whichever finished first.
    return sorted(lanes.values(), key=lambda lane: _numeric(lane.path))


def _numeric(path: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in path.split(".") if part)


@dataclass
class PatchOp:
    op: str
    path: str
    value: str


def patch_ops(patch: Any) -> list[PatchOp]:
    """An RFC 6902 patch as rows: operation, JSON pointer, new value."""
    rows: list[PatchOp] = []
    for op in patch if isinstance(patch, list) else []:
        if not isinstance(op, dict):
            continue
        value = op.get("value", op.get("from", ""))
        rows.append(PatchOp(op=str(op.get("op", "")), path=str(op.get("path", "")) or "/",
                            value="" if "value" not in op and "from" not in op
                            else short_json(value, 200)))
    return rows
