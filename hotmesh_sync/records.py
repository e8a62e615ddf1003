"""The records that cross layers (a step, a pending call, an error), each with
one definition and one encoder; and turning any exception into text
PostgreSQL can store.

This module imports nothing that does I/O: the replay engine, the worker,
the store and the client all share it.

An error is stored as JSON (jsonb), which refuses NUL characters and lone
surrogates; a message may also be megabytes long, or its ``__str__`` may
itself raise. Any of those used to turn one failure into another that could
not be recorded, so the work was retried forever. Everything stored about an
error goes through ``safe_text`` and ``describe_error`` first.

An error keeps the chain of errors behind it (``causes``): an activity that
raises ``RuntimeError("charge failed") from ConnectionError("card service
down")`` used to lose the ConnectionError, the one thing that said why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors

#: The longest error message stored; longer ones are cut, saying so.
MAX_MESSAGE = 8_000
#: How many errors of a chain are kept, and the longest message of each: a
#: cause says why, and must not make every stored failure several times larger.
MAX_CAUSES = 5
MAX_CAUSE_MESSAGE = 1_000

#: The library's errors that carry a failure from elsewhere, with its causes.
_CARRIERS = (errors.FatalError, errors.MaxedError, errors.WorkflowFailedError)


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


def error_message(exc: BaseException, limit: int = MAX_MESSAGE) -> str:
    """The storable message of ``exc`` (its ``.message`` if it has one, else ``str``)."""
    try:
        raw = getattr(exc, "message", None)
        text = raw if isinstance(raw, str) else str(exc)
    except Exception as broken:  # a __str__ that raises must not hide the error
        text = f"<{type(exc).__name__} whose message could not be read: {type(broken).__name__}>"
    return safe_text(text, limit)


def error_type_of(exc: BaseException) -> str:
    """The class name a stored error carries (``.error_type`` when it wraps another)."""
    named = getattr(exc, "error_type", None)
    return safe_text(named if isinstance(named, str) and named else type(exc).__name__, 200)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for log lines, safe whatever ``exc`` is."""
    return f"{error_type_of(exc)}: {error_message(exc)}"


def _carried(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """The causes a library error brought with it (from a stored record), if any."""
    if not isinstance(exc, _CARRIERS):
        return ()
    return tuple((safe_text(kind, 200), safe_text(text, MAX_CAUSE_MESSAGE))
                 for kind, text in exc.causes)


def _behind(exc: BaseException) -> BaseException | None:
    """The next error of the chain, as Python's traceback would show it."""
    if exc.__cause__ is not None:
        return exc.__cause__
    # ``raise ... from None`` sets __suppress_context__: the author hid it on purpose.
    return None if exc.__suppress_context__ else exc.__context__


#: The workflow layer's control-flow exceptions (named here: this module may
#: not import that layer). A failure in cleanup code while one unwinds has it
#: as its context, which says nothing about the failure.
_CONTROL_FLOW = frozenset({"Suspension", "ContinueAsNew"})


def error_causes(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """The chain of errors behind ``exc`` as (type, message) pairs, outermost first.

    A library error that was rebuilt from a record has no Python chain left,
    but may carry the stored one (``.causes``): that is the chain then. At
    most ``MAX_CAUSES`` entries; a chain that loops (an error set as the
    cause of its own cause) is followed once.
    """
    carried = _carried(exc)
    if carried:
        return carried[:MAX_CAUSES]
    found: list[tuple[str, str]] = []
    seen = {id(exc)}
    link = _behind(exc)
    while link is not None and id(link) not in seen and len(found) < MAX_CAUSES:
        seen.add(id(link))
        if type(link).__name__ in _CONTROL_FLOW:  # how the replay engine unwinds: not a cause
            link = _behind(link)
            continue
        found.append((error_type_of(link), error_message(link, MAX_CAUSE_MESSAGE)))
        # A caught library error brings the chain it was stored with.
        found.extend(_carried(link))
        link = _behind(link)
    return tuple(found[:MAX_CAUSES])


# --- records that cross layers ----------------------------------------------------------


@dataclass(frozen=True)
class StepRecord:
    """One recorded durable call: its kind, name, and result or error (JSON)."""

    kind: str
    name: str
    result: Any
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Pending:
    """One durable call the worker must perform before the run can go on.

    ``kind`` is ``activity``, ``sleep``, ``wait`` or ``child``; ``key`` is the
    call's position; ``payload`` what the worker needs to perform it.
    """

    kind: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)
    #: For an activity, the function the proxy meant (never stored).
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ErrorRecord:
    """The one durable form of an error: a step's, an activity's, a workflow's.

    ``type`` names the library exception it comes back as (``FatalError``,
    ``MaxedError``, ``WorkflowFailedError``, ...); ``error_type`` is the class
    name of the original error; ``code`` is set for workflow failures;
    ``causes`` is the chain of errors behind it, (type, message) pairs,
    outermost first.
    """

    type: str
    error_type: str
    message: str
    code: int | None = None
    workflow_id: str | None = None
    causes: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "error_type": self.error_type,
                                "message": self.message}
        if self.code is not None:
            data["code"] = self.code
        if self.workflow_id is not None:
            data["workflow_id"] = self.workflow_id
        # Only when there are causes: records stored before causes existed,
        # and golden histories, keep exactly the JSON they had.
        if self.causes:
            data["causes"] = [{"error_type": kind, "message": text}
                              for kind, text in self.causes]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorRecord:
        code = data.get("code")
        workflow_id = data.get("workflow_id")
        kind = str(data.get("type") or "FatalError")
        return cls(type=kind, error_type=str(data.get("error_type") or kind),
                   message=str(data.get("message", "")),
                   code=None if code is None else int(code),
                   workflow_id=None if workflow_id is None else str(workflow_id),
                   causes=_causes_from_json(data.get("causes")))

    def to_exception(self) -> BaseException:
        """The exception this record raises again (on replay, or in a client)."""
        build = _REBUILDERS.get(self.type, _as_fatal)
        return build(self)


def _causes_from_json(raw: Any) -> tuple[tuple[str, str], ...]:
    """Stored causes; an entry that is not ``{error_type, message}`` is skipped,
    so that a damaged record still raises its error."""
    if not isinstance(raw, list):
        return ()
    return tuple((item["error_type"], item["message"]) for item in raw
                 if isinstance(item, dict) and isinstance(item.get("error_type"), str)
                 and isinstance(item.get("message"), str))


def to_record(exc: BaseException, *, as_type: str | None = None,
              code: int | None = None) -> ErrorRecord:
    """The durable form of ``exc``; ``as_type`` overrides the class it comes back as."""
    own_code = getattr(exc, "code", None)
    workflow_id = getattr(exc, "workflow_id", None)
    return ErrorRecord(
        type=as_type or type(exc).__name__,
        error_type=error_type_of(exc),
        message=error_message(exc),
        code=code if code is not None else (own_code if isinstance(own_code, int) else None),
        workflow_id=workflow_id if isinstance(workflow_id, str) else None,
        causes=error_causes(exc),
    )


def from_record(data: dict[str, Any]) -> BaseException:
    """The exception a stored error dict stands for."""
    return ErrorRecord.from_json(data).to_exception()


def workflow_failure(data: dict[str, Any], workflow_id: str | None) -> errors.WorkflowFailedError:
    """What ``result()`` raises for a workflow that stored this error."""
    record = ErrorRecord.from_json(data)
    code = record.code if record.code is not None else errors.CODE_MAXED
    cls = (errors.WorkflowInterruptedError if code == errors.CODE_INTERRUPTED
           else errors.WorkflowFailedError)
    return cls(record.message, code=code, error_type=record.error_type, workflow_id=workflow_id,
               causes=record.causes)


def interrupted_error(reason: str | None) -> dict[str, Any]:
    """The stored error of an interrupted workflow (code 410)."""
    return ErrorRecord("WorkflowInterruptedError", "WorkflowInterruptedError",
                       safe_text(reason or "interrupted"), code=errors.CODE_INTERRUPTED).to_json()


def _as_fatal(record: ErrorRecord) -> BaseException:
    return errors.FatalError(record.message, record.error_type, causes=record.causes)


def _as_maxed(record: ErrorRecord) -> BaseException:
    return errors.MaxedError(record.message, record.error_type, causes=record.causes)


def _as_failure(record: ErrorRecord) -> BaseException:
    return workflow_failure(record.to_json(), None)


def _as_cancelled(record: ErrorRecord) -> BaseException:
    # The stored message is the interrupt's reason (or the default text).
    return errors.CancelledError(record.message, reason=record.message)


def _with_message(cls: Callable[[str], BaseException]) -> Callable[[ErrorRecord], BaseException]:
    return lambda record: cls(record.message)


def _with_workflow_id(
        cls: Callable[[str], BaseException]) -> Callable[[ErrorRecord], BaseException]:
    return lambda record: cls(record.workflow_id or "")


#: How each recorded type comes back; anything else comes back as FatalError.
#: CancelledError comes back as itself, a BaseException that a workflow's
#: ``except Exception`` lets through.
_REBUILDERS: dict[str, Callable[[ErrorRecord], BaseException]] = {
    "FatalError": _as_fatal,
    "MaxedError": _as_maxed,
    "WorkflowFailedError": _as_failure,
    "WorkflowInterruptedError": _as_failure,
    "DuplicateWorkflowError": _with_workflow_id(errors.DuplicateWorkflowError),
    "WorkflowNotFoundError": _with_workflow_id(errors.WorkflowNotFoundError),
    "InvalidPathError": _with_message(errors.InvalidPathError),
    "EntityTypeError": _with_message(errors.EntityTypeError),
    "CancelledError": _as_cancelled,
}
