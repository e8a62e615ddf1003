"""Workflows the dashboard's tests look at: one waits for approval, one fails
until its cause is fixed, one fans out in parallel branches and hooks."""

from __future__ import annotations

import time
from typing import Any

from hotmesh_sync import MemFlow, RetryPolicy, workflow

#: The failing activity's cause: a test "fixes" it by setting this.
CARD = {"valid": False}


def charge_card(amount: int) -> dict[str, Any]:
    if not CARD["valid"]:
        raise RuntimeError("card declined") from ValueError("expired in 2025")
    return {"charged": amount}


def price_of(item: str) -> int:
    return len(item) * 10


charges = workflow.proxy_activities([charge_card], retry=RetryPolicy(maximum_attempts=1))
prices = workflow.proxy_activities([price_of])


def approval_flow(order_id: str) -> dict[str, Any]:
    """Seeds its entity, then waits for the ``approve`` signal."""
    order = workflow.entity()
    order.set({"order": order_id, "status": "awaiting approval",
               "customer": {"name": "Ada <script>alert('x')</script>", "tier": "gold"},
               "lines": [{"item": "lamp", "qty": 2}]})
    decision = workflow.wait_for("approve")
    order.merge({"status": "approved", "approved_by": (decision or {}).get("by")})
    return order.get()  # type: ignore[no-any-return]


def charge_flow(amount: int) -> dict[str, Any]:
    """Fails (597, its one attempt spent) while the card is not valid."""
    workflow.entity().set({"amount": amount, "status": "charging"})
    receipt = charges.charge_card(amount)
    workflow.entity().merge({"status": "charged"})
    return receipt


def fan_out_flow(items: list[str]) -> list[int]:
    """Prices items in parallel branches (lanes on the timeline)."""
    workflow.entity().set({"items": items})
    found = workflow.all(*[(lambda item=item: prices.price_of(item)) for item in items])
    workflow.entity().merge({"total": sum(found)})
    return found


WORKFLOWS = [approval_flow, charge_flow, fan_out_flow]


def settle(memflow: MemFlow, workflow_id: str, status: str, timeout: float = 15) -> None:
    """Wait until the workflow has ``status`` (a test's precondition, not a speed check)."""
    handle = memflow.workflow.get_handle(workflow_id)
    deadline = time.monotonic() + timeout
    while handle.status() != status:
        assert time.monotonic() < deadline, f"{workflow_id} is {handle.status()}, not {status}"
        time.sleep(0.05)
