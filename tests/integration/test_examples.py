"""The seed's examples end to end: exact final documents, no duplicated appends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
import pytest

from hotmesh_sync import MemFlow
from hotmesh_sync.examples import document_pipeline, research_agent

QUERY = "Long-term impacts of renewable energy subsidies"


def without_times(value: Any) -> Any:
    """The document with every timestamp field checked for format and removed."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("startTime", "completedAt"):
                datetime.fromisoformat(item)
                continue
            out[key] = without_times(item)
        return out
    if isinstance(value, list):
        return [without_times(v) for v in value]
    return value


def test_research_agent_final_document(mf: MemFlow, worker: Any) -> None:
    worker("agents", workflows=research_agent.WORKFLOWS, concurrency=4)
    handle = mf.workflow.start(
        entity="research-agent", workflow_name="research_agent",
        workflow_id="agent-session-jane-001", args=[QUERY], task_queue="agents")
    result = handle.result(timeout=60)
    assert result == handle.state()
    tag = research_agent._tag(QUERY)
    assert without_times(result) == {
        "query": QUERY,
        "findings": [{"perspective": "optimistic", "count": 2},
                     {"perspective": "skeptical", "count": 1}],
        "perspectives": {
            "optimistic": {"findings": research_agent.search_for_supporting_evidence(QUERY),
                           "confidence": 0.8},
            "skeptical": {"counterEvidence": research_agent.search_for_counter_evidence(QUERY),
                          "confidence": 0.6},
            "synthesis": {
                "finalAssessment": {
                    "synthesis": "Weighed 2 perspectives: optimistic, skeptical",
                    "keyInsights": ["optimistic confidence 0.8", "skeptical confidence 0.6"],
                    "recommendations": ["Monitor long-run cost curves",
                                        "Revisit in 12 months"],
                    "confidence": 0.7},
                "confidence": 0.7},
        },
        "confidence": 0.7,
        "verification": {"credibility": {
            "credibleSources": [f"journal-{tag}-a", "energy-review-2024"],
            "questionableSources": [f"journal-{tag}-b"],
            "verificationMethod": "cross-reference",
            "overallCredibility": 0.82}},
        "status": "completed",
    }
    # The seed's direct SQL works against the app's jobs table.
    with psycopg.connect(mf.dsn) as conn:
        rows = conn.execute(
            f"SELECT id, context->>'status', (context->>'confidence')::numeric"  # noqa: S608
            f" FROM {mf.schema}.jobs WHERE entity = 'research-agent'"
            f" AND (context->>'confidence')::numeric > 0.5").fetchall()
    assert [(r[0], r[1], float(r[2])) for r in rows] == [
        ("agent-session-jane-001", "completed", 0.7)]


def test_document_pipeline_final_document(mf: MemFlow, worker: Any) -> None:
    worker("pipeline", workflows=document_pipeline.WORKFLOWS, concurrency=4)
    handle = mf.workflow.start(document_pipeline.document_processing_pipeline,
                               task_queue="pipeline", entity="document", workflow_id="doc-1")
    result = handle.result(timeout=60)
    doc_id = result["documentId"]
    assert doc_id.startswith("doc-") and doc_id[4:].isdigit()
    ada = {"memberId": "M-1001", "pages": [1, 2], "name": "Ada Lovelace", "plan": "gold",
           "address": "12 Analytical Way"}
    charles = {"memberId": "M-2002", "pages": [3], "name": "Charles Babbage"}
    expected = {
        "documentId": doc_id,
        "status": "completed",
        "imageRefs": document_pipeline.PAGES,
        "extractedInfo": [
            {"pageNumber": n, "imageRef": ref,
             "memberInfo": dict(document_pipeline.PAGE_CONTENT[ref], page=n)}
            for n, ref in enumerate(document_pipeline.PAGES, start=1)],
        "validationResults": [
            {"memberId": "M-1001", "pages": [1, 2], "isValid": True, "combinedInfo": ada},
            {"memberId": "M-2002", "pages": [3], "isValid": False, "combinedInfo": charles}],
        "approvalResults": [
            {"memberId": "M-1001", "approvalResult": {"memberId": "M-1001",
                                                      "status": "approved"}},
            {"memberId": "M-2002", "approvalResult": {"memberId": "M-2002",
                                                      "status": "rejected"}}],
        "notificationResults": [{"memberId": "M-1001", "status": "approved"},
                                {"memberId": "M-2002", "status": "rejected"}],
        "finalResult": {"documentId": doc_id, "totalPages": 3, "extractedPages": 3,
                        "validatedMembers": 1, "approvedMembers": 1, "notifications": 2,
                        "status": "completed"},
        "processingSteps": [
            "image-load-started", "image-load-completed", "page-1-processed",
            "page-2-processed", "page-3-processed", "validation-completed",
            "approval-completed", "notifications-sent", "pipeline-completed"],
        "errors": [],
        "pageSignals": {"page-1-complete": True, "page-2-complete": True,
                        "page-3-complete": True},
    }
    assert without_times(result) == expected
    assert handle.state() == result
    # Every version is in the history: replaying the patches rebuilds the document.
    import jsonpatch

    document: Any = {}
    for version in handle.history():
        document = jsonpatch.apply_patch(document, version["patch"])
    assert document == result


@pytest.mark.parametrize("runs", [3])
def test_pipeline_runs_side_by_side(mf: MemFlow, worker: Any, runs: int) -> None:
    """Several pipelines at once keep their own entities apart."""
    worker("pipeline", workflows=document_pipeline.WORKFLOWS, concurrency=4)
    handles = [mf.workflow.start(document_pipeline.document_processing_pipeline,
                                 task_queue="pipeline", workflow_id=f"doc-par-{i}")
               for i in range(runs)]
    for handle in handles:
        assert len(handle.result(timeout=60)["processingSteps"]) == 9
