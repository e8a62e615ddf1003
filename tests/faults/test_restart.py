"""PostgreSQL restarts under a running worker: everyone reconnects, nothing is lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotmesh_sync import MemFlow, workflow
from hotmesh_sync.embedded import EmbeddedServer, start_throwaway

pytestmark = pytest.mark.slow


def slow_step(n: int) -> int:
    time.sleep(0.02)
    return n


acts = workflow.proxy_activities(activities=[slow_step])


def steps_flow(n: int) -> int:
    total = 0
    for i in range(5):
        total += acts.slow_step(i)
        workflow.entity().increment("done")
    workflow.sleep_for("100ms")
    return total + n


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    # Its own server: the test restarts it, which must not disturb other tests.
    with start_throwaway(Path("/tmp")) as own:
        yield own


def test_workers_and_clients_survive_a_postgresql_restart(server: EmbeddedServer) -> None:
    app = f"r_{uuid.uuid4().hex[:8]}"
    with MemFlow.init(app_id=app, dsn=server.dsn, pool_size=4) as mf:
        worker = mf.worker("restart", workflows=[steps_flow], concurrency=4, poll_interval=1.0)
        worker.start()
        handles = [mf.workflow.start(steps_flow, [n], task_queue="restart")
                   for n in range(40)]
        time.sleep(0.5)
        server.restart()
        # Clients started after the restart work too.
        handles += [mf.workflow.start(steps_flow, [n], task_queue="restart")
                    for n in range(40, 60)]
        results = [h.result(timeout=120) for h in handles]
        assert results == [10 + n for n in range(60)]
        assert all(h.state() == {"done": 5} for h in handles)
        alive = [t for t in threading.enumerate() if t.name.startswith("hotmesh-worker-")]
        assert len(alive) == 4, "a worker thread died"
