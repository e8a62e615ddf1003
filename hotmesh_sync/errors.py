"""The whole exception tree of hotmesh_sync.

::

    HotMeshError
    ├── ConfigurationError        bad app id, no database to be had, bad options
    ├── DuplicateWorkflowError    a workflow id that is already taken
    ├── WorkflowNotFoundError     an id no workflow has (or had, before a purge)
    ├── DuplicateScheduleError    a schedule id that is already taken
    ├── ScheduleNotFoundError     an id no schedule has
    ├── NotInWorkflowError        a workflow-only call made outside a run
    ├── NonDeterminismError       replayed code no longer matches its history
    ├── ActivationLimitError      one activation made too many calls or ran too long
    ├── StoreError                a task failed inside PostgreSQL too many times
    ├── InvalidPathError          an empty or malformed entity path
    ├── EntityTypeError           an entity command on a value of the wrong type
    ├── PayloadTooLargeError      a JSON value above the configured maximum
    ├── FatalError                an activity failure that is not retried
    ├── MaxedError                an activity whose retries ran out
    └── WorkflowFailedError       a workflow that ended in failure (has .code)
        └── WorkflowInterruptedError

    BaseException
    ├── Suspension                a durable call with no recorded result yet
    └── CancelledError            the workflow was interrupted (cancelled)

Two exceptions derive from ``BaseException`` on purpose and are not part of
the ``HotMeshError`` tree: the one that suspends a workflow
(``hotmesh_sync.workflow.Suspension``) and ``CancelledError``. Like
asyncio's, a coordinator's ``except Exception`` must never swallow either.

The library's errors that carry a failure from elsewhere (``FatalError``,
``MaxedError``, ``WorkflowFailedError``) keep the chain of errors behind it
(``__cause__``, or the error being handled) as ``.causes``: (error type,
message) pairs, outermost first. The original exception objects are gone
once a failure has been stored, so type and message are what survives.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Workflow failure codes, as MemFlow numbers them.
CODE_FATAL = 598
CODE_MAXED = 597
CODE_TIMEOUT = 596
CODE_INTERRUPTED = 410


class HotMeshError(Exception):
    """Root of every error this library raises on purpose."""


class ConfigurationError(HotMeshError):
    """The library was set up with something it cannot use."""


class DuplicateWorkflowError(HotMeshError):
    """A workflow with this id already exists."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"a workflow with id {workflow_id!r} already exists")
        self.workflow_id = workflow_id


class WorkflowNotFoundError(HotMeshError):
    """No workflow has this id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow with id {workflow_id!r}")
        self.workflow_id = workflow_id


class DuplicateScheduleError(HotMeshError):
    """A schedule with this id already exists (``create(..., if_exists="error")``)."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"a schedule with id {schedule_id!r} already exists")
        self.schedule_id = schedule_id


class ScheduleNotFoundError(HotMeshError):
    """No schedule has this id."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with id {schedule_id!r}")
        self.schedule_id = schedule_id


class NotInWorkflowError(HotMeshError):
    """A function meant for workflow code was called outside a workflow run."""


class NonDeterminismError(HotMeshError):
    """Replayed code made a different durable call than the one recorded."""


class ActivationLimitError(HotMeshError):
    """One activation of a workflow made more new durable calls, or ran longer,
    than ``HOTMESH_MAX_ACTIVATION_STEPS`` / ``HOTMESH_MAX_ACTIVATION_SECONDS``
    allow. The workflow fails with code 598."""


class StoreError(HotMeshError):
    """Processing one of a workflow's tasks failed inside PostgreSQL more than
    ``HOTMESH_MAX_TASK_FAILURES`` times; the workflow fails with code 598."""


class InvalidPathError(HotMeshError, ValueError):
    """An entity path is empty or malformed."""


class EntityTypeError(HotMeshError, TypeError):
    """An entity command met a value of the wrong type at its path."""


class PayloadTooLargeError(HotMeshError, ValueError):
    """A JSON value is larger than the configured maximum."""


def _cause_pairs(causes: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``causes`` as a tuple of (type, message) string pairs, whatever sequence it came as."""
    return tuple((str(error_type), str(message)) for error_type, message in causes)


class _RemoteError(HotMeshError):
    """An error that happened elsewhere, carried by class name and message,
    with the chain of errors behind it (``causes``, outermost first)."""

    def __init__(self, message: str, error_type: str | None = None, *,
                 causes: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or type(self).__name__
        self.causes = _cause_pairs(causes)


class FatalError(_RemoteError):
    """Raise it in an activity to fail without retries; also what a workflow
    sees when an activity failed with a non-retryable error."""


class MaxedError(_RemoteError):
    """What a workflow sees when an activity failed on every allowed attempt."""


class WorkflowFailedError(HotMeshError):
    """A workflow ended in failure; ``code`` says how (598, 597, 596, 410).

    ``str()`` shows the errors behind the failure too (``... <- caused by
    ConnectionError: card service down``): a client often sees nothing else
    of what went wrong inside the workflow. ``message`` stays the failure's
    own message.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int,
        error_type: str,
        workflow_id: str | None = None,
        causes: Sequence[tuple[str, str]] = (),
    ) -> None:
        pairs = _cause_pairs(causes)
        chain = "".join(f" <- caused by {kind}: {text}" for kind, text in pairs)
        super().__init__(f"[{code}] {error_type}: {message}{chain}")
        self.message = message
        self.code = code
        self.error_type = error_type
        self.workflow_id = workflow_id
        self.causes = pairs


class WorkflowInterruptedError(WorkflowFailedError):
    """A workflow was interrupted (cancelled); its code is 410."""


class CancelledError(BaseException):
    """The workflow was interrupted (cancelled).

    Raised inside a workflow's coordinator at the durable call it waits on
    when the workflow is interrupted: cleanup code may then still make
    durable calls; letting the error out ends the workflow interrupted (code
    410), returning normally completes it. Also raised by
    ``activity.heartbeat()`` in an activity once its workflow was interrupted.

    Derives from ``BaseException``, as asyncio's does, so that a workflow's
    ``except Exception`` does not swallow the cancellation by accident.
    ``reason`` is the reason given to the interrupt, when there was one.
    """

    def __init__(self, message: str = "cancelled", reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
