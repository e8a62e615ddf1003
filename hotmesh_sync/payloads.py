"""Typed values across the workflow boundary, stored as JSON.

Activity arguments and results, workflow arguments and child results are
stored as JSON, so a dataclass, a ``datetime`` or a ``Decimal`` cannot be
stored as it is. :func:`encode` turns such a value into JSON on the way in,
and :func:`decode` rebuilds it on the way out from the type hints of the
function that receives it: the stored JSON says nothing about Python types.

When pydantic is installed it does both halves (``TypeAdapter``), and so
handles anything pydantic knows, models included. Without it a small path
covers dataclasses, enums, dates and times, UUIDs, decimals and the usual
containers. A hint that neither can build from is treated as no hint: the
JSON value is passed on as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import types
import typing
import weakref
from collections import abc
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

_pydantic: types.ModuleType | None
try:
    import pydantic

    _pydantic = pydantic
except ImportError:  # the small path below covers the common types
    _pydantic = None

NoneType = type(None)
# JSON decodes to exactly these types, so values of these types need no work.
_JSON_TYPES = (str, int, float, bool, NoneType)
# Hints that ask for nothing beyond what JSON already gives.
_PLAIN_HINTS = frozenset({Any, object, inspect.Parameter.empty, None, *_JSON_TYPES, dict, list})
# Generic hints that are plain when their arguments are (``dict[str, Any]``, ``str | None``).
_PLAIN_ORIGINS = frozenset({list, dict, typing.Union, types.UnionType, abc.Sequence, abc.Mapping,
                            abc.MutableSequence, abc.MutableMapping, abc.Collection, abc.Iterable})
# The small path builds abstract containers as the JSON-shaped concrete ones.
_CONCRETE = {abc.Sequence: list, abc.MutableSequence: list, abc.Collection: list,
             abc.Iterable: list, abc.Set: frozenset, abc.MutableSet: set,
             abc.Mapping: dict, abc.MutableMapping: dict}
_SCALARS: dict[Any, Callable[[str], Any]] = {
    datetime: datetime.fromisoformat, date: date.fromisoformat, time: time.fromisoformat,
    UUID: UUID, Decimal: Decimal,
}


def encode(value: Any) -> Any:
    """``value`` as JSON-compatible data; what cannot be encoded comes back unchanged,
    for the caller's JSON check to refuse."""
    kind = type(value)
    if kind in _JSON_TYPES:
        return value
    if kind is list or kind is dict or kind is tuple:
        # Most payloads are plain: one scan, and no copy of what needs none.
        if _is_json(value):
            return list(value) if kind is tuple else value
        if kind is dict:
            return {key: encode(item) for key, item in value.items()}
        return [encode(item) for item in value]
    if not _typed(value):
        return value  # a set, an arbitrary object: JSON refuses it, as the API says
    if _pydantic is not None:
        adapter = _adapter(kind)
        if adapter is None:
            return value
        try:
            return adapter.dump_python(value, mode="json")
        except ValueError:  # PydanticSerializationError: nothing JSON can carry
            return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return encode(value.value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)  # a Decimal as text keeps its every digit
    return value


#: The value types a payload may carry beyond JSON (API.md §11).
_TYPED = (Enum, datetime, date, time, UUID, Decimal)


def _typed(value: Any) -> bool:
    """Whether ``value`` is one of the types payloads carry: a dataclass
    instance, a pydantic model, or one of ``_TYPED``."""
    if isinstance(value, _TYPED):
        return True
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return True
    return _pydantic is not None and isinstance(value, _pydantic.BaseModel)


def _is_json(value: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> bool:
    """Whether the items of ``value``, all the way down, are plain JSON already."""
    for item in value.values() if isinstance(value, dict) else value:
        kind = type(item)
        if kind not in _JSON_TYPES and not ((kind is list or kind is dict) and _is_json(item)):
            return False
    return True


def decode(value: Any, hint: Any) -> Any:
    """``value`` (as read from JSON) rebuilt as ``hint`` asks; TypeError if it cannot be."""
    if _plain_hint(hint):
        return value
    if _pydantic is not None:
        adapter = _adapter(hint)
        if adapter is None:
            return value
        try:
            return adapter.validate_python(value)
        except _pydantic.ValidationError as exc:
            raise TypeError(f"cannot rebuild {_name(hint)} from {value!r:.100}: {exc}") from exc
    try:
        return _rebuild(value, hint)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise TypeError(f"cannot rebuild {_name(hint)} from {value!r:.100}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Hints:
    """What a function's annotations ask of its arguments and result (``Any``: nothing)."""

    positional: tuple[Any, ...] = ()  #: parameters that can be passed by position, in order
    keyword: Mapping[str, Any] = dataclasses.field(default_factory=dict)  #: by keyword
    var_positional: Any = Any
    var_keyword: Any = Any
    returns: Any = Any
    plain: bool = True  #: nothing to decode: callers skip the work


NO_HINTS = Hints()
# Per function, and per underlying function for bound methods (a new object on every access).
_hints: weakref.WeakKeyDictionary[Any, Hints] = weakref.WeakKeyDictionary()
_bound_hints: weakref.WeakKeyDictionary[Any, Hints] = weakref.WeakKeyDictionary()


def param_hints(fn: Callable[..., Any]) -> Hints:
    """The hints of ``fn``'s parameters and result; NO_HINTS where they cannot be read."""
    if isinstance(fn, types.MethodType):
        key, cache = fn.__func__, _bound_hints
    else:
        key, cache = fn, _hints
    try:
        return cache[key]
    except (KeyError, TypeError):  # TypeError: not weakly referenceable
        pass
    hints = _read_hints(fn)
    with contextlib.suppress(TypeError):
        cache[key] = hints
    return hints


def decode_args(fn: Callable[..., Any], args: list[Any],
                kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Arguments read from JSON, rebuilt for ``fn`` by position and by name."""
    hints = param_hints(fn)
    if hints.plain:
        return args, kwargs
    named = hints.positional
    decoded = [decode(arg, named[i] if i < len(named) else hints.var_positional)
               for i, arg in enumerate(args)]
    return decoded, {name: decode(arg, hints.keyword.get(name, hints.var_keyword))
                     for name, arg in kwargs.items()}


def decode_result(fn: Callable[..., Any] | None, value: Any) -> Any:
    """A result read from JSON, rebuilt as ``fn``'s return hint asks."""
    return value if fn is None else decode(value, param_hints(fn).returns)


def result_decoder(fn: Callable[..., Any] | None) -> Callable[[Any], Any]:
    """``decode_result`` for ``fn``, its hint looked up once: the identity when
    the hint asks for nothing to be rebuilt (a replay calls it for every
    recorded step)."""
    if fn is None:
        return _identity
    hint = param_hints(fn).returns
    if _plain_hint(hint):
        return _identity
    return functools.partial(_decode_as, hint)


def _identity(value: Any) -> Any:
    return value


def _decode_as(hint: Any, value: Any) -> Any:
    return decode(value, hint)


def encode_args(args: Sequence[Any]) -> list[Any]:
    return [encode(arg) for arg in args]


def encode_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {name: encode(arg) for name, arg in kwargs.items()}


def _read_hints(fn: Callable[..., Any]) -> Hints:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if isinstance(target, type):
        return NO_HINTS  # a class is not a workflow or an activity; its hints are its fields'
    try:
        signature = inspect.signature(fn)
        found = typing.get_type_hints(target)
    except Exception:  # no signature (some builtins), or annotations that do not resolve
        return NO_HINTS
    positional: list[Any] = []
    keyword: dict[str, Any] = {}
    var_positional = var_keyword = Any
    for name, param in signature.parameters.items():
        hint = found.get(name, Any)
        if param.kind is param.VAR_POSITIONAL:
            var_positional = hint
        elif param.kind is param.VAR_KEYWORD:
            var_keyword = hint
        else:
            if param.kind is not param.KEYWORD_ONLY:
                positional.append(hint)
            if param.kind is not param.POSITIONAL_ONLY:
                keyword[name] = hint
    returns = found.get("return", Any)
    every = [*positional, *keyword.values(), var_positional, var_keyword, returns]
    return Hints(tuple(positional), keyword, var_positional, var_keyword, returns,
                 all(_plain_hint(hint) for hint in every))


def _plain_hint(hint: Any) -> bool:
    try:
        return _plain_cached(hint)
    except TypeError:  # an unhashable hint: never plain, never cached
        return False


@functools.lru_cache(maxsize=1024)
def _plain_cached(hint: Any) -> bool:
    if hint in _PLAIN_HINTS or isinstance(hint, typing.TypeVar):
        return True
    return (typing.get_origin(hint) in _PLAIN_ORIGINS
            and all(_plain_hint(arg) for arg in typing.get_args(hint)))


def _adapter(hint: Any) -> Any:
    """pydantic's TypeAdapter for ``hint``, or None for a type pydantic cannot describe."""
    try:
        return _cached_adapter(hint)
    except TypeError:  # an unhashable hint: built on every call
        return _cached_adapter.__wrapped__(hint)


@functools.lru_cache(maxsize=512)
def _cached_adapter(hint: Any) -> Any:
    assert _pydantic is not None
    try:
        return _pydantic.TypeAdapter(hint)
    except (_pydantic.PydanticUserError, NameError, TypeError):
        return None


def _rebuild(value: Any, hint: Any) -> Any:
    """The small path of :func:`decode`: raises TypeError, ValueError or ArithmeticError."""
    if _plain_hint(hint):
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    # Classes first; origin is checked as well since ``list[int]`` passes for a type on 3.10.
    if origin is None and isinstance(hint, type):
        if isinstance(value, hint):
            return value  # already built: a value that never went through JSON
        if issubclass(hint, Enum):
            return hint(value)
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            fields = _field_hints(hint)
            return hint(**{f.name: _rebuild(value[f.name], fields.get(f.name, Any))
                           for f in dataclasses.fields(hint) if f.init and f.name in value})
        if hint in _SCALARS:
            if hint is Decimal and type(value) in (int, float):
                value = str(value)
            if not isinstance(value, str):
                raise TypeError(f"expected a string, got {type(value).__name__}")
            if hint in (datetime, time) and value.endswith("Z"):  # fromisoformat before 3.11
                value = value[:-1] + "+00:00"
            return _SCALARS[hint](value)
        return value  # a class this path does not know: passed on as no hint
    origin = _CONCRETE.get(origin, origin)
    if origin is typing.Annotated:
        return _rebuild(value, args[0])
    if origin in (typing.Union, types.UnionType):
        return _rebuild_union(value, args)
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:  # ValueError on a bad length
            return tuple(_rebuild(item, arg) for item, arg in zip(value, args, strict=True))
        item_hint = args[0] if args else Any
        return origin(_rebuild(item, item_hint) for item in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        key_hint, item_hint = args or (Any, Any)
        return {_rebuild(k, key_hint): _rebuild(v, item_hint) for k, v in value.items()}
    return value


def _rebuild_union(value: Any, members: tuple[Any, ...]) -> Any:
    # Like pydantic's smart mode: a member the JSON value already is wins, then
    # the others are tried in order.
    for member in members:
        if _plain_hint(member):
            kind = typing.get_origin(member) or member
            if not isinstance(kind, type) or isinstance(value, kind):
                return value
    failure: Exception = TypeError("no member of the union matches")
    for member in members:
        if not _plain_hint(member):
            try:
                return _rebuild(value, member)
            except (TypeError, ValueError, ArithmeticError) as exc:
                failure = exc
    raise failure


@functools.lru_cache(maxsize=256)
def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # annotations that do not resolve: the fields go undecoded
        return {}


def _name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else repr(hint)


def _reset_caches() -> None:
    """Forget every cached hint and adapter (tests switch pydantic off and on)."""
    for cached in (_plain_cached, _cached_adapter, _field_hints):
        cached.cache_clear()
    _hints.clear()
    _bound_hints.clear()
