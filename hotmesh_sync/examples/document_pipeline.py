"""A stateful document pipeline: page hooks, validation, approval, notification.

The coordinator seeds the document, loads page references, runs one hook per
page, then validation, approval and notification hooks, each of which reads
the shared entity and writes its own fields. ``processingSteps`` is the audit
trail: each marker is appended exactly once, however often code replays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hotmesh_sync import RetryPolicy, workflow

# --- activities: deterministic stand-ins for image loading and extraction ------

PAGES = ["scans/page1.png", "scans/page2.png", "scans/page3.png"]

#: What "reading" each page yields: page 2 continues page 1's member.
PAGE_CONTENT: dict[str, dict[str, Any]] = {
    "scans/page1.png": {"memberId": "M-1001", "name": "Ada Lovelace", "plan": "gold",
                        "isPartialInfo": False},
    "scans/page2.png": {"memberId": None, "address": "12 Analytical Way",
                        "isPartialInfo": True},
    "scans/page3.png": {"memberId": "M-2002", "name": "Charles Babbage", "plan": None,
                        "isPartialInfo": False},
}


def load_image_pages() -> list[str]:
    return list(PAGES)


def extract_member_info_from_page(image_ref: str, page_number: int) -> dict[str, Any]:
    return dict(PAGE_CONTENT[image_ref], page=page_number)


def validate_member_info(member: dict[str, Any]) -> bool:
    """A member is valid with an id, a name and a plan."""
    return bool(member.get("memberId") and member.get("name") and member.get("plan"))


def process_document_approval(member: dict[str, Any], is_valid: bool) -> dict[str, Any]:
    return {"memberId": member["memberId"], "status": "approved" if is_valid else "rejected"}


def send_notification(approval: dict[str, Any]) -> bool:
    return True


activities = workflow.proxy_activities(
    activities=[load_image_pages, extract_member_info_from_page, validate_member_info,
                process_document_approval, send_notification],
    retry=RetryPolicy(maximum_attempts=2, backoff_coefficient=2, maximum_interval="5s"),
)

# --- the coordinator ---------------------------------------------------------


def document_processing_pipeline() -> dict[str, Any]:
    pipeline = workflow.entity()
    started = workflow.now()
    initial: dict[str, Any] = {
        "documentId": f"doc-{int(started.timestamp() * 1000)}",
        "status": "started",
        "startTime": started.isoformat(),
        "imageRefs": [],
        "extractedInfo": [],
        "validationResults": [],
        "finalResult": None,
        "processingSteps": [],
        "errors": [],
        "pageSignals": {},
    }
    pipeline.set(initial)

    pipeline.merge({"status": "loading-images"})
    pipeline.append("processingSteps", "image-load-started")
    image_refs = activities.load_image_pages()
    if not image_refs:
        raise ValueError("No image references found")
    pipeline.merge({"imageRefs": image_refs})
    pipeline.append("processingSteps", "image-load-completed")

    for index, ref in enumerate(image_refs):
        page = index + 1
        done = workflow.exec_hook(task_queue="pipeline", workflow_name="page_processing_hook",
                                  args=[ref, page, initial["documentId"]],
                                  signal_id=f"page-{page}-complete")
        pipeline.merge({"pageSignals": {f"page-{page}-complete": bool(done["completed"])}})

    extracted = pipeline.get("extractedInfo")
    if len(extracted) != len(image_refs):
        raise RuntimeError(f"expected {len(image_refs)} pages, got {len(extracted)}")

    workflow.exec_hook(task_queue="pipeline", workflow_name="validation_hook",
                       args=[initial["documentId"]], signal_id="validation-complete")
    workflow.exec_hook(task_queue="pipeline", workflow_name="approval_hook",
                       args=[initial["documentId"]], signal_id="approval-complete")
    workflow.exec_hook(task_queue="pipeline", workflow_name="notification_hook",
                       args=[initial["documentId"]], signal_id="processing-complete")

    pipeline.merge({"status": "completed", "completedAt": workflow.now().isoformat()})
    pipeline.append("processingSteps", "pipeline-completed")
    return pipeline.get()  # type: ignore[no-any-return]

# --- the hooks ---------------------------------------------------------------


def page_processing_hook(image_ref: str, page_number: int, document_id: str) -> None:
    pipeline = workflow.entity()
    member = activities.extract_member_info_from_page(image_ref, page_number)
    pipeline.append("extractedInfo", {"pageNumber": page_number, "memberInfo": member,
                                      "imageRef": image_ref})
    pipeline.append("processingSteps", f"page-{page_number}-processed")
    workflow.signal(f"page-{page_number}-complete", {
        "pageNumber": page_number, "memberId": member.get("memberId"),
        "imageRef": image_ref, "completed": True})


def _members(extracted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Combine pages into members; a partial page belongs to the member before it."""
    members: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for item in sorted(extracted, key=lambda e: e["pageNumber"]):
        info = dict(item["memberInfo"])
        member_id = info.get("memberId") or (current if info.get("isPartialInfo") else None)
        if member_id is None:
            continue
        current = member_id
        combined = members.setdefault(member_id, {"memberId": member_id, "pages": []})
        combined.update({k: v for k, v in info.items()
                         if k not in ("isPartialInfo", "page", "memberId") and v is not None})
        combined["pages"].append(item["pageNumber"])
    return list(members.values())


def validation_hook(document_id: str) -> None:
    pipeline = workflow.entity()
    results = []
    for member in _members(pipeline.get("extractedInfo")):
        valid = activities.validate_member_info(member)
        results.append({"memberId": member["memberId"], "pages": member["pages"],
                        "isValid": valid, "combinedInfo": member})
    pipeline.merge({"validationResults": results})
    pipeline.append("processingSteps", "validation-completed")
    workflow.signal("validation-complete", {"validated": len(results)})


def approval_hook(document_id: str) -> None:
    pipeline = workflow.entity()
    approvals = []
    for validation in pipeline.get("validationResults"):
        result = activities.process_document_approval(validation["combinedInfo"],
                                                      validation["isValid"])
        approvals.append({"memberId": validation["memberId"], "approvalResult": result})
    pipeline.merge({"approvalResults": approvals})
    pipeline.append("processingSteps", "approval-completed")
    workflow.signal("approval-complete", {"approvals": len(approvals)})


def notification_hook(document_id: str) -> None:
    pipeline = workflow.entity()
    state = pipeline.get()
    notified = []
    for approval in state["approvalResults"]:
        activities.send_notification(approval["approvalResult"])
        notified.append({"memberId": approval["memberId"],
                         "status": approval["approvalResult"]["status"]})
    final = {
        "documentId": document_id,
        "totalPages": len(state["imageRefs"]),
        "extractedPages": len(state["extractedInfo"]),
        "validatedMembers": sum(1 for v in state["validationResults"] if v["isValid"]),
        "approvedMembers": sum(1 for a in state["approvalResults"]
                               if a["approvalResult"]["status"] == "approved"),
        "notifications": len(notified),
        "status": "completed",
    }
    pipeline.merge({"finalResult": final, "notificationResults": notified})
    pipeline.append("processingSteps", "notifications-sent")
    workflow.signal("processing-complete", {"finalResult": final})


WORKFLOWS: list[Callable[..., Any]] = [
    document_processing_pipeline, page_processing_hook, validation_hook, approval_hook,
    notification_hook]
