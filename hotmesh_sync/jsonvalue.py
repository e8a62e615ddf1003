"""Checks on the JSON values users hand in: serializable, and not too large."""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import PayloadTooLargeError

#: Default ceiling for one JSON value (args, result, signal data, a document).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def max_bytes() -> int:
    """The configured ceiling: ``$HOTMESH_MAX_PAYLOAD_BYTES`` or 16 MB."""
    raw = os.environ.get("HOTMESH_MAX_PAYLOAD_BYTES")
    return int(raw) if raw else DEFAULT_MAX_BYTES


def dumps(value: Any, what: str = "value") -> str:
    """Serialize ``value`` to JSON text, refusing what JSON cannot carry.

    Raises TypeError for non-JSON values (NaN and infinities included, which
    PostgreSQL's jsonb refuses) and PayloadTooLargeError above the ceiling.
    """
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError: a lone surrogate
        raise TypeError(f"{what} is not JSON-serializable: {exc}") from None
    if "\\u0000" in text:
        raise TypeError(f"{what} contains a NUL character, which PostgreSQL jsonb cannot store")
    if size > max_bytes():
        raise PayloadTooLargeError(
            f"{what} is {size} bytes of JSON, above the maximum of {max_bytes()}"
        )
    return text


def check(value: Any, what: str = "value") -> Any:
    """Validate ``value`` as JSON and return it unchanged."""
    dumps(value, what)
    return value


def normalized(value: Any, what: str = "value") -> Any:
    """Return ``value`` as it will come back from the database (tuples become lists)."""
    return json.loads(dumps(value, what))
