"""Typed payloads end to end (API.md §11): dataclasses, enums, dates, UUIDs,
decimals and pydantic models cross the workflow boundary as JSON and come
back rebuilt from the type hints of the function that receives them, in a
real worker against PostgreSQL.

Entity documents stay plain JSON, and what JSON cannot carry (a set) is
still refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import pytest

from hotmesh_sync import MemFlow, RetryPolicy, errors, payloads, workflow

_ModelBase: Any
try:
    from pydantic import BaseModel as _ModelBase
except ImportError:  # the pydantic test is skipped; the others run on the small path
    _ModelBase = object

#: What activities and workflows saw, by key (activities run in worker threads).
SEEN: dict[str, list[Any]] = {}

#: Fail at once instead of retrying: a broken assertion in an activity shows up quickly.
ONCE = RetryPolicy(maximum_attempts=1)


@pytest.fixture(autouse=True)
def _fresh_seen() -> Iterator[None]:
    SEEN.clear()
    yield
    SEEN.clear()


# --- the types --------------------------------------------------------------------------

class Status(Enum):
    PLACED = "placed"
    SHIPPED = "shipped"


@dataclass
class Line:
    sku: str
    price: Decimal
    ship_by: date


@dataclass
class Order:
    id: UUID
    placed: datetime
    total: Decimal
    status: Status
    lines: list[Line]


@dataclass
class Receipt:
    order_id: UUID
    charged: Decimal
    status: Status
    issued: datetime
    ship_by: date


@dataclass
class Outcome:
    receipt: Receipt
    label: str
    #: [is_replaying, isinstance(receipt, Receipt)], taken in the last activation
    replay_look: list[bool]


@dataclass
class Parcel:
    order_id: UUID
    skus: list[str]
    ship_by: date


@dataclass
class Shipment:
    parcel: Parcel
    parcel_was_typed: bool
    by_name_type: str


class Money(_ModelBase):  # type: ignore[misc]
    amount: Decimal
    currency: str


ORDER_ID = UUID("7d1f3c4e-2b8a-4f6e-9c1d-0a2b3c4d5e6f")
PLACED = datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)


def _order() -> Order:
    # 0.1 + 0.2 is 0.3 exactly only as Decimal: a float anywhere on the way breaks it.
    return Order(id=ORDER_ID, placed=PLACED, total=Decimal("0.3"), status=Status.PLACED,
                 lines=[Line("apple", Decimal("0.1"), date(2024, 5, 4)),
                        Line("pear", Decimal("0.2"), date(2024, 5, 3))])


def _expected_receipt() -> Receipt:
    return Receipt(order_id=ORDER_ID, charged=Decimal("0.3"), status=Status.SHIPPED,
                   issued=PLACED + timedelta(hours=1), ship_by=date(2024, 5, 3))


# --- activities -------------------------------------------------------------------------

def bill(order: Order) -> Receipt:
    """Asserts it was handed real typed objects, not the JSON they travelled as."""
    assert isinstance(order, Order), type(order)
    assert isinstance(order.id, UUID), type(order.id)
    assert isinstance(order.placed, datetime) and order.placed.tzinfo is not None
    assert type(order.total) is Decimal, type(order.total)
    assert isinstance(order.status, Status), type(order.status)
    for line in order.lines:
        assert isinstance(line, Line), type(line)
        assert type(line.price) is Decimal, type(line.price)
        assert type(line.ship_by) is date, type(line.ship_by)
    charged = sum((line.price for line in order.lines), Decimal(0))
    assert charged == order.total == Decimal("0.1") + Decimal("0.2") == Decimal("0.3")
    SEEN.setdefault("bill", []).append(order)
    return Receipt(order_id=order.id, charged=charged, status=Status.SHIPPED,
                   issued=order.placed + timedelta(hours=1),
                   ship_by=min(line.ship_by for line in order.lines))


def label(receipt: Receipt, workflow_look: list[bool]) -> str:
    assert isinstance(receipt, Receipt), type(receipt)
    assert isinstance(receipt.status, Status) and type(receipt.charged) is Decimal
    SEEN.setdefault("label", []).append(workflow_look)
    return f"{receipt.order_id}:{receipt.charged}:{receipt.status.value}"


billing = workflow.proxy_activities(activities=[bill, label], retry=ONCE)


def convert(money: Money, rate: Decimal) -> Money:
    assert isinstance(money, Money), type(money)
    assert type(money.amount) is Decimal and type(rate) is Decimal
    SEEN.setdefault("convert", []).append(money)
    return Money(amount=(money.amount * rate).quantize(Decimal("0.01")), currency="EUR")


fx = workflow.proxy_activities(activities=[convert], retry=ONCE)


def needs_uuid(ref: UUID) -> str:
    SEEN.setdefault("needs_uuid", []).append(ref)  # never reached with a bad ref
    return str(ref)


strict = workflow.proxy_activities(
    activities=[needs_uuid], retry=RetryPolicy(maximum_attempts=3, initial_interval="100ms"))


# --- workflows --------------------------------------------------------------------------

def place_order(order: Order) -> Outcome:
    assert isinstance(order, Order) and isinstance(order.lines[0], Line)
    assert type(order.total) is Decimal and isinstance(order.status, Status)
    receipt = billing.bill(order)
    # Every result a workflow sees comes from the record: on the activation
    # right after bill (is_replaying False), and again on the last (True).
    look = [workflow.info().is_replaying, isinstance(receipt, Receipt)]
    text = billing.label(receipt, look)
    assert isinstance(receipt, Receipt)
    return Outcome(receipt=receipt, label=text, replay_look=look)


def pack(order_id: UUID, lines: list[Line]) -> Parcel:
    assert isinstance(order_id, UUID) and all(isinstance(line, Line) for line in lines)
    return Parcel(order_id=order_id, skus=[line.sku for line in lines],
                  ship_by=min(line.ship_by for line in lines))


def ship(order: Order) -> Shipment:
    parcel = workflow.exec_child(pack, [order.id, order.lines])
    # By name there is no function, so no return hint: the child's JSON as it is.
    by_name = workflow.exec_child("pack", [order.id, order.lines[:1]])
    return Shipment(parcel=parcel, parcel_was_typed=isinstance(parcel, Parcel),
                    by_name_type=type(by_name).__name__)


def exchange(money: Money) -> Money:
    assert isinstance(money, Money), type(money)
    converted = fx.convert(money, Decimal("0.9"))
    assert isinstance(converted, Money), type(converted)
    return converted


def wants_uuid(ref: UUID) -> str:
    SEEN.setdefault("wants_uuid", []).append(ref)  # never reached with a bad ref
    return str(ref)


def passes_bad_ref() -> list[str]:
    try:
        strict.needs_uuid("not-a-uuid")
    except errors.FatalError as exc:
        return [type(exc).__name__, exc.error_type, exc.message]
    return ["no error"]


def stamps_entity() -> list[str]:
    try:
        workflow.entity().set({"at": PLACED, "note": "typed values are not stored here"})
    except TypeError as exc:
        refused = [type(exc).__name__, str(exc)]
    else:
        refused = ["stored"]
    workflow.entity().set({"at": PLACED.isoformat()})  # as JSON, the document takes it
    return refused


def takes_anything(value: Any) -> Any:
    return value


# --- tests ------------------------------------------------------------------------------

def _round_trip(mf: MemFlow, worker: Any) -> None:
    worker("default", [place_order], [bill, label])
    handle = mf.workflow.start(place_order, [_order()])
    handle.result(timeout=20)
    outcome = mf.workflow.execute(place_order, [_order()], timeout=20)
    assert isinstance(outcome, Outcome)
    assert outcome == Outcome(receipt=_expected_receipt(),
                              label=f"{ORDER_ID}:0.3:shipped", replay_look=[True, True])
    assert isinstance(outcome.receipt.status, Status)
    assert type(outcome.receipt.charged) is Decimal
    # The first activation that saw bill's result (not replaying) had a Receipt too.
    assert SEEN["label"] == [[False, True], [False, True]]
    assert SEEN["bill"] == [_order(), _order()]
    # Stored as plain JSON: the Decimal as text, the enum by value, the UUID as text.
    stored = {s["name"]: s["result"] for s in handle.steps()}
    assert stored["bill"]["charged"] == "0.3"
    assert stored["bill"]["status"] == "shipped"
    assert stored["bill"]["order_id"] == str(ORDER_ID)
    assert stored["label"] == f"{ORDER_ID}:0.3:shipped"


def test_dataclass_order_in_and_receipt_out_through_workflow_and_activities(
        mf: MemFlow, worker: Any) -> None:
    _round_trip(mf, worker)
    if payloads._pydantic is not None:
        assert payloads._cached_adapter.cache_info().currsize > 0  # pydantic did the work


def test_start_and_result_without_the_function_give_the_stored_json(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [place_order], [bill, label])
    value = mf.workflow.execute("place_order", [_order()], timeout=20)
    assert isinstance(value, dict)
    assert value["receipt"]["charged"] == "0.3" and value["replay_look"] == [True, True]


def test_a_child_workflow_returns_a_dataclass(mf: MemFlow, worker: Any) -> None:
    worker("default", [ship, pack])
    shipment = mf.workflow.execute(ship, [_order()], timeout=20)
    assert shipment == Shipment(
        parcel=Parcel(order_id=ORDER_ID, skus=["apple", "pear"], ship_by=date(2024, 5, 3)),
        parcel_was_typed=True, by_name_type="dict")


def test_a_pydantic_model_as_activity_argument_and_result(mf: MemFlow, worker: Any) -> None:
    pytest.importorskip("pydantic")
    worker("default", [exchange], [convert])
    result = mf.workflow.execute(exchange, [Money(amount=Decimal("10.10"), currency="USD")],
                                 timeout=20)
    assert isinstance(result, Money)
    assert result == Money(amount=Decimal("9.09"), currency="EUR")
    assert SEEN["convert"] == [Money(amount=Decimal("10.10"), currency="USD")]


def test_the_small_path_without_pydantic_round_trips_the_same_order(
        mf: MemFlow, worker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker threads run in this process: they see the patched module too.
    with monkeypatch.context() as patch:
        patch.setattr(payloads, "_pydantic", None)
        payloads._reset_caches()
        try:
            _round_trip(mf, worker)
            # No pydantic adapter was built: the small path did all of it.
            assert payloads._cached_adapter.cache_info().currsize == 0
        finally:
            payloads._reset_caches()
    payloads._reset_caches()


def test_workflow_args_that_do_not_fit_the_hints_fail_598_without_retries(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [wants_uuid])
    handle = mf.workflow.start("wants_uuid", ["not-a-uuid"],
                               retry=RetryPolicy(maximum_attempts=3, initial_interval="100ms"))
    with pytest.raises(errors.WorkflowFailedError) as info:
        handle.result(timeout=20)
    assert info.value.code == errors.CODE_FATAL == 598
    assert info.value.error_type == "TypeError"
    assert "do not fit its type hints" in info.value.message
    assert "not-a-uuid" in info.value.message
    assert handle.describe()["attempt"] == 1
    assert "wants_uuid" not in SEEN


def test_activity_args_that_do_not_fit_the_hints_fail_fatal_without_running(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [passes_bad_ref], [needs_uuid])
    handle = mf.workflow.start(passes_bad_ref)
    kind, error_type, message = handle.result(timeout=20)
    assert (kind, error_type) == ("FatalError", "TypeError")
    assert "cannot rebuild UUID" in message and "not-a-uuid" in message
    assert "after" not in message  # a MaxedError would say "(after N attempts)"
    assert "needs_uuid" not in SEEN
    [step] = handle.steps()
    assert step["kind"] == "activity" and step["error"]["type"] == "FatalError"


def test_entity_documents_refuse_a_datetime_with_a_type_error(
        mf: MemFlow, worker: Any) -> None:
    worker("default", [stamps_entity])
    handle = mf.workflow.start(stamps_entity)
    kind, message = handle.result(timeout=20)
    assert kind == "TypeError"
    assert "not JSON-serializable" in message and "datetime" in message
    # Refused before it was recorded or run: the document has only the JSON version.
    assert handle.state() == {"at": PLACED.isoformat()}
    assert [s["kind"] for s in handle.steps()] == ["entity"]


def test_a_set_is_refused_at_start_before_anything_is_written(mf: MemFlow) -> None:
    with pytest.raises(TypeError, match="not JSON-serializable"):
        mf.workflow.start(takes_anything, [{1, 2}], workflow_id="with-a-set")
    with pytest.raises(errors.WorkflowNotFoundError):
        mf.workflow.get_handle("with-a-set")
