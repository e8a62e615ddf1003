"""Entity paths: parsing what users write, and reading a document along one.

A path is dotted text (``"items.0.name"``) or a list of segments (``["a.b",
0]``) for keys that contain dots. Either way it becomes a list of text
segments, which is what reaches SQL (as a bound ``text[]``). A segment indexes
an array only when the container is an array, and then only when it is a
canonical non-negative integer (``"0"``, ``"12"``; not ``"01"``, ``"-1"``);
the same rule is coded in the SQL function ``entity_get``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeAlias

from ..errors import InvalidPathError

#: What a caller may pass as a path.
PathLike: TypeAlias = str | Sequence[str | int]

#: Deeper paths are refused: each segment can become a nesting level of the
#: document, and JSON decoders (Python's included) recurse per level.
MAX_SEGMENTS = 128

# Nine digits at most, as in SQL: no array is that long, and the SQL cast to
# integer cannot overflow.
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")


def parse(path: object) -> list[str]:
    """The segments of ``path``; InvalidPathError when it is empty or malformed."""
    if isinstance(path, str):
        if path == "":
            raise InvalidPathError("an entity path cannot be empty")
        segments = path.split(".")
        if "" in segments:
            raise InvalidPathError(
                f"malformed entity path {path!r}: a dot must sit between two segments"
                " (pass a list of segments for keys that contain dots)"
            )
    elif isinstance(path, (list, tuple)):
        if not path:
            raise InvalidPathError("an entity path cannot be an empty list")
        segments = [_segment(item) for item in path]
    else:
        raise InvalidPathError(
            f"an entity path is dotted text or a list of segments, not {type(path).__name__}"
        )
    if len(segments) > MAX_SEGMENTS:
        raise InvalidPathError(f"an entity path has at most {MAX_SEGMENTS} segments")
    for segment in segments:
        _check_text(segment)
    return segments


def parse_optional(path: object) -> list[str] | None:
    """Like ``parse``, but None (meaning: the whole document) stays None."""
    return None if path is None else parse(path)


def is_index(segment: str) -> bool:
    """Whether ``segment`` can index an array."""
    return _INDEX.fullmatch(segment) is not None


def resolve(document: Any, segments: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) at ``segments``; (False, None) when the path does not resolve."""
    current = document
    for segment in segments:
        if isinstance(current, dict):
            if segment not in current:
                return False, None
            current = current[segment]
        elif isinstance(current, list):
            if not is_index(segment) or int(segment) >= len(current):
                return False, None
            current = current[int(segment)]
        else:
            return False, None
    return True, current


def lookup(document: Any, segments: Sequence[str] | None) -> Any:
    """The value at ``segments`` (None when absent); the document for None."""
    if segments is None:
        return document
    return resolve(document, segments)[1]


def _segment(item: object) -> str:
    # bool is an int subclass, but True is no sensible key or index.
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise InvalidPathError(f"a path segment is text or an integer, not {type(item).__name__}")
    text = str(item)
    if text == "":
        raise InvalidPathError("a path segment cannot be empty")
    return text


def _check_text(segment: str) -> None:
    # PostgreSQL text holds neither NUL nor unpaired surrogates.
    if "\x00" in segment:
        raise InvalidPathError("a path segment cannot contain a NUL character")
    try:
        segment.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPathError("a path segment must be valid Unicode text") from None
