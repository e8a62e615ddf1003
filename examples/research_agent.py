"""Run the seed's research agent end to end.

    python examples/research_agent.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/research_agent.py

The coordinator and its hooks live in ``hotmesh_sync/examples/research_agent.py``
(shipped with the package, so ``hotmesh-sync worker hotmesh_sync.examples.research_agent``
can serve them too).
"""

from __future__ import annotations

import json

from hotmesh_sync import MemFlow
from hotmesh_sync.examples.research_agent import WORKFLOWS


def main() -> None:
    with MemFlow.init(app_id="my-app") as mf, mf.worker("agents", workflows=WORKFLOWS):
        handle = mf.workflow.start(
            entity="research-agent",
            workflow_name="research_agent",
            args=["Long-term impacts of renewable energy subsidies"],
            task_queue="agents",
            if_exists="attach",
            workflow_id="agent-session-jane-001",
        )
        print("Final Memory Snapshot:", json.dumps(handle.result(timeout=120), indent=2))


if __name__ == "__main__":
    main()
