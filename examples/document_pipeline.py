"""Run the seed's document pipeline end to end.

    python examples/document_pipeline.py         # embedded PostgreSQL, no setup

The coordinator and its hooks live in ``hotmesh_sync/examples/document_pipeline.py``.
"""

from __future__ import annotations

import json
import uuid

from hotmesh_sync import MemFlow
from hotmesh_sync.examples.document_pipeline import WORKFLOWS, document_processing_pipeline


def main() -> None:
    with MemFlow.init(app_id="my-app") as mf, mf.worker("pipeline", workflows=WORKFLOWS):
        handle = mf.workflow.start(document_processing_pipeline, task_queue="pipeline",
                                   entity="document", workflow_id=f"doc-{uuid.uuid4().hex[:8]}")
        print(json.dumps(handle.result(timeout=120), indent=2))
        print("Audit trail:", handle.state()["processingSteps"])


if __name__ == "__main__":
    main()
