"""``workflow.logger``: a structlog logger that stays silent while replaying.

A workflow function runs again from the top on every activation, so a plain
``print`` or ``logging`` call in it shows its line once per replay: a sample
ported from MemFlow printed "charging card" five times for one charge. This
logger drops every call made while the run is replaying its recorded
history (``workflow.info().is_replaying``) and logs the others once, with
the run's ``workflow_id`` and ``workflow_name`` (and, in a hook, its
``run_id``) added as fields.

Outside a run (an activity, a test calling the function directly) there is
no replay to hide, so every call logs, without those fields.

Its events are records of the stdlib logger ``hotmesh_sync.workflow``, made
by ``hotmesh_sync.log.get_logger``: like everything the library logs, they
go wherever the application's logging configuration sends them, and nowhere
without one.

The package exports the instance as ``workflow.logger``, the same name as
this module: after ``from .logger import logger`` in the package, the
attribute is the instance, and ``sys.modules["hotmesh_sync.workflow.logger"]``
(or ``from hotmesh_sync.workflow.logger import ReplaySafeLogger``) is the
module.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from structlog.stdlib import BoundLogger

from ..log import get_logger
from . import context

__all__ = ["LOGGER_NAME", "ReplaySafeLogger", "logger"]

#: The stdlib logger that workflow code's events go to.
LOGGER_NAME = "hotmesh_sync.workflow"

#: The frames of this module between the caller and the BoundLogger method
#: (the public method and ``_emit``): the records then point at the workflow
#: code that logged (``funcName``, ``lineno``), not at this wrapper.
_OWN_FRAMES = 2

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "exception": logging.ERROR,
}


class ReplaySafeLogger:
    """The structlog ``BoundLogger`` API, silent while the current run replays.

    ``bind``, ``unbind``, ``try_unbind`` and ``new`` return another
    ``ReplaySafeLogger`` with those values, so a bound logger kept in a
    variable stays replay-safe. Every logging method returns None.
    """

    __slots__ = ("_log",)

    def __init__(self, log: BoundLogger | None = None) -> None:
        self._log = log if log is not None else get_logger(LOGGER_NAME)

    def __repr__(self) -> str:
        return f"<ReplaySafeLogger {LOGGER_NAME} {structlog.get_context(self._log)!r}>"

    # --- bound values ------------------------------------------------------------------------

    def bind(self, **new_values: Any) -> ReplaySafeLogger:
        """A logger that adds ``new_values`` to every event."""
        return ReplaySafeLogger(self._log.bind(**new_values))

    def unbind(self, *keys: str) -> ReplaySafeLogger:
        """A logger without the bound ``keys`` (KeyError for one that is not bound)."""
        return ReplaySafeLogger(self._log.unbind(*keys))

    def try_unbind(self, *keys: str) -> ReplaySafeLogger:
        """A logger without the bound ``keys``, ignoring those that are not bound."""
        return ReplaySafeLogger(self._log.try_unbind(*keys))

    def new(self, **new_values: Any) -> ReplaySafeLogger:
        """A logger with only ``new_values`` bound."""
        return ReplaySafeLogger(self._log.new(**new_values))

    # --- logging -----------------------------------------------------------------------------

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._emit("debug", _LEVELS["debug"], event, args, kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._emit("info", _LEVELS["info"], event, args, kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._emit("warning", _LEVELS["warning"], event, args, kw)

    def warn(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """The same as ``warning`` (structlog has both names)."""
        self._emit("warning", _LEVELS["warning"], event, args, kw)

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._emit("error", _LEVELS["error"], event, args, kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        self._emit("critical", _LEVELS["critical"], event, args, kw)

    def fatal(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """The same as ``critical`` (structlog has both names)."""
        self._emit("critical", _LEVELS["critical"], event, args, kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """An error with the exception being handled (``exc_info``) attached."""
        self._emit("exception", _LEVELS["exception"], event, args, kw)

    def msg(self, event: str | None = None, *args: Any, **kw: Any) -> None:
        """structlog's level-less ``msg``: logged at INFO, the stdlib having no such level."""
        self._emit("info", _LEVELS["info"], event, args, kw)

    def log(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> None:
        """Log at the stdlib ``level`` (``logging.INFO``, ...)."""
        self._emit("log", level, event, args, kw)

    # --- the one path every call takes -------------------------------------------------------

    def _emit(self, method: str, level: int, event: str | None, args: tuple[Any, ...],
              kw: dict[str, Any]) -> None:
        """Forward the call to the BoundLogger unless the current run is replaying."""
        # A level nobody listens to costs no run lookup and no bind.
        if not self._log.isEnabledFor(level):
            return
        target = self._log
        ctx = context._current.get()
        if ctx is not None:
            info = ctx.info()
            if info.is_replaying:
                # This line was logged when the run first got here.
                return
            run_fields: dict[str, Any] = {"workflow_id": info.workflow_id,
                                          "workflow_name": info.workflow_name}
            if info.run_id:
                run_fields["run_id"] = info.run_id
            # Values the caller bound win over the run's own.
            bound = structlog.get_context(target)
            target = target.bind(**{key: value for key, value in run_fields.items()
                                    if key not in bound})
        given = kw.get("stacklevel", 1)
        kw["stacklevel"] = (given if isinstance(given, int) else 1) + _OWN_FRAMES
        if method == "log":  # the only method that takes the level first
            target.log(level, event, *args, **kw)
        else:
            getattr(target, method)(event, *args, **kw)


#: What workflow code logs with: ``workflow.logger.info("charged", amount=10)``.
logger = ReplaySafeLogger()
