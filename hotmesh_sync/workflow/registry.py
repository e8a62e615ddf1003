"""Name → function tables for workflows, hooks and activities."""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Fn = Callable[..., Any]
FunctionSet = Iterable[Fn] | Mapping[str, Fn] | types.ModuleType | None


#: The attribute ``workflow.transactional`` sets on an activity function.
TRANSACTIONAL = "__hotmesh_transactional__"


def transactional(fn: Fn) -> Fn:
    """Mark an activity as transactional: it is called with a psycopg connection
    as its first argument, inside the transaction that records its step, so
    its database writes and the step commit together (exactly once)."""
    if not callable(fn):
        raise TypeError("workflow.transactional decorates an activity function")
    setattr(fn, TRANSACTIONAL, True)
    return fn


def is_transactional(fn: Fn) -> bool:
    return bool(getattr(fn, TRANSACTIONAL, False))


def name_of(target: str | Fn) -> str:
    """A workflow or activity name: the text itself, or a function's __name__."""
    if isinstance(target, str):
        if not target:
            raise ValueError("a workflow name cannot be empty")
        return target
    if callable(target):
        return str(target.__name__)
    raise TypeError(f"expected a name or a function, got {type(target).__name__}")


def as_table(functions: FunctionSet) -> dict[str, Fn]:
    """Normalize a list, a mapping or a module of functions to {name: fn}."""
    if functions is None:
        return {}
    if isinstance(functions, types.ModuleType):
        module = functions
        return {
            name: fn for name, fn in vars(module).items()
            if inspect.isfunction(fn) and not name.startswith("_")
            and fn.__module__ == module.__name__
        }
    if isinstance(functions, Mapping):
        table = dict(functions)
    else:
        table = {name_of(fn): fn for fn in functions}  # type: ignore[union-attr]
    for name, fn in table.items():
        if not callable(fn):
            raise TypeError(f"{name!r} is not callable")
    return table


def ref_of(fn: Fn) -> str:
    """Where a function is defined: ``module:qualified.name``."""
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
