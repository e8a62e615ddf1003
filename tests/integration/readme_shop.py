"""The ``shop.workflows`` module that README's command-line and Flask blocks run.

The README tests copy this file to ``<tmp>/shop/workflows.py`` and run
``hotmesh-sync worker shop.workflows`` (or ``flask --app shop hotmesh worker``)
in ``<tmp>``, which registers every public function defined here as a
workflow and as an activity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hotmesh_sync import RetryPolicy, workflow


def check_stock(order_id: int) -> int:
    """An activity: "no such product" while a file ``missing-<order_id>`` is in the
    worker's directory (a test removes it to let a retry succeed)."""
    if Path(f"missing-{order_id}").exists():
        raise ValueError("no such product")
    return order_id


acts = workflow.proxy_activities(
    activities=[check_stock],
    retry=RetryPolicy(maximum_attempts=5, initial_interval="10ms", maximum_interval="50ms"))


def fulfil_order(order_id: int = 42, speed: str = "standard") -> dict[str, Any]:
    """Ship an order; an express one waits for the signal ``approved`` first."""
    order = workflow.entity()
    order.set({"order": order_id, "speed": speed, "shipping": {"address": "1 Main Street"}})
    if speed == "express":
        approval = workflow.wait_for("approved", timeout="1 hour")
        order.merge({"approved_by": (approval or {}).get("by")})
    acts.check_stock(order_id)
    return {"shipped": True}


def poller(cursor: int = 0) -> int:
    """Continue as new once: two runs under one id."""
    if cursor < 1:
        workflow.continue_as_new(cursor + 1)
    return cursor
