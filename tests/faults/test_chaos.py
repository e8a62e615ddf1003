"""kill -9 chaos: worker processes die at random; every workflow still ends right.

Sizes come from the environment so a bigger run is one command away:
``CHAOS_WORKFLOWS=300 CHAOS_KILLS=20 python -m pytest tests/faults -k chaos -s``.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from hotmesh_sync import MemFlow

from .chaos_workflows import chaos_flow, expected_document
from .conftest import WorkerProcesses, effect_counts

pytestmark = pytest.mark.slow


def test_kill_minus_nine_chaos(mf: MemFlow, workers: WorkerProcesses) -> None:
    total = int(os.environ.get("CHAOS_WORKFLOWS", "120"))
    kills_wanted = int(os.environ.get("CHAOS_KILLS", "10"))
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "7")))
    env = {"HOTMESH_MAX_RECOVERIES": "50", "CHAOS_ACTIVITY_SECONDS": "0.05"}
    for _ in range(2):
        workers.start(extra_env=env)
    started = time.monotonic()
    handles = [mf.workflow.start(chaos_flow, [n], task_queue="chaos", workflow_id=f"c-{n}")
               for n in range(total)]
    kills = 0
    while kills < kills_wanted:
        time.sleep(rng.uniform(0.5, 2.0))
        victim = rng.choice(workers.alive())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        workers.start(extra_env=env)
    results = [h.result(timeout=300) for h in handles]
    elapsed = time.monotonic() - started

    for n, result in enumerate(results):
        assert result == expected_document(n)
        assert handles[n].state() == expected_document(n)
    counts = effect_counts(mf)
    missing = [(f"c-{n}", s) for n in range(total) for s in (1, 2, 3)
               if counts.get((f"c-{n}", s), 0) < 1]
    assert missing == []
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    print(f"\nchaos: workflows={total} kills={kills} completed={len(results)} "
          f"activity duplicates={duplicates} time={elapsed:.1f}s")
