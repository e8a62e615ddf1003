"""A pure-Python model of every entity command, for tests to check the SQL against.

Each command becomes RFC 6902 operations that ``jsonpatch`` applies to a copy
of the document; paths, absent values, errors and number arithmetic follow
the rules of the SQL functions ``entity_*`` (schema.sql), written a second
time in a second language on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import MAX_PREC, Context, Decimal
from typing import Any

import jsonpatch
from jsonpointer import JsonPointer

from ..errors import EntityTypeError, InvalidPathError
from .commands import MAX_NUMBER, compile_command
from .paths import is_index, lookup, resolve

Ops = list[dict[str, Any]]

# Exact sums, as PostgreSQL's numeric gives them.
_EXACT = Context(prec=MAX_PREC)


def apply(
    document: dict[str, Any],
    command: str,
    path: object = None,
    args: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """(document after, result) of one command; ``document`` itself is not changed.

    Raises what ``apply_command`` raises for the same input.
    """
    compiled = compile_command(command, path, **dict(args or {}))
    if not compiled.writes:
        return document, lookup(document, compiled.path)
    arg = None if compiled.params["arg"] is None else json.loads(compiled.params["arg"])
    ops = operations(document, command, compiled.path, arg)
    after: dict[str, Any] = jsonpatch.apply_patch(document, ops)
    return after, lookup(after, compiled.result_path)


def operations(document: Any, command: str, segments: list[str] | None, arg: Any) -> Ops:
    """The patch operations of one (checked) command on ``document``."""
    if command == "set":
        return [{"op": "replace", "path": "", "value": arg}]
    if command == "merge":
        return _merge_ops(document, arg, [])
    assert segments is not None
    if command == "delete":
        found, _ = resolve(document, segments)
        return [{"op": "remove", "path": _pointer(segments)}] if found else []
    depth, target = locate(document, segments)
    if command in ("append", "prepend"):
        if target is None:
            return _put(document, segments, depth, [arg])
        _expect(target, list, command, segments)
        where = "-" if command == "append" else "0"
        return [{"op": "add", "path": _pointer([*segments, where]), "value": arg}]
    if command == "remove":
        if target is not None:
            _expect(target, list, command, segments)
        items = target or []
        if not -len(items) <= arg < len(items):
            raise InvalidPathError(f"index {arg} is out of range for the {len(items)} items")
        return [{"op": "remove", "path": _pointer([*segments, str(arg % len(items))])}]
    if command == "increment":
        if target is not None and not _is_number(target):
            raise EntityTypeError(f"cannot increment a {_kind(target)}")
        return _put(document, segments, depth, add_numbers(0 if target is None else target, arg))
    if command == "toggle":
        if target is not None:
            _expect(target, bool, command, segments)
        return _put(document, segments, depth, not target)
    if command == "set_if_not_exists":
        # A null at the path itself is a value, and stays; a null on the way is absent.
        present = target is not None or resolve(document, segments)[0]
        return [] if present else _put(document, segments, depth, arg)
    raise ValueError(f"unknown entity command {command!r}")


def locate(document: Any, segments: list[str]) -> tuple[int, Any]:
    """(how many leading segments resolve to present values, value at the path or None).

    InvalidPathError when the path cannot be written: through a scalar, or a
    segment that is not an index of the array it meets.
    """
    current = document
    for depth, segment in enumerate(segments):
        if isinstance(current, dict):
            child = current.get(segment)
        elif isinstance(current, list):
            if not is_index(segment) or int(segment) >= len(current):
                raise InvalidPathError(f"{segment} is not an index of the {len(current)} items")
            child = current[int(segment)]
        else:
            raise InvalidPathError(f"the path goes through a {_kind(current)}")
        if child is None:
            return depth, None
        current = child
    return len(segments), current


def add_numbers(a: float, b: float) -> float:
    """a + b as numeric adds them: exactly, an integer when neither has decimals.

    Works on the JSON text of each number, as that is what PostgreSQL parses
    (``1e+20`` has no decimals, ``2.0`` has one).

    Raises EntityTypeError for a sum beyond ±MAX_NUMBER, as entity_apply does.
    """
    total = _EXACT.add(Decimal(json.dumps(a)), Decimal(json.dumps(b)))
    if total.copy_abs() > MAX_NUMBER:  # abs() would round to the context
        raise EntityTypeError("cannot increment a number beyond 1.7976931348623157e308")
    exponent = total.as_tuple().exponent
    assert isinstance(exponent, int)
    return int(total) if exponent >= 0 else float(total)


def _put(document: Any, segments: list[str], depth: int, value: Any) -> Ops:
    # Set the first absent level (or the target itself when it is present);
    # the levels below it come as nested objects.
    depth = min(depth, len(segments) - 1)
    nested = value
    for segment in reversed(segments[depth + 1 :]):
        nested = {segment: nested}
    container = lookup(document, segments[:depth])
    key = segments[depth]
    op = "add" if isinstance(container, dict) and key not in container else "replace"
    return [{"op": op, "path": _pointer(segments[: depth + 1]), "value": nested}]


def _merge_ops(base: Any, patch: dict[str, Any], parts: list[str]) -> Ops:
    ops: Ops = []
    for key, value in patch.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            ops.extend(_merge_ops(base[key], value, [*parts, key]))
        else:
            ops.append({"op": "add", "path": _pointer([*parts, key]), "value": value})
    return ops


def _pointer(parts: list[str]) -> str:
    return str(JsonPointer.from_parts(parts).path)


def _expect(value: Any, kind: type, command: str, segments: list[str]) -> None:
    if not isinstance(value, kind):
        raise EntityTypeError(f"cannot {command} a {_kind(value)} at {'.'.join(segments)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"
