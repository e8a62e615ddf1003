"""Workflows for the ``--processes`` tests: a rendezvous that only completes when
steps run in two processes at once, and says which process ran each."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hotmesh_sync import RetryPolicy, workflow

#: Seconds ``meet`` waits for the others before it gives up (a failed test, not a hang).
PATIENCE = 60.0


def meet(folder: str, others: int) -> int:
    """An activity: leave this process's pid in ``folder``, then wait until the pids
    of ``others`` other processes are there too; return this process's pid.

    With one thread per worker process, a process waiting here takes nothing
    else, so ``others`` further rendezvous can only run in other processes.
    """
    mine = str(os.getpid())
    Path(folder, mine).touch()
    deadline = time.monotonic() + PATIENCE
    while len({p.name for p in Path(folder).iterdir()} - {mine}) < others:
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {mine} met no {others} others in {folder}")
        time.sleep(0.05)
    return os.getpid()


_acts = workflow.proxy_activities(activities=[meet], retry=RetryPolicy(maximum_attempts=1))


def rendezvous(folder: str, others: int) -> int:
    """The pid of the worker process that ran its step."""
    return int(_acts.meet(folder, others))
