"""structlog configuration for the command line (the library itself never configures logging).

Events go to stderr so that stdout carries only a command's output: a console
renderer for a person at a terminal, one JSON object per line for journald,
cron mail or a log shipper.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
    "error": logging.ERROR, "critical": logging.CRITICAL,
}


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog events at ``level`` and above to ``stream`` (default stderr)."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    out = stream if stream is not None else sys.stderr
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if out.isatty():
        # The console renderer draws tracebacks itself.
        processors.append(structlog.dev.ConsoleRenderer())
    else:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # Loggers bound before a re-configuration (tests, embedding) keep working.
        cache_logger_on_first_use=False,
    )
