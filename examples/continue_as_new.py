"""A polling workflow that keeps its history short with continue_as_new.

    python examples/continue_as_new.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/continue_as_new.py

``ledger_poller`` fetches batches of payments from a source, adds them up and
keeps the running total in its entity. A workflow that loops forever would
replay an ever longer history on every activation, so after a few batches it
calls ``workflow.continue_as_new(cursor)``: the run ends and a fresh run of
the same workflow id starts from the cursor with an empty history, while the
entity document (the total) carries over. ``handle.runs()`` lists the runs and
``handle.steps(run_id=...)`` the history of each.

``HOTMESH_APP_ID`` overrides the app id (the tests run each example in a
schema of its own).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from hotmesh_sync import MemFlow, workflow

APP_ID = os.environ.get("HOTMESH_APP_ID", "samples-continue-as-new")
BATCH_SIZE = 5
BATCHES = 10
#: Batches one run handles before it hands over to a fresh run.
BATCHES_PER_RUN = 3


# --- activities ---------------------------------------------------------------------------

def fetch_batch(cursor: int) -> list[int]:
    """Payment amounts (in cents) of batch ``cursor``; empty once the source is drained.

    A stand-in for a paged API or a queue: deterministic, so the output is too."""
    if cursor >= BATCHES:
        return []
    first = cursor * BATCH_SIZE + 1
    return [amount * 100 for amount in range(first, first + BATCH_SIZE)]


def add_up(amounts: list[int]) -> int:
    return sum(amounts)


acts = workflow.proxy_activities(activities=[fetch_batch, add_up])


# --- the coordinator ------------------------------------------------------------------------

def ledger_poller(cursor: int) -> dict[str, Any]:
    ledger = workflow.entity()
    for _ in range(BATCHES_PER_RUN):
        batch = acts.fetch_batch(cursor)
        if not batch:
            ledger.merge({"drained": True})
            return {"cursor": cursor, "total_cents": ledger.get("total_cents"),
                    "run": workflow.info().run_number}
        # Entity commands apply exactly once, so the total is right however
        # often this code replays, and it outlives the run.
        ledger.increment("total_cents", acts.add_up(batch))
        ledger.increment("batches")
        cursor += 1
    # Hand over: this run ends "continued", a new one starts at `cursor`.
    workflow.continue_as_new(cursor)


def main() -> None:
    with MemFlow.init(app_id=APP_ID) as mf, mf.worker(
            "ledger", workflows=[ledger_poller], activities=[fetch_batch, add_up]):
        handle = mf.workflow.start(ledger_poller, [0], task_queue="ledger", entity="ledger",
                                   workflow_id=f"ledger-{uuid.uuid4().hex}")
        result = handle.result(timeout=60)
        ledger = handle.state()
        print(f"processed {ledger['batches']} batches of {BATCH_SIZE} payments")
        print(f"running total: {ledger['total_cents'] / 100:.2f} "
              f"(result: {result['total_cents'] / 100:.2f} at cursor {result['cursor']})")

        runs = handle.runs()
        print(f"runs: {len(runs)}, the last is run {result['run']}")
        for run in runs:
            steps = handle.steps(run_id=run["run_id"])
            print(f"  run {run['run_number']}: {run['status']}, {len(steps)} steps")
        print(f"current history: {len(handle.steps())} steps, "
              f"not {sum(len(handle.steps(run_id=r['run_id'])) for r in runs)}")


if __name__ == "__main__":
    main()
