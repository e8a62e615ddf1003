"""Typed payloads: values go in as JSON and come out rebuilt from type hints,
through pydantic when it is installed and through the small path when not.

The annotations below are strings (the future import), as in many user modules:
the hints must still resolve.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import inspect
import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any, Optional, Union
from uuid import UUID

import pytest

from hotmesh_sync import payloads
from hotmesh_sync.jsonvalue import dumps

try:
    import pydantic
except ImportError:  # the fallback tests still run
    pydantic = None  # type: ignore[assignment]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


@dataclasses.dataclass
class Line:
    sku: str
    colors: list[Color]
    size: Size = Size.SMALL


@dataclasses.dataclass
class Order:
    id: UUID
    lines: list[Line]
    prices: dict[str, Decimal]
    shipped_at: Optional[datetime] = None  # noqa: UP045 -- the old spelling is the point
    due: date | None = None
    tags: tuple[str, ...] = ()


@dataclasses.dataclass
class Receipt:
    order_id: UUID
    total: Decimal


ORDER = Order(
    id=UUID("12345678-1234-5678-1234-567812345678"),
    lines=[Line("a-1", [Color.RED, Color.GREEN], Size.LARGE), Line("b-2", [])],
    prices={"a-1": Decimal("0.1"), "b-2": Decimal("12345678901234567890.000000001")},
    shipped_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc),
    due=date(2024, 6, 1),
    tags=("gift", "rush"),
)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    payloads._reset_caches()
    yield
    payloads._reset_caches()


@pytest.fixture(params=["pydantic", "fallback"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that takes it runs once with pydantic and once with the small path."""
    if request.param == "pydantic":
        if payloads._pydantic is None:
            pytest.skip("pydantic is not installed")
    else:
        monkeypatch.setattr(payloads, "_pydantic", None)
    return str(request.param)


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(payloads.encode(value)))


def round_trip(value: Any, hint: Any) -> Any:
    return payloads.decode(through_json(value), hint)


@pytest.mark.parametrize("value, hint, stored", [
    (date(2024, 2, 29), date, "2024-02-29"),
    (datetime(2024, 1, 2, 3, 4, 5), datetime, "2024-01-02T03:04:05"),
    (datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), datetime,
     "2024-01-02T03:04:05+02:00"),
    (time(12, 30, 15), time, "12:30:15"),
    (UUID("12345678-1234-5678-1234-567812345678"), UUID,
     "12345678-1234-5678-1234-567812345678"),
    (Decimal("0.1"), Decimal, "0.1"),
    (Decimal("12345678901234567890.000000001"), Decimal, "12345678901234567890.000000001"),
    (Color.GREEN, Color, "green"),
    (Size.LARGE, Size, 2),
    ((1, "two"), tuple[int, str], [1, "two"]),
    ((date(2024, 1, 1),), tuple[date, ...], ["2024-01-01"]),
    ([Color.RED, Color.GREEN], list[Color], ["red", "green"]),
    ({"a": Decimal("0.1")}, dict[str, Decimal], {"a": "0.1"}),
])
def test_scalars_and_containers_round_trip(path: str, value: Any, hint: Any, stored: Any) -> None:
    assert through_json(value) == stored
    back = round_trip(value, hint)
    assert back == value and type(back) is type(value)


def test_sets_stay_refused_as_the_api_says(path: str) -> None:
    # Only the types API.md §11 lists are carried; a set is not JSON, so the
    # caller's JSON check refuses it (TypeError) as before.
    value = {1, 2}
    assert payloads.encode(value) is value
    with pytest.raises(TypeError):
        json.dumps(payloads.encode({"s": value}))


def test_decimal_precision_is_kept(path: str) -> None:
    back = round_trip(Decimal("0.1"), Decimal)
    assert isinstance(back, Decimal) and str(back) == "0.1"
    assert back + Decimal("0.2") == Decimal("0.3")


def test_utc_datetime_round_trips(path: str) -> None:
    value = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert round_trip(value, datetime) == value
    assert round_trip(value, datetime).utcoffset() == timedelta(0)


def test_nested_dataclass_round_trips(path: str) -> None:
    stored = through_json(ORDER)
    assert stored["lines"][0]["colors"] == ["red", "green"]
    assert stored["prices"]["a-1"] == "0.1" and stored["tags"] == ["gift", "rush"]
    back = payloads.decode(stored, Order)
    assert back == ORDER
    assert isinstance(back.lines[0].colors[0], Color) and isinstance(back.lines[0].size, Size)
    assert isinstance(back.prices["b-2"], Decimal) and back.tags == ("gift", "rush")


def test_optional_fields_stay_none(path: str) -> None:
    bare = Order(id=ORDER.id, lines=[], prices={})
    assert round_trip(bare, Order) == bare
    assert payloads.decode(None, Optional[Order]) is None  # noqa: UP045
    assert payloads.decode(None, date | None) is None
    assert payloads.decode("2024-01-01", date | None) == date(2024, 1, 1)


def test_unions_prefer_what_the_json_already_is(path: str) -> None:
    assert payloads.decode("2024-01-01", Union[str, date]) == "2024-01-01"  # noqa: UP007
    assert payloads.decode("2024-01-01", Union[int, date]) == date(2024, 1, 1)  # noqa: UP007
    stored = through_json(Receipt(ORDER.id, Decimal("9.99")))
    assert payloads.decode(stored, int | Receipt) == Receipt(ORDER.id, Decimal("9.99"))
    assert payloads.decode(7, int | Receipt) == 7


@pytest.mark.parametrize("encoder", ["pydantic", "fallback"])
def test_either_path_reads_what_the_other_wrote(encoder: str, monkeypatch: pytest.MonkeyPatch,
                                                  ) -> None:
    """A worker without pydantic reads what a client with it wrote, and back."""
    if payloads._pydantic is None:
        pytest.skip("pydantic is not installed")
    with monkeypatch.context() as patch:
        if encoder == "fallback":
            patch.setattr(payloads, "_pydantic", None)
        stored = through_json(ORDER)
    if encoder == "pydantic":
        monkeypatch.setattr(payloads, "_pydantic", None)
    assert payloads.decode(stored, Order) == ORDER


if pydantic is not None:
    class Customer(pydantic.BaseModel):
        name: str
        since: date
        balance: Decimal
        favorite: Color | None = None
        orders: list[Receipt] = []


def test_pydantic_models_round_trip() -> None:
    # Models exist only with pydantic (a dev dependency), so this runs on its
    # path alone: it does not take the ``path`` fixture.
    assert pydantic is not None, "pip install -e '.[dev]' installs pydantic"
    customer = Customer(name="Ada", since=date(2020, 1, 1), balance=Decimal("10.10"),
                        favorite=Color.RED, orders=[Receipt(ORDER.id, Decimal("0.1"))])
    stored = through_json(customer)
    assert stored["since"] == "2020-01-01" and stored["balance"] == "10.10"
    back = payloads.decode(stored, Customer)
    assert back == customer and isinstance(back.orders[0], Receipt)


@pytest.mark.parametrize("value", ["text", 1, 1.5, True, None, [1, "a", None], {"a": 1, "b": "c"},
                                   {"nested": [1, {"x": 2}]}])
def test_plain_values_pass_unchanged(path: str, value: Any) -> None:
    assert payloads.encode(value) is value
    for hint in (Any, inspect.Parameter.empty, object, dict, list, str, int, None,
                 dict[str, Any], list[Any], Optional[str]):  # noqa: UP045
        assert payloads.decode(value, hint) is value


def test_containers_with_typed_items_are_encoded(path: str) -> None:
    day = date(2024, 1, 1)
    assert payloads.encode([day, 1]) == ["2024-01-01", 1]
    assert payloads.encode((1, 2)) == [1, 2]
    assert payloads.encode({"when": day, "n": 1}) == {"when": "2024-01-01", "n": 1}
    assert payloads.encode_args([ORDER.id, "x"]) == [str(ORDER.id), "x"]
    assert payloads.encode_kwargs({"due": day}) == {"due": "2024-01-01"}


def test_unknown_objects_come_back_unchanged_for_the_json_check(path: str) -> None:
    thing = object()
    assert payloads.encode(thing) is thing
    with pytest.raises(TypeError):
        dumps([payloads.encode(thing)])


class Unknown:
    pass


def test_a_hint_nothing_can_build_passes_the_value_on(path: str) -> None:
    value = {"a": 1}
    assert payloads.decode(value, Unknown) is value


def place(order: Order, qty: int, *, when: datetime) -> Receipt:
    return Receipt(order.id, Decimal(qty))


def stamp(*days: date, **extra: UUID) -> list[date]:
    return list(days)


def test_decode_args_by_position_and_name(path: str) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5)
    args = json.loads(json.dumps(payloads.encode_args([ORDER, 3])))
    kwargs = json.loads(json.dumps(payloads.encode_kwargs({"when": when})))
    decoded, named = payloads.decode_args(place, args, kwargs)
    assert decoded == [ORDER, 3] and named == {"when": when}
    result = place(*decoded, **named)
    assert payloads.decode_result(place, through_json(result)) == result


def test_decode_args_with_star_args_and_positional_kwargs(path: str) -> None:
    decoded, named = payloads.decode_args(stamp, ["2024-01-01", "2024-01-02"],
                                          {"ref": str(ORDER.id)})
    assert decoded == [date(2024, 1, 1), date(2024, 1, 2)] and named == {"ref": ORDER.id}
    assert payloads.decode_result(stamp, ["2024-01-03"]) == [date(2024, 1, 3)]
    # A keyword given for a positional parameter is decoded by its name.
    _, named = payloads.decode_args(place, [], {"order": through_json(ORDER), "qty": 1,
                                                "when": "2024-01-02T00:00:00"})
    assert named["order"] == ORDER and named["when"] == datetime(2024, 1, 2)


def test_string_annotations_resolve() -> None:
    hints = payloads.param_hints(place)
    assert hints.positional == (Order, int) and hints.keyword["when"] is datetime
    assert hints.returns is Receipt and not hints.plain
    assert payloads.param_hints(place) is hints  # cached


def test_plain_signatures_skip_the_work(path: str) -> None:
    def plain(a: int, b: dict[str, Any], *rest: str, c: str | None = None) -> list[str]:
        return []

    args, kwargs = ["x"], {"c": None}
    assert payloads.param_hints(plain).plain
    out_args, out_kwargs = payloads.decode_args(plain, args, kwargs)
    assert out_args is args and out_kwargs is kwargs
    assert payloads.decode_result(None, args) is args


def test_hints_of_odd_callables() -> None:
    for fn in (len, print, dict.get, (lambda x: x), Order, int, Unknown):
        hints = payloads.param_hints(fn)  # no crash
        assert hints.plain
    partial = functools.partial(place, ORDER)
    hints = payloads.param_hints(partial)
    assert hints.positional == (int,) and hints.keyword["when"] is datetime
    decoded, named = payloads.decode_args(partial, [2], {"when": "2024-01-02T00:00:00"})
    assert decoded == [2] and named == {"when": datetime(2024, 1, 2)}


def test_hints_of_methods() -> None:
    class Shipper:
        def ship(self, when: datetime, /) -> date:
            return when.date()

    hints = payloads.param_hints(Shipper().ship)
    assert hints.positional == (datetime,) and hints.returns is date and "when" not in hints.keyword
    assert payloads.param_hints(Shipper.ship).positional == (Any, datetime)


def test_unresolvable_annotations_mean_no_hints() -> None:
    def broken(x: Any) -> None:
        return None

    broken.__annotations__ = {"x": "NotDefinedAnywhere"}
    assert payloads.param_hints(broken) == payloads.NO_HINTS


@pytest.mark.parametrize("value, hint", [
    ("not-a-uuid", UUID),
    (12, UUID),
    ("yesterday", date),
    ("nope", Decimal),
    ("purple", Color),
    (5, list[date]),
    ({"id": str(ORDER.id), "lines": []}, Order),  # "prices" is required
    ([{"sku": "a", "colors": ["blue"]}], list[Line]),
    ("x", Order),
])
def test_what_cannot_be_rebuilt_is_a_type_error(path: str, value: Any, hint: Any) -> None:
    with pytest.raises(TypeError, match="cannot rebuild"):
        payloads.decode(value, hint)
