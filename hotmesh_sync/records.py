"""Turning any exception into text PostgreSQL can store.

An error is stored as JSON (jsonb), which refuses NUL characters and lone
surrogates; a message may also be megabytes long, or its ``__str__`` may
itself raise. Any of those used to turn one failure into another that could
not be recorded, so the work was retried forever. Everything stored about an
error goes through ``safe_text`` and ``describe_error`` first.
"""

from __future__ import annotations

#: The longest error message stored; longer ones are cut, saying so.
MAX_MESSAGE = 8_000


def safe_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` with NUL and lone surrogates escaped, cut to ``limit`` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        cut = len(text) - limit
        text = f"{text[:limit]}... [{cut} more characters]"
    return text


def error_message(exc: BaseException) -> str:
    """The storable message of ``exc`` (its ``.message`` if it has one, else ``str``)."""
    try:
        raw = getattr(exc, "message", None)
        text = raw if isinstance(raw, str) else str(exc)
    except Exception as broken:  # a __str__ that raises must not hide the error
        text = f"<{type(exc).__name__} whose message could not be read: {type(broken).__name__}>"
    return safe_text(text)


def error_type_of(exc: BaseException) -> str:
    """The class name a stored error carries (``.error_type`` when it wraps another)."""
    named = getattr(exc, "error_type", None)
    return safe_text(named if isinstance(named, str) and named else type(exc).__name__, 200)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for log lines, safe whatever ``exc`` is."""
    return f"{error_type_of(exc)}: {error_message(exc)}"
