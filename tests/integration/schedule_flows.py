"""Workflows the schedule tests start, in process and in `hotmesh-sync worker
schedule_flows` subprocesses (run from this folder)."""

from __future__ import annotations

from hotmesh_sync import workflow


def stamp(label: str) -> str:
    """Ends at once."""
    return f"ran {label}"


def hold(label: str) -> str:
    """Keeps going (waiting) until it gets the signal 'go'."""
    workflow.wait_for("go")
    return f"held {label}"
