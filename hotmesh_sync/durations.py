"""Durations as users write them: seconds, a timedelta, or text like "5 seconds"."""

from __future__ import annotations

import math
import re
from datetime import timedelta

Duration = int | float | timedelta | str

#: The longest duration accepted anywhere (API.md §10): 100 years, in seconds.
MAX_SECONDS = 100 * 365.25 * 86400.0

_UNITS = {
    "ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_TERM = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def to_seconds(value: Duration) -> float:
    """Convert a duration to seconds; ValueError/TypeError on anything else.

    Text may chain terms ("1h 30m"); a bare number in text means seconds.
    A duration is finite, zero or more, and at most 100 years (MAX_SECONDS):
    anything else is refused with ValueError, so no absurd value is ever
    stored as a timer, a timeout or an expiry.
    """
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf if value > 0 else -math.inf
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise TypeError(f"a duration is seconds, a timedelta or text, not {type(value).__name__}")
    if math.isnan(seconds) or (isinstance(value, float) and math.isinf(value)):
        raise ValueError(f"a duration must be a finite number of seconds, got {_show(value)}")
    if seconds < 0:
        raise ValueError(f"a duration must be zero or more, got {_show(value)}")
    if seconds > MAX_SECONDS:  # inf too: an int or a text too large for a float
        raise ValueError(
            f"a duration must be at most 100 years ({MAX_SECONDS:.0f} seconds), got {_show(value)}"
        )
    return seconds


def _show(value: Duration) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_text(text: str) -> float:
    pos, total, terms = 0, 0.0, 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot read {text!r} as a duration (try '5s', '2 minutes')")
        number, unit = match.group(1), match.group(2).lower()
        if unit not in _UNITS and unit != "":
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(number) * _UNITS.get(unit, 1.0)
        pos, terms = match.end(), terms + 1
    if terms == 0:
        raise ValueError("an empty text is not a duration")
    return total
