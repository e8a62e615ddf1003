"""Logging for the command line (the library itself never configures logging).

``configure_logging`` gives the stdlib ``hotmesh_sync`` logger one handler that
writes to stderr, so that stdout carries only a command's output: a console
rendering for a person at a terminal, one JSON object per line for journald,
cron mail or a log shipper. It leaves structlog's global configuration and the
root logger alone.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

import structlog

from .log import ROOT

LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "critical": logging.CRITICAL,
}

# Attributes of every LogRecord; the others were passed in ``extra`` (the event's fields).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "event"}


def event_of(record: logging.LogRecord) -> dict[str, Any]:
    """A record as an event: ``event``, its fields, ``level``, ``logger`` and ``timestamp``
    (and ``exception``, the traceback, when it has one)."""
    event = getattr(record, "event", None)
    data: dict[str, Any] = {"event": event if isinstance(event, str) else record.getMessage()}
    data.update((key, value) for key, value in record.__dict__.items()
                if key not in _STANDARD and not key.startswith("_"))
    data["level"] = record.levelname.lower()
    data["logger"] = record.name
    data["timestamp"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat().replace(
        "+00:00", "Z")
    if record.exc_info:
        data["exception"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        data["exception"] = record.exc_text
    if record.stack_info:
        data["stack"] = record.stack_info
    return data


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(event_of(record), default=repr, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """structlog's console rendering (aligned, coloured) of a record."""

    def __init__(self, colors: bool = True) -> None:
        super().__init__()
        self._render = structlog.dev.ConsoleRenderer(colors=colors)

    def format(self, record: logging.LogRecord) -> str:
        return str(self._render(None, record.levelname.lower(), event_of(record)))


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` adds (and replaces when called again)."""


class _StderrHandler(_Handler):
    """Writes to whatever ``sys.stderr`` is at the time (as logging's lastResort does), so a
    replaced stderr (pytest's capture, a redirect) is never written to after it closed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _has_real_handler(logger: logging.Logger) -> bool:
    """Whether a record of ``logger`` reaches a handler other than a NullHandler."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def configure_logging(level: str = "info", stream: TextIO | None = None, *,
                      if_unconfigured: bool = False) -> None:
    """Show the ``hotmesh_sync`` events at ``level`` and above on ``stream`` (default stderr).

    Idempotent: a second call replaces the handler the first one added. With
    ``if_unconfigured`` (the Django and Flask worker commands) it does nothing
    when the application's logging configuration already handles these events.
    """
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    logger = logging.getLogger(ROOT)
    ours = [h for h in logger.handlers if isinstance(h, _Handler)]
    if if_unconfigured and (ours or _has_real_handler(logger)):
        return
    for handler in ours:
        logger.removeHandler(handler)
    handler = _Handler(stream) if stream is not None else _StderrHandler()
    out = stream if stream is not None else sys.stderr
    tty = bool(getattr(out, "isatty", lambda: False)())
    handler.setFormatter(ConsoleFormatter() if tty else JSONFormatter())
    logger.addHandler(handler)
    logger.setLevel(LEVELS[level])
