"""Reserve stock exactly once: a transactional activity.

    python examples/transactional.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/transactional.py

``reserve_stock`` is marked ``@workflow.transactional``: the worker calls it
with a psycopg connection inside the transaction that records its step. Its
``UPDATE`` of the stock and ``INSERT`` of the reservation commit together
with that record, or not at all: a worker killed before the commit leaves
nothing behind, and an exception rolls its writes back before the retry. So
the stock is taken exactly once per order, however often the function runs.

Order A's first attempt fails after its writes (a stand-in for any error
mid-way): they are rolled back, and the retry reserves the stock once. Order
B asks for more than is left: a ``FatalError``, nothing written.

The tables live in the app's schema to keep the example self-contained; any
schema of the same database works. ``HOTMESH_APP_ID`` overrides the app id
(the tests run each example in a schema of its own).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from hotmesh_sync import MemFlow, RetryPolicy, activity, errors, workflow

APP_ID = os.environ.get("HOTMESH_APP_ID", "samples-transactional")
#: The schema of the example's tables, set by main() (the app's own).
SCHEMA = sql.Identifier("public")


@dataclass
class Order:
    order_id: str
    sku: str
    qty: int
    fail_first_attempt: bool = False


@dataclass
class Reserved:
    left: int
    attempt: int


# --- the transactional activity: its writes commit with its step ---------------------------

@workflow.transactional
def reserve_stock(conn: psycopg.Connection[Any], order: Order) -> Reserved:
    row = conn.execute(sql.SQL(
        "UPDATE {}.stock SET available = available - %s WHERE sku = %s AND available >= %s "
        "RETURNING available").format(SCHEMA), [order.qty, order.sku, order.qty]).fetchone()
    if row is None:
        left = conn.execute(sql.SQL("SELECT available FROM {}.stock WHERE sku = %s").format(
            SCHEMA), [order.sku]).fetchone()
        raise errors.FatalError(
            f"only {left[0] if left else 0} {order.sku}s left, {order.qty} asked")
    conn.execute(sql.SQL("INSERT INTO {}.reservations (order_id, sku, qty) "
                         "VALUES (%s, %s, %s)").format(SCHEMA),
                 [order.order_id, order.sku, order.qty])
    attempt = activity.info().attempt
    if order.fail_first_attempt and attempt == 1:
        # After the UPDATE and the INSERT: both are rolled back with the attempt.
        raise ConnectionError("warehouse service did not answer")
    return Reserved(left=row[0], attempt=attempt)


acts = workflow.proxy_activities(
    activities=[reserve_stock],
    retry=RetryPolicy(maximum_attempts=3, initial_interval="100ms"))


# --- the coordinator ------------------------------------------------------------------------

def place_order(order: Order) -> str:
    try:
        reserved = acts.reserve_stock(order)
    except errors.FatalError as exc:
        return f"refused ({exc.message}); nothing written"
    return f"reserved {order.qty} on attempt {reserved.attempt}; {reserved.left} left"


# --- running it -----------------------------------------------------------------------------

def set_up_tables(mf: MemFlow) -> None:
    """The application's own tables, and 5 widgets in stock (again on every run)."""
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.stock (sku text PRIMARY KEY, available int NOT NULL);"
            "CREATE TABLE IF NOT EXISTS {}.reservations (order_id text, sku text, qty int);"
            "INSERT INTO {}.stock VALUES ('widget', 5) "
            "ON CONFLICT (sku) DO UPDATE SET available = 5").format(SCHEMA, SCHEMA, SCHEMA))


def count(mf: MemFlow, query: str, *params: Any) -> int:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        row = conn.execute(sql.SQL(query).format(SCHEMA), params).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    global SCHEMA
    with MemFlow.init(app_id=APP_ID) as mf:
        SCHEMA = sql.Identifier(mf.schema)  # before any activity runs
        set_up_tables(mf)
        with mf.worker("stock", workflows=[place_order]):
            run_orders(mf)


def run_orders(mf: MemFlow) -> None:
    run = uuid.uuid4().hex[:8]  # fresh order ids: the example can run again
    print(f"stock before: {count(mf, 'SELECT available FROM {}.stock')} widgets")
    handles = {}
    for name, qty, flaky in (("A", 3, True), ("B", 10, False)):
        order = Order(f"{run}-{name}", "widget", qty, fail_first_attempt=flaky)
        handles[name] = mf.workflow.start(place_order, [order], task_queue="stock",
                                          workflow_id=f"order-{order.order_id}")
        print(f"order {name} ({qty} widgets): {handles[name].result(timeout=30)}")
    reservations = count(mf, "SELECT count(*) FROM {}.reservations WHERE order_id LIKE %s",
                         f"{run}-%")
    print(f"stock after: {count(mf, 'SELECT available FROM {}.stock')} widgets, "
          f"{reservations} reservation")
    steps = [f"{s['kind']} {s['name']}" for s in handles["A"].steps()]
    print(f"order A's steps: {', '.join(steps)} (recorded once, with its writes)")


if __name__ == "__main__":
    main()
