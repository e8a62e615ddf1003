"""Workflows of the Flask test app; its activities read the app's config through current_app."""

from __future__ import annotations

from typing import Any

from flask import current_app

from hotmesh_sync import workflow


def unit_price(item: str) -> int:
    """An activity that needs an app context (the worker gives it one)."""
    prices: dict[str, int] = current_app.config["PRICES"]
    return prices[item]


_acts = workflow.proxy_activities(activities=[unit_price])


def quote(item: str, qty: int) -> dict[str, Any]:
    total = _acts.unit_price(item) * qty
    workflow.entity().merge({"item": item, "total": total})
    return {"item": item, "total": total}


def ping(value: Any) -> Any:
    return value
