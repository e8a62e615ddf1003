"""Checks on the JSON values users hand in: serializable, not too deep, not too large."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import PayloadTooLargeError
from .settings import Settings, payload_ceiling

#: Default ceiling for one JSON value (args, result, signal data, a document).
DEFAULT_MAX_BYTES = Settings.max_payload_bytes

#: The deepest nesting of arrays and objects a value may have (API.md §10).
#: ``[]`` and ``{}`` are one level; ``[[1]]`` is two.
MAX_DEPTH = 100

# A JSON escape of NUL that is an escape, not an escaped backslash followed by
# the text "u0000": preceded by an even number of backslashes.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# Brackets become parentheses and everything else goes: the skeleton of the nesting.
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def max_bytes() -> int:
    """The configured ceiling: ``$HOTMESH_MAX_PAYLOAD_BYTES`` or 16 MB."""
    return payload_ceiling()


def dumps(value: Any, what: str = "value") -> str:
    """Serialize ``value`` to JSON text, refusing what JSON cannot carry.

    Raises TypeError for non-JSON values (NaN and infinities included, which
    PostgreSQL's jsonb refuses), for strings (dict keys included) holding NUL
    or a lone surrogate, for arrays and objects nested more than MAX_DEPTH
    levels deep, and PayloadTooLargeError above the ceiling.
    """
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except RecursionError:
        raise TypeError(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError: a lone surrogate
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise TypeError(f"{what} contains a NUL character, which PostgreSQL jsonb cannot store")
    if too_deep(text):
        raise TypeError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    if size > max_bytes():
        raise PayloadTooLargeError(
            f"{what} is {size} bytes of JSON, above the maximum of {max_bytes()}"
        )
    return text


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON ``text`` (as ``json.dumps`` writes it) nests arrays and
    objects more than ``limit`` levels deep.

    Cheap where it matters: text with at most ``limit`` opening brackets is
    answered by two counts. Otherwise the strings are cut out and the
    brackets that remain are peeled one level per round, in C string
    operations, for at most ``limit`` rounds.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    if "\\" in text:
        # Escaped backslashes first, so that what remains of `\"` is a quote
        # inside a string; then no string holds a quote any more.
        text = text.replace("\\\\", "").replace('\\"', "")
    # Outside strings JSON is ASCII; every other piece of the split is a string.
    skeleton = "".join(text.split('"')[::2]).encode("ascii", "replace")
    skeleton = skeleton.translate(_OPEN_CLOSE, _NOT_BRACKETS)
    for _ in range(limit):
        if not skeleton:
            return False
        # Removing every empty pair removes exactly one level of every branch.
        skeleton = skeleton.replace(b"()", b"")
    return bool(skeleton)


def normalized(value: Any, what: str = "value") -> Any:
    """Return ``value`` as it will come back from the database (tuples become lists)."""
    return json.loads(dumps(value, what))
