"""serve(until_empty=True): the cron-style run that drains what is due, then returns."""

from __future__ import annotations

import threading
import time

from hotmesh_sync import MemFlow, workflow
from hotmesh_sync.serving import serve


def double(x: int) -> int:
    return x * 2


acts = workflow.proxy_activities(activities=[double])


def two_steps(x: int) -> int:
    return int(acts.double(acts.double(x)))


def later() -> str:
    workflow.sleep_for("1 hour")
    return "later"


def test_until_empty_drains_what_is_due_then_returns(mf: MemFlow) -> None:
    handles = [mf.workflow.start(two_steps, [i], task_queue="cron") for i in range(5)]
    sleeper = mf.workflow.start(later, task_queue="cron")
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(serve(
        mf, "cron", {"two_steps": two_steps, "later": later}, {"double": double},
        concurrency=4, until_empty=True, grace=5)))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "serve(until_empty=True) never returned"
    assert [h.result(timeout=1) for h in handles] == [0, 4, 8, 12, 16]
    assert sleeper.status() == "waiting"  # due in an hour: left for a later run
    assert done and done[0] >= 5


def test_until_empty_returns_at_once_on_an_empty_queue(mf: MemFlow) -> None:
    began = time.monotonic()
    assert serve(mf, "empty", {"two_steps": two_steps}, until_empty=True, grace=5) == 0
    assert time.monotonic() - began < 30


def test_until_empty_waits_for_work_in_flight(mf: MemFlow) -> None:
    handle = mf.workflow.start(slow_flow, task_queue="slow")
    serve(mf, "slow", {"slow_flow": slow_flow}, {"slow_step": slow_step}, until_empty=True,
          grace=5)
    assert handle.result(timeout=1) == "slow done"


def slow_step() -> str:
    time.sleep(1.5)
    return "slow done"


slow_acts = workflow.proxy_activities(activities=[slow_step])


def slow_flow() -> str:
    return str(slow_acts.slow_step())
