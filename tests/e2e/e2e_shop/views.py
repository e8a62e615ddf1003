"""Views that start a workflow in the request's own transaction and report on it."""

from __future__ import annotations

import json

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from hotmesh_sync import errors
from hotmesh_sync.contrib.django import load_settings, memflow


class OrderRejected(Exception):
    pass


def place_order(request: HttpRequest) -> HttpResponse:
    body = json.loads(request.body)
    with transaction.atomic():
        # An application would save its Order row here, in the same transaction.
        handle = memflow.workflow.start("fulfil_order", [body["item"], body["qty"]],
                                        entity="order", search={"item": body["item"]},
                                        task_queue=load_settings().task_queue,
                                        workflow_id=body.get("id"), connection=connection)
        if body.get("reject"):
            # Whatever fails after the start rolls the start back with everything else.
            raise OrderRejected(body["item"])
    return JsonResponse({"workflow_id": handle.workflow_id}, status=202)


def order_status(request: HttpRequest, workflow_id: str) -> HttpResponse:
    try:
        handle = memflow.workflow.get_handle(workflow_id)
    except errors.WorkflowNotFoundError:
        return JsonResponse({"error": "no such order"}, status=404)
    row = handle.describe()
    return JsonResponse({"workflow_id": workflow_id, "status": row["status"],
                         "state": row["context"], "result": row["result"]})
