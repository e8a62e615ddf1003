"""Transactional activities (``workflow.transactional``, API.md §12): the
function's writes commit with the record of its step, or not at all.

The kill -9 case (a worker process dying between the function's return and
the commit) is in ``tests/faults/test_transactional_crash.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.pq import TransactionStatus

from hotmesh_sync import MemFlow, RetryPolicy, activity, errors, workflow
from hotmesh_sync.store.schema import provision

# --- activities: each writes one ledger row through the connection it is given -----------


@dataclass
class Order:
    """A typed argument: stored as JSON, rebuilt from the hints after ``conn``."""

    order_id: str
    qty: int


@dataclass
class Receipt:
    row_id: int
    qty: int
    in_transaction: bool
    statement_timeout: str
    xact_id: str


def _insert(conn: psycopg.Connection[Any], table: str, order_id: str, qty: int) -> int:
    schema, name = table.split(".")
    row = conn.execute(sql.SQL(
        "INSERT INTO {}.{} (order_id, qty) VALUES (%s, %s) RETURNING id").format(
            sql.Identifier(schema), sql.Identifier(name)), [order_id, qty]).fetchone()
    assert row is not None
    return int(row[0])


def _count(conn: psycopg.Connection[Any], table: str, order_id: str) -> int:
    schema, name = table.split(".")
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{} WHERE order_id = %s").format(
        sql.Identifier(schema), sql.Identifier(name)), [order_id]).fetchone()
    assert row is not None
    return int(row[0])


@workflow.transactional
def reserve_stock(conn: psycopg.Connection[Any], table: str, order: Order) -> Receipt:
    row_id = _insert(conn, table, order.order_id, order.qty)
    found = conn.execute("SELECT current_setting('statement_timeout'), "
                         "pg_current_xact_id()::text").fetchone()
    assert found is not None
    return Receipt(row_id, order.qty,
                   conn.info.transaction_status == TransactionStatus.INTRANS, *found)


@workflow.transactional
def flaky_reserve(conn: psycopg.Connection[Any], table: str, order_id: str) -> dict[str, int]:
    """Fails on its first attempt, after writing; the retry sees no trace of it."""
    before = _count(conn, table, order_id)
    _insert(conn, table, order_id, 1)
    if activity.info().attempt == 1:
        raise RuntimeError("stock service hiccup")
    return {"attempt": activity.info().attempt, "rows_before": before}


@workflow.transactional
def refuse_reserve(conn: psycopg.Connection[Any], table: str, order_id: str) -> int:
    _insert(conn, table, order_id, 1)
    raise errors.FatalError("out of stock")


@workflow.transactional
def slow_statement(conn: psycopg.Connection[Any], table: str, order_id: str) -> str:
    _insert(conn, table, order_id, 1)
    conn.execute("SELECT pg_sleep(5)")
    return "never"


@workflow.transactional
def slow_python(conn: psycopg.Connection[Any], table: str, order_id: str) -> str:
    _insert(conn, table, order_id, 1)
    time.sleep(0.6)
    return "too late"


@workflow.transactional
def lose_the_task(conn: psycopg.Connection[Any], table: str, dsn: str) -> str:
    """Writes, then makes its workflow stop waiting for it, as if another
    worker had recorded this step meanwhile: its writes must not commit."""
    info = activity.info()
    _insert(conn, table, info.workflow_id, 1)
    schema = table.split(".")[0]
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute(sql.SQL("DELETE FROM {}.tasks WHERE job_id = %s AND step_key = %s").format(
            sql.Identifier(schema)), [info.workflow_id, info.step])
    return "written"


@workflow.transactional
def beating(conn: psycopg.Connection[Any], table: str, order_id: str) -> int:
    """The activity context works inside the transaction: heartbeats use their own."""
    _insert(conn, table, order_id, 1)
    activity.heartbeat({"written": 1})
    activity.heartbeat({"written": 1})
    assert not activity.is_cancelled()
    return activity.info().attempt


@workflow.transactional
def no_connection_parameter() -> int:
    return 1


_quick = RetryPolicy(maximum_attempts=3, initial_interval="100ms", maximum_interval="200ms")
acts = workflow.proxy_activities(
    activities=[reserve_stock, flaky_reserve, refuse_reserve, lose_the_task, beating,
                no_connection_parameter], retry=_quick)
timed = workflow.proxy_activities(activities=[reserve_stock, slow_statement, slow_python],
                                  retry=RetryPolicy(maximum_attempts=2, initial_interval="100ms"),
                                  timeout="300ms")


# --- workflows ----------------------------------------------------------------------------

def reserve_flow(table: str, order: Order) -> dict[str, Any]:
    receipt = acts.reserve_stock(table, order)
    assert isinstance(receipt, Receipt)  # rebuilt from the return hint
    return {"row_id": receipt.row_id, "qty": receipt.qty,
            "in_transaction": receipt.in_transaction,
            "statement_timeout": receipt.statement_timeout, "xact_id": receipt.xact_id}


def timed_reserve_flow(table: str, order: Order) -> str:
    return str(timed.reserve_stock(table, order).statement_timeout)


def flaky_flow(table: str, order_id: str) -> dict[str, int]:
    return acts.flaky_reserve(table, order_id)  # type: ignore[no-any-return]


def _failure(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"result": call()}
    except (errors.FatalError, errors.MaxedError) as exc:
        return {"type": type(exc).__name__, "error_type": exc.error_type,
                "message": exc.message}


def refuse_flow(table: str, order_id: str) -> dict[str, Any]:
    return _failure(lambda: acts.refuse_reserve(table, order_id))


def slow_statement_flow(table: str, order_id: str) -> dict[str, Any]:
    return _failure(lambda: timed.slow_statement(table, order_id))


def slow_python_flow(table: str, order_id: str) -> dict[str, Any]:
    return _failure(lambda: timed.slow_python(table, order_id))


def lost_flow(table: str, dsn: str) -> str:
    return acts.lose_the_task(table, dsn)  # type: ignore[no-any-return]


def beating_flow(table: str, order_id: str) -> int:
    return acts.beating(table, order_id)  # type: ignore[no-any-return]


def misfit_flow() -> dict[str, Any]:
    return _failure(lambda: acts.no_connection_parameter())


WORKFLOWS = [reserve_flow, timed_reserve_flow, flaky_flow, refuse_flow, slow_statement_flow,
             slow_python_flow, lost_flow, beating_flow, misfit_flow]


# --- fixtures and helpers -----------------------------------------------------------------

@pytest.fixture
def ledger(mf: MemFlow) -> str:
    """A table of the application's own, in the test's schema."""
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE TABLE {}.ledger (id bigserial PRIMARY KEY, order_id text NOT NULL, "
            "qty int NOT NULL)").format(sql.Identifier(mf.schema)))
    return f"{mf.schema}.ledger"


def rows(mf: MemFlow, order_id: str) -> int:
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        return _count(conn, f"{mf.schema}.ledger", order_id)


def activity_steps(handle: Any) -> list[dict[str, Any]]:
    return [s for s in handle.steps() if s["kind"] == "activity"]


class TasksDone:
    """The worker's ``on_task``: lets a test wait until a claim has finished."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def __call__(self, count: int) -> None:
        with self._changed:
            self.count = count
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 20.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.count >= count, timeout), \
                f"the worker finished {self.count} tasks, not {count}"


# --- tests --------------------------------------------------------------------------------

def test_writes_and_step_commit_in_one_transaction(mf: MemFlow, worker: Any,
                                                   ledger: str) -> None:
    worker("tx", workflows=WORKFLOWS)
    handle = mf.workflow.start(reserve_flow, [ledger, Order("o-1", 3)], task_queue="tx")
    result = handle.result(timeout=20)
    assert result["qty"] == 3 and result["in_transaction"] is True
    assert result["statement_timeout"] == "0"  # no timeout asked for: none set
    assert rows(mf, "o-1") == 1
    [step] = activity_steps(handle)
    assert step["name"] == "reserve_stock" and step["error"] is None
    with psycopg.connect(mf.dsn, autocommit=True) as conn:
        step_row = conn.execute(sql.SQL(
            "SELECT xmin::text FROM {}.steps WHERE job_id = %s AND kind = 'activity'").format(
                sql.Identifier(mf.schema)), [handle.workflow_id]).fetchone()
    # The step was written by the transaction the function ran in (its rows
    # carry the id of the savepoint's subtransaction, which commits with it).
    assert step_row is not None and step_row[0] == result["xact_id"]


def test_timeout_bounds_the_statements_only_while_the_function_runs(
        mf: MemFlow, worker: Any, ledger: str) -> None:
    worker("tx", workflows=WORKFLOWS)
    handle = mf.workflow.start(timed_reserve_flow, [ledger, Order("o-2", 1)], task_queue="tx")
    assert handle.result(timeout=20) == "300ms"
    assert rows(mf, "o-2") == 1


def test_an_exception_rolls_back_its_writes_and_the_retry_commits(
        mf: MemFlow, worker: Any, ledger: str) -> None:
    worker("tx", workflows=WORKFLOWS)
    handle = mf.workflow.start(flaky_flow, [ledger, "o-3"], task_queue="tx")
    # The second attempt found no row of the first: it was rolled back.
    assert handle.result(timeout=20) == {"attempt": 2, "rows_before": 0}
    assert rows(mf, "o-3") == 1
    assert len(activity_steps(handle)) == 1


def test_a_non_retryable_failure_rolls_back_and_raises_fatal_error(
        mf: MemFlow, worker: Any, ledger: str) -> None:
    worker("tx", workflows=WORKFLOWS)
    handle = mf.workflow.start(refuse_flow, [ledger, "o-4"], task_queue="tx")
    assert handle.result(timeout=20) == {"type": "FatalError", "error_type": "FatalError",
                                         "message": "out of stock"}
    assert rows(mf, "o-4") == 0


@pytest.mark.parametrize(("flow", "message"), [
    (slow_statement_flow, "a statement of the activity ran longer than its timeout"),
    (slow_python_flow, "activity attempt exceeded its timeout"),
])
def test_a_timed_out_attempt_commits_nothing(mf: MemFlow, worker: Any, ledger: str,
                                             flow: Callable[..., Any], message: str) -> None:
    worker("tx", workflows=WORKFLOWS)
    began = time.monotonic()
    outcome = mf.workflow.execute(flow, [ledger, "o-5"], task_queue="tx", timeout=30)
    assert outcome["type"] == "MaxedError" and outcome["error_type"] == "TimeoutError"
    assert message in outcome["message"]
    assert time.monotonic() - began < 4  # pg_sleep(5) was cancelled, twice
    assert rows(mf, "o-5") == 0


def test_a_step_recorded_elsewhere_rolls_back_the_writes(mf: MemFlow, worker: Any,
                                                         ledger: str) -> None:
    done = TasksDone()
    worker("tx", workflows=WORKFLOWS, on_task=done)
    handle = mf.workflow.start(lost_flow, [ledger, mf.dsn], task_queue="tx")
    done.wait(1)  # the claim that ran the workflow and the activity
    assert rows(mf, handle.workflow_id) == 0
    assert activity_steps(handle) == []


def test_heartbeats_work_inside_a_transactional_activity(mf: MemFlow, worker: Any,
                                                         ledger: str) -> None:
    worker("tx", workflows=WORKFLOWS, lease=2.0)
    assert mf.workflow.execute(beating_flow, [ledger, "o-6"], task_queue="tx",
                               timeout=20) == 1
    assert rows(mf, "o-6") == 1


def test_arguments_that_do_not_fit_fail_at_once(mf: MemFlow, worker: Any) -> None:
    worker("tx", workflows=WORKFLOWS)
    outcome = mf.workflow.execute(misfit_flow, task_queue="tx", timeout=20)
    assert outcome["type"] == "FatalError" and outcome["error_type"] == "TypeError"
    assert "called with a connection" in outcome["message"]


def test_a_runner_of_ones_own_begins_its_transaction_lazily(mf: MemFlow, worker: Any,
                                                            ledger: str) -> None:
    """A TransactionRunner that hands over a connection with autocommit off and
    nothing sent yet (as Django's atomic() does): committed by the runner."""
    calls: list[int] = []

    def runner(work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        calls.append(1)
        with psycopg.connect(mf.dsn) as conn:  # commits on a clean exit, else rolls back
            return work(conn)

    worker("tx", workflows=WORKFLOWS, transactions=runner)
    handle = mf.workflow.start(reserve_flow, [ledger, Order("o-7", 2)], task_queue="tx")
    assert handle.result(timeout=20)["in_transaction"] is True
    assert calls == [1] and rows(mf, "o-7") == 1


@pytest.fixture
def other_database(pg_dsn: str, app_id: str) -> Iterator[str]:
    """Another database on the same server, with the app's schema in it too."""
    name = f"hm_other_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        provision(conn, app_id)
    yield dsn
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_runner_on_another_database_is_refused(mf: MemFlow, worker: Any, ledger: str,
                                                 other_database: str) -> None:
    def runner(work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        with psycopg.connect(other_database) as conn:
            return work(conn)

    worker("tx", workflows=WORKFLOWS, transactions=runner)
    outcome = mf.workflow.execute(refuse_flow, [ledger, "o-8"], task_queue="tx", timeout=20)
    assert outcome["type"] == "FatalError" and outcome["error_type"] == "ConfigurationError"
    assert "same database as hotmesh_sync" in outcome["message"]


def test_the_store_reads_json_its_own_way_on_a_borrowed_connection(mf: MemFlow) -> None:
    """Django's backend loads jsonb as text; while the store works on such a
    connection it reads documents, and the owner's loaders are back afterwards."""
    from psycopg.types.string import TextLoader

    from hotmesh_sync.store.transactions import shared_tx

    with psycopg.connect(mf.dsn) as conn:
        conn.adapters.register_loader("jsonb", TextLoader)
        query = "SELECT '{\"a\": 1}'::jsonb"
        assert conn.execute(query).fetchone() == ('{"a": 1}',)
        with shared_tx(mf.store, conn):
            assert conn.execute(query).fetchone() == ({"a": 1},)
        assert conn.execute(query).fetchone() == ('{"a": 1}',)
