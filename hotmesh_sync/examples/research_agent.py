"""A durable research agent: the agent *is* its entity; hooks add perspectives.

The coordinator seeds the document, then runs four hooks one after another.
Each hook writes its own subtree (``perspectives.optimistic``,
``perspectives.skeptical``, ``verification``, ``perspectives.synthesis``) and
signals the coordinator when done.

Run it: ``hotmesh-sync worker hotmesh_sync.examples.research_agent --task-queue agents``
and ``hotmesh-sync start research_agent --task-queue agents --entity research-agent
--args '["Long-term impacts of renewable energy subsidies"]' --wait``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from hotmesh_sync import RetryPolicy, workflow

# --- activities: deterministic stand-ins for the LLM calls --------------------


def _tag(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:6]


def search_for_supporting_evidence(query: str) -> list[dict[str, Any]]:
    """Findings that support the query's premise."""
    return [
        {"claim": f"Evidence supporting: {query}", "source": f"journal-{_tag(query)}-a",
         "strength": 0.8},
        {"claim": "Long-run costs fall as adoption grows", "source": "energy-review-2024",
         "strength": 0.7},
    ]


def search_for_counter_evidence(query: str) -> list[dict[str, Any]]:
    """Findings that question the query's premise."""
    return [
        {"claim": f"Evidence against: {query}", "source": f"journal-{_tag(query)}-b",
         "strength": 0.6},
    ]


def verify_source_credibility(query: str) -> dict[str, Any]:
    return {
        "credibleSources": [f"journal-{_tag(query)}-a", "energy-review-2024"],
        "questionableSources": [f"journal-{_tag(query)}-b"],
        "verificationMethod": "cross-reference",
        "overallCredibility": 0.82,
    }


def analyze_perspectives(perspectives: dict[str, Any]) -> dict[str, Any]:
    """Weigh the perspectives gathered so far into one assessment."""
    views = sorted(k for k in perspectives if k != "synthesis")
    confidences = [float(perspectives[k].get("confidence", 0)) for k in views]
    return {
        "synthesis": f"Weighed {len(views)} perspectives: {', '.join(views)}",
        "keyInsights": [f"{k} confidence {perspectives[k]['confidence']}" for k in views],
        "recommendations": ["Monitor long-run cost curves", "Revisit in 12 months"],
        "confidence": round(sum(confidences) / len(confidences), 2) if confidences else 0.75,
    }


activities = workflow.proxy_activities(
    activities=[search_for_supporting_evidence, search_for_counter_evidence,
                verify_source_credibility, analyze_perspectives],
    retry=RetryPolicy(maximum_attempts=3, backoff_coefficient=2, maximum_interval="10s"),
)

# --- the coordinator ---------------------------------------------------------


def research_agent(query: str) -> dict[str, Any]:
    agent = workflow.entity()
    agent.set({
        "query": query,
        "findings": [],
        "perspectives": {},
        "confidence": 0,
        "verification": {},
        "status": "researching",
        "startTime": workflow.now().isoformat(),
    })
    workflow.exec_hook(task_queue="agents", workflow_name="optimistic_perspective",
                       args=[query], signal_id="optimistic-complete")
    workflow.exec_hook(task_queue="agents", workflow_name="skeptical_perspective",
                       args=[query], signal_id="skeptical-complete")
    workflow.exec_hook(task_queue="agents", workflow_name="verification_hook",
                       args=[query], signal_id="verification-complete")
    workflow.exec_hook(task_queue="agents", workflow_name="synthesize_perspectives",
                       args=[], signal_id="synthesis-complete")
    return agent.get()  # type: ignore[no-any-return]

# --- the hooks ---------------------------------------------------------------


def optimistic_perspective(query: str, signal: str) -> None:
    entity = workflow.entity()
    findings = activities.search_for_supporting_evidence(query)
    entity.merge({"perspectives": {"optimistic": {
        "findings": findings, "confidence": 0.8,
        "completedAt": workflow.now().isoformat()}}})
    entity.append("findings", {"perspective": "optimistic", "count": len(findings)})
    workflow.signal(signal, {})


def skeptical_perspective(query: str, signal: str) -> None:
    entity = workflow.entity()
    counter = activities.search_for_counter_evidence(query)
    entity.merge({"perspectives": {"skeptical": {
        "counterEvidence": counter, "confidence": 0.6,
        "completedAt": workflow.now().isoformat()}}})
    entity.append("findings", {"perspective": "skeptical", "count": len(counter)})
    workflow.signal(signal, {})


def verification_hook(query: str, signal: str) -> None:
    entity = workflow.entity()
    credibility = activities.verify_source_credibility(query)
    entity.merge({"verification": {"credibility": credibility,
                                   "completedAt": workflow.now().isoformat()}})
    workflow.signal(signal, {})


def synthesize_perspectives(signal: str) -> None:
    entity = workflow.entity()
    context = entity.get()
    assessment = activities.analyze_perspectives(context["perspectives"])
    entity.merge({
        "perspectives": {"synthesis": {
            "finalAssessment": assessment,
            "confidence": assessment["confidence"],
            "completedAt": workflow.now().isoformat()}},
        "confidence": assessment["confidence"],
        "status": "completed",
    })
    workflow.signal(signal, {})


WORKFLOWS: list[Callable[..., Any]] = [
    research_agent, optimistic_perspective, skeptical_perspective, verification_hook,
    synthesize_perspectives]
