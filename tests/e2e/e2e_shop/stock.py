"""A transactional activity that writes through Django's ORM (run by
``manage.py hotmesh_worker e2e_shop.stock``)."""

from __future__ import annotations

from typing import Any

from django.db import connection

from hotmesh_sync import RetryPolicy, errors, workflow

from .models import Reservation


@workflow.transactional
def reserve_stock(conn: Any, order_id: str, qty: int) -> dict[str, Any]:
    reservation = Reservation.objects.create(order_id=order_id, qty=qty)
    if qty <= 0:
        raise errors.FatalError(f"cannot reserve {qty} of {order_id}")  # after the write
    return {"id": reservation.pk,
            # The ORM and ``conn`` are one connection, in one transaction.
            "same_connection": connection.connection is conn,
            "in_atomic_block": connection.in_atomic_block}


_acts = workflow.proxy_activities(activities=[reserve_stock],
                                  retry=RetryPolicy(maximum_attempts=1))


def reserve_order(order_id: str, qty: int) -> dict[str, Any]:
    try:
        return {"reserved": _acts.reserve_stock(order_id, qty)}
    except errors.FatalError as exc:
        return {"refused": exc.message}
