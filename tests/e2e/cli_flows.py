"""Workflows (and activities) for the CLI tests: ``hotmesh-sync worker cli_flows`` registers
every public function below as both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hotmesh_sync import errors, workflow


def shout(text: str) -> str:
    return text.upper()


def slow_step(marker: str, seconds: float) -> str:
    """An activity that says it has started (by creating ``marker``), then takes a while."""
    Path(marker).write_text("started")
    time.sleep(seconds)
    return "slow step done"


_acts = workflow.proxy_activities(activities=[shout, slow_step])


def greet(name: str) -> str:
    return str(_acts.shout(f"hello, {name}"))


def echo(*args: Any) -> list[Any]:
    return list(args)


def remember(key: str, value: Any) -> dict[str, Any]:
    entity = workflow.entity()
    entity.merge({key: value})
    entity.append("log", key)
    return dict(entity.get())


def waits_for_go() -> Any:
    data = workflow.wait_for("go")
    workflow.entity().set({"got": data})
    return data


def fails(message: str) -> None:
    raise errors.FatalError(message, "ValueError")


def slow(marker: str, seconds: float) -> str:
    return str(_acts.slow_step(marker, seconds))


def rounds(n: int, last: int) -> int:
    """Continues as new until round ``last``: one workflow id, several runs."""
    if n < last:
        workflow.continue_as_new(n + 1, last)
    return n
