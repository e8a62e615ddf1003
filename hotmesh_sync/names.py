"""The one check for names and ids users hand in (API.md §10).

Workflow ids, workflow and activity names, signal ids, hook ids, entity
labels, task queues and schedule ids are all 1 to 512 characters of text
without control characters. They are checked at the call, inside a workflow
too, before anything is written: a bad one can then never become a task that
fails forever.
"""

from __future__ import annotations

import re
from typing import Any

#: The longest name or id accepted.
MAX_NAME = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a valid name or id; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {MAX_NAME}")
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain control characters: {value[:40]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} contains a lone surrogate, which cannot be stored") from None
    return value
