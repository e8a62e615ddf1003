"""``hotmesh-sync demo``: the seed's two examples, end to end, in one process.

Starts a worker in this process, runs the research agent and the document
pipeline, prints each hook's signal as the coordinator receives it, then the
final documents.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from .client import WorkflowHandle
from .examples import document_pipeline, research_agent
from .memflow import MemFlow

QUERY = "Long-term impacts of renewable energy subsidies"


def quote_ident(name: str) -> str:
    """A schema name as SQL needs it (``default`` is a reserved word)."""
    return '"' + name.replace('"', '""') + '"'


def follow(handle: WorkflowHandle, out: IO[str], timeout: float = 120.0) -> Any:
    """Print every signal the coordinator takes in, until the workflow ends."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        for step in handle.steps():
            if step["run_id"] == "" and step["kind"] == "wait" and step["key"] not in seen:
                seen.add(step["key"])
                print(f"  ✓ {step['name']}", file=out, flush=True)
        if handle.status() in ("completed", "failed", "interrupted"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{handle.workflow_id} did not finish in {timeout}s")
        time.sleep(0.05)
    return handle.result(timeout=5)


def main(memflow: MemFlow, out: IO[str] = sys.stdout, as_json: bool = False) -> int:
    """Run both examples on ``memflow``; 0 when both complete. With ``as_json``
    the only output is one JSON object: both final documents and where they are."""
    if as_json:
        return _as_json(memflow, out)
    suffix = time.strftime("%Y%m%d-%H%M%S")
    with memflow.worker("agents", workflows=research_agent.WORKFLOWS, concurrency=4), \
            memflow.worker("pipeline", workflows=document_pipeline.WORKFLOWS, concurrency=4):
        print(f"Research agent (workflow agent-session-{suffix}):", file=out, flush=True)
        agent = memflow.workflow.start(
            entity="research-agent", workflow_name="research_agent", args=[QUERY],
            task_queue="agents", workflow_id=f"agent-session-{suffix}")
        agent_doc = follow(agent, out)
        print(json.dumps(agent_doc, indent=2), file=out)

        print(f"\nDocument pipeline (workflow doc-pipeline-{suffix}):", file=out, flush=True)
        pipeline = memflow.workflow.start(
            entity="document", workflow_name="document_processing_pipeline",
            task_queue="pipeline", workflow_id=f"doc-pipeline-{suffix}")
        pipeline_doc = follow(pipeline, out)
        print(json.dumps(pipeline_doc, indent=2), file=out)

    table = f"{quote_ident(memflow.schema)}.jobs"
    print(f"\nBoth workflows completed. Their entities are rows of {table}:", file=out)
    print(f"  SELECT id, status, context->>'status' FROM {table};", file=out)
    return 0


def _as_json(memflow: MemFlow, out: IO[str]) -> int:
    """The demo for scripts: nothing printed but the outcome, as one JSON object."""
    suffix = time.strftime("%Y%m%d-%H%M%S")
    with memflow.worker("agents", workflows=research_agent.WORKFLOWS, concurrency=4), \
            memflow.worker("pipeline", workflows=document_pipeline.WORKFLOWS, concurrency=4):
        agent = memflow.workflow.start(
            entity="research-agent", workflow_name="research_agent", args=[QUERY],
            task_queue="agents", workflow_id=f"agent-session-{suffix}")
        pipeline = memflow.workflow.start(
            entity="document", workflow_name="document_processing_pipeline",
            task_queue="pipeline", workflow_id=f"doc-pipeline-{suffix}")
        documents = {handle.workflow_id: handle.result(timeout=120)
                     for handle in (agent, pipeline)}
    table = f"{quote_ident(memflow.schema)}.jobs"
    print(json.dumps({"app_id": memflow.app_id, "jobs_table": table,
                      "workflows": documents}), file=out)
    return 0
