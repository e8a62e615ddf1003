"""The dashboard's pages: each reads what it shows and renders one template."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store import dashboard as reads
from ..store.dashboard import STATUSES, EntitySearch, WorkflowFilter
from ..worker.activation import WORKER_STALE
from . import presenters
from .http import BadRequest, Request

if TYPE_CHECKING:
    from ..memflow import MemFlow

#: Rows per page of workflows.
PER_PAGE = 50
#: Versions of the entity shown as diffs (the newest).
HISTORY_SHOWN = 50
#: Steps shown on a workflow page (a long-lived workflow's run may hold more).
STEPS_SHOWN = 2000
NOTICES = {
    "signalled": "Signal sent.",
    "not-signalled": "The workflow had already ended: the signal was not kept.",
    "interrupted": "Interrupt requested: the workflow cleans up, then ends.",
    "retried": "The workflow runs again from the step that failed.",
    "not-retried": "Nothing to retry: the workflow has not failed.",
    "not-interrupted": "Nothing to interrupt: the workflow had already ended.",
    "triggered": "The schedule started a workflow.",
    "paused": "The schedule is paused.",
    "unpaused": "The schedule runs again.",
}


def parse_search(text: str) -> EntitySearch | None:
    """The search box: ``{"a": 1}`` (contains), ``a.b=value`` (contains at a
    path; the value is JSON, else text), ``$...`` (a SQL/JSON path predicate),
    anything else a case-insensitive substring of the document."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"the search is not a JSON object: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise BadRequest("the search is not a JSON object")
        return EntitySearch("contains", value)
    if text.startswith("$"):
        return EntitySearch("jsonpath", text)
    path, equals, raw = text.partition("=")
    if equals and path.strip() and " " not in path.strip():
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw.strip()
        for part in reversed(path.strip().split(".")):
            value = {part: value}
        return EntitySearch("contains", value)
    return EntitySearch("text", text)


def encode_cursor(cursor: tuple[datetime, str] | None) -> str | None:
    if cursor is None:
        return None
    raw = json.dumps([cursor[0].isoformat(), cursor[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[datetime, str] | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        moment, workflow_id = json.loads(raw)
        return datetime.fromisoformat(moment), str(workflow_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadRequest("the page link is damaged: start from the first page") from exc


def workflows(mf: MemFlow, request: Request) -> dict[str, Any]:
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"unknown status {status!r}")
    search_text = q.get("q", "")
    search = parse_search(search_text)
    problem = None
    if search is not None and search.kind == "jsonpath":
        problem = reads.check_jsonpath(mf.pool, str(search.value))
    where = WorkflowFilter(status=status, entity=q.get("entity") or None,
                           name=q.get("name") or None, queue=q.get("queue") or None,
                           search=None if problem else search)
    page = reads.list_workflows(mf.pool, mf.schema, where, PER_PAGE,
                                before=decode_cursor(q.get("before")),
                                after=decode_cursor(q.get("after")))
    filters = {"status": status, "entity": where.entity, "name": where.name,
               "queue": where.queue, "q": search_text or None}
    return {"page": page, "filters": filters, "statuses": STATUSES,
            "search_problem": problem, "older": encode_cursor(page.older),
            "newer": encode_cursor(page.newer), "count_cap": reads.COUNT_CAP,
            "total": sum(page.counts.values())}


def workflow(mf: MemFlow, request: Request) -> dict[str, Any] | None:
    workflow_id = request.query.get("id", "")
    if not workflow_id:
        raise BadRequest("which workflow? (?id=...)")
    run_id = request.query.get("run") or None
    params = {"id": workflow_id}
    wanted: dict[str, tuple[str, dict[str, Any]]] = {
        "job": ("dash_job", params),
        "runs": ("dash_code_runs", params),
        "steps": ("dash_steps", {"id": workflow_id, "limit": STEPS_SHOWN}),
        "tasks": ("dash_tasks", params),
        "signals": ("dash_signals", params),
        "waits": ("dash_waits", params),
        "children": ("dash_descendants", params),
        "history": ("dash_history", {"id": workflow_id, "limit": HISTORY_SHOWN}),
        "workflow_runs": ("dash_workflow_runs", params),
    }
    if run_id is not None:
        wanted["old_steps"] = ("dash_run_steps", {"id": workflow_id, "run_id": "@" + run_id,
                                                  "limit": STEPS_SHOWN})
    found = reads.fetch_many(mf.pool, mf.schema, wanted)
    if not found["job"]:
        return None
    job = found["job"][0]
    if run_id is not None:
        lanes = presenters.timeline(
            [dict(s, run_id="") for s in found["old_steps"]], [], [], [],
            _ended_run(job, found, run_id))
    else:
        lanes = presenters.timeline(found["steps"], found["runs"], found["tasks"],
                                    found["waits"], job)
    history = [{"version": h["version"], "at": h["at"],
                "ops": presenters.patch_ops(h["patch"])} for h in found["history"]]
    return {"job": job, "error": presenters.error_view(job["error"]),
            "timeline": lanes, "hooks": [r for r in found["runs"] if r["run_id"] != ""],
            "signals": found["signals"], "waits": found["waits"],
            "children": found["children"], "history": history,
            "history_shown": HISTORY_SHOWN, "runs": found["workflow_runs"],
            "run_id": run_id, "steps_shown": STEPS_SHOWN,
            "step_count": len(found["steps"]),
            "ended": job["status"] in presenters.TERMINAL,
            "can_retry": job["status"] in ("failed", "interrupted")}


def _ended_run(job: dict[str, Any], found: dict[str, list[dict[str, Any]]],
               run_id: str) -> dict[str, Any]:
    """The job row as it was for an ended run: the timeline's time axis."""
    for run in found["workflow_runs"]:
        if run["run_id"] == run_id:
            return dict(job, run_started_at=run["started_at"], completed_at=run["ended_at"],
                        status=run["status"], workflow_name=run["workflow_name"])
    raise BadRequest(f"workflow {job['id']!r} has no ended run {run_id!r}")


def schedules(mf: MemFlow, request: Request) -> dict[str, Any]:
    return {"schedules": mf.schedules.list()}


def queues(mf: MemFlow, request: Request) -> dict[str, Any]:
    from ..queues import format_rate

    rows = reads.fetch(mf.pool, mf.schema, "dash_queues", {"stale": WORKER_STALE})
    for row in rows:
        row["rate_limit"] = format_rate(row["rate_count"], row["rate_period"])
    return {"queues": rows}


def workers(mf: MemFlow, request: Request) -> dict[str, Any]:
    return {"workers": reads.fetch(mf.pool, mf.schema, "dash_workers",
                                   {"stale": WORKER_STALE})}


def failed(mf: MemFlow, request: Request) -> dict[str, Any]:
    found = reads.fetch_many(mf.pool, mf.schema, {
        "failed": ("dash_failed", {"limit": 200}),
        "set_aside": ("dash_set_aside", {"limit": 200}),
        "retrying": ("dash_retrying_tasks", {"limit": 200}),
    })
    for row in found["failed"]:
        row["error_view"] = presenters.error_view(row["error"])
    return found
