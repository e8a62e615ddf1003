"""Workflows for the CLI tests of `schedule` and `retry`: ``hotmesh-sync worker
schedule_cli_flows`` registers every public function below as both kinds."""

from __future__ import annotations

from pathlib import Path

from hotmesh_sync import errors, workflow


def stamp(label: str) -> str:
    return f"ran {label}"


def check_marker(marker: str) -> str:
    """An activity that fails (without retries) until the file ``marker`` exists."""
    if not Path(marker).exists():
        raise errors.FatalError(f"{marker} is missing", "FileNotFoundError")
    return "marker found"


_acts = workflow.proxy_activities(activities=[check_marker])


def needs_marker(marker: str) -> str:
    return str(_acts.check_marker(marker))
