"""The library's loggers: structlog's API on top of the standard ``logging`` module.

``get_logger("hotmesh_sync.worker")`` returns a structlog ``BoundLogger`` (so
``log.bind(workflow_id=...)`` and ``log.info("event", key=value)`` work) whose
events become ordinary ``logging`` records of the stdlib logger of that name.
The library therefore never prints: what happens to its events is decided by
the application's logging configuration (``logging.basicConfig``, Django's
``LOGGING``, ...), and without one they go nowhere (the package installs a
``NullHandler`` on ``hotmesh_sync``).

These loggers are built directly, with their own processor chain, instead of
through ``structlog.get_logger``/``wrap_logger``: those consult structlog's
global configuration, which belongs to the application. The application's
``structlog.configure(...)`` does not change what the library does, and the
library never calls it.

A record made from ``log.info("workflow_started", workflow_id="w1", attempt=1)``:

- ``record.getMessage()`` is ``"workflow_started workflow_id=w1 attempt=1"``, so
  that a plain ``logging.basicConfig()`` (``%(message)s``) shows the fields too.
  structlog's ``render_to_log_kwargs`` would make the message the bare event
  name and leave the fields visible only to a formatter that knows where to
  look; a library has to read well under the formatter the app already has.
- ``record.event`` is ``"workflow_started"`` and every field is an attribute
  (``record.workflow_id``, ``record.attempt``), as if passed in ``extra``, for
  structured formatters (JSON loggers, ``structlog.stdlib.ProcessorFormatter``
  with ``ExtraAdder``, ``logging_setup``) and for tests (pytest's ``caplog``).
  A field whose name a ``LogRecord`` already uses (``name``, ``args``,
  ``message``, ...) gets a trailing underscore instead of breaking the call.
- ``record.funcName``/``lineno``/``module`` are those of the library code that
  logged, not of structlog's internals.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import structlog
from structlog.stdlib import BoundLogger
from structlog.types import EventDict, Processor

__all__ = ["BoundLogger", "get_logger"]

ROOT = "hotmesh_sync"

# Attributes every LogRecord has: ``extra`` may not set them (logging raises KeyError).
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime"}
_KWARG_NAMES = ("exc_info", "stack_info")
_BARE = re.compile(r"^[^\s\"'=\\]+$")
_STRUCTLOG_DIR = os.path.dirname(structlog.__file__) + os.sep
_THIS_FILE = os.path.normcase(os.path.abspath(__file__))


def _value(value: Any) -> str:
    """A field's value in the message: bare when unambiguous, else its repr."""
    if isinstance(value, str) and _BARE.match(value):
        return value
    return repr(value)


def _stacklevel() -> int:
    """The ``stacklevel`` that points the record at the code that called the logger.

    Called from the last processor; the stdlib logging method is called from
    structlog's ``_proxy_to_logger``, two frames up from here (the processor
    chain runs in ``_process_event`` below it). Counting the structlog frames
    instead of hard-coding them keeps working across structlog versions and
    through ``bind()``/``exception()``.
    """
    frame = sys._getframe(2)  # _to_log_kwargs <- _process_event <- _proxy_to_logger
    level = 1
    while frame.f_back is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith(_STRUCTLOG_DIR)
                or os.path.normcase(os.path.abspath(filename)) == _THIS_FILE):
            return level - 1
        frame = frame.f_back
        level += 1
    return 1


def _to_log_kwargs(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """The keyword arguments of the stdlib call: see the module docstring."""
    event = str(event_dict.pop("event", ""))
    kwargs: dict[str, Any] = {name: event_dict.pop(name) for name in _KWARG_NAMES
                              if name in event_dict}
    given = event_dict.pop("stacklevel", 1)
    kwargs["stacklevel"] = _stacklevel() + (given - 1 if isinstance(given, int) else 0)
    extra = {(key if key not in _RECORD_ATTRS else f"{key}_"): value
             for key, value in event_dict.items()}
    extra["event"] = event
    message = " ".join([event, *(f"{key}={_value(value)}" for key, value in event_dict.items())])
    return {"msg": message, "extra": extra, **kwargs}


_PROCESSORS: list[Processor] = [
    # First, so that a disabled level costs one level comparison.
    structlog.stdlib.filter_by_level,
    structlog.contextvars.merge_contextvars,
    # log.info("%s done", x): the stdlib's %-formatting of the event.
    structlog.stdlib.PositionalArgumentsFormatter(),
    _to_log_kwargs,
]


def get_logger(name: str = ROOT) -> BoundLogger:
    """A structlog BoundLogger over ``logging.getLogger(name)``, ``name`` under ``hotmesh_sync``."""
    if name != ROOT and not name.startswith(ROOT + "."):
        raise ValueError(f"logger names are under {ROOT!r}, not {name!r}")
    return BoundLogger(logging.getLogger(name), _PROCESSORS, {})
