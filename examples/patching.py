"""Change a workflow's code while a run of the old code is in flight.

    python examples/patching.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/patching.py

A deploy, simulated in one process. ``fulfil_order`` v1 charges the card and
waits for the warehouse's "shipped" signal. Order A starts under v1 and is
left waiting; then the v1 worker stops and a v2 worker starts, whose code
adds a fraud check before the charge, guarded by ``workflow.patched``. Order B
starts under v2. Both are signalled: A replays its recorded history under
the v2 code, where ``patched`` is False (A passed that point before the patch
existed), so it keeps the old branch; B recorded the patch marker and takes
the new one.

Later deploys (README, "Long-lived workflows"): once no run that started
before v2 remains, replace the ``if`` with ``workflow.deprecate_patch(...)``
and the new branch alone; once no run recorded with the marker remains,
remove that call too.

``HOTMESH_APP_ID`` overrides the app id (the tests run each example in a
schema of its own).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from hotmesh_sync import MemFlow, workflow
from hotmesh_sync.client import WorkflowHandle

APP_ID = os.environ.get("HOTMESH_APP_ID", "samples-patching")
QUEUE = "orders"
PATCH = "fraud-check"


# --- activities (the same in both deploys) ------------------------------------------------

def check_fraud(order: str) -> str:
    return f"order {order} looks fine"


def charge_card(order: str) -> str:
    return f"charged order {order}"


ACTIVITIES = [check_fraud, charge_card]
acts = workflow.proxy_activities(activities=ACTIVITIES)


# --- two versions of one workflow, both registered as "fulfil_order" ------------------------

def fulfil_order_v1(order: str) -> str:
    acts.charge_card(order)
    tracking = workflow.wait_for("shipped")
    return f"order {order}: old branch (no fraud check), shipped as {tracking}"


def fulfil_order_v2(order: str) -> str:
    if workflow.patched(PATCH):
        # Runs that reach this point under v2 record a marker and go this way.
        acts.check_fraud(order)
        branch = "new branch (fraud checked)"
    else:
        # Runs that passed this point under v1: their history has the charge
        # here, so they must not make the new call.
        branch = "old branch (no fraud check)"
    acts.charge_card(order)
    tracking = workflow.wait_for("shipped")
    return f"order {order}: {branch}, shipped as {tracking}"


def wait_until_waiting(handle: WorkflowHandle, timeout: float = 30.0) -> None:
    """Poll until the run has reached its wait_for (a sample's shortcut)."""
    deadline = time.monotonic() + timeout
    while handle.status() != "waiting":
        if time.monotonic() > deadline:
            raise SystemExit(f"order never reached its wait (status {handle.status()})")
        time.sleep(0.05)


def start_order(mf: MemFlow, order: str) -> WorkflowHandle:
    return mf.workflow.start("fulfil_order", [order], task_queue=QUEUE, entity="order",
                             workflow_id=f"order-{order}-{uuid.uuid4().hex}")


def shown_steps(handle: WorkflowHandle) -> str:
    return ", ".join(f"{s['kind']} {s['name']}" for s in handle.steps())


def main() -> None:
    v1: dict[str, Any] = {"fulfil_order": fulfil_order_v1}
    v2: dict[str, Any] = {"fulfil_order": fulfil_order_v2}
    with MemFlow.init(app_id=APP_ID) as mf:
        print("deploy 1: a worker runs fulfil_order v1")
        with mf.worker(QUEUE, workflows=v1, activities=ACTIVITIES):
            order_a = start_order(mf, "A")
            wait_until_waiting(order_a)
            print("  order A charged the card and waits for 'shipped'")
        print("  v1 worker stopped")

        print(f"deploy 2: a worker runs fulfil_order v2 (workflow.patched({PATCH!r}))")
        with mf.worker(QUEUE, workflows=v2, activities=ACTIVITIES):
            order_b = start_order(mf, "B")
            wait_until_waiting(order_b)
            print("  order B checked for fraud, charged the card and waits for 'shipped'")
            order_a.signal("shipped", "TRACK-A")
            order_b.signal("shipped", "TRACK-B")
            for handle in (order_a, order_b):
                print(f"  {handle.result(timeout=30)}")
        print("steps recorded:")
        print(f"  order A: {shown_steps(order_a)}")
        print(f"  order B: {shown_steps(order_b)}")


if __name__ == "__main__":
    main()
