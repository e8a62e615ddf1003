"""The shop's workflows; the worker registers every public function here."""

from __future__ import annotations

from typing import Any

from django.db import connection

from hotmesh_sync import workflow


def total_price(item: str, qty: int) -> int:
    """An activity that uses Django's own database connection (on a worker thread)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::int * length(%s)", [qty, item])
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


_acts = workflow.proxy_activities(activities=[total_price])


def fulfil_order(item: str, qty: int) -> dict[str, Any]:
    total = _acts.total_price(item, qty)
    workflow.entity().merge({"total": total, "status": "shipped"})
    return {"item": item, "total": total}


def ping(value: Any) -> Any:
    return value
