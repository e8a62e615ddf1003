"""The whole exception tree of hotmesh_sync.

::

    HotMeshError
    ├── ConfigurationError        bad app id, no database to be had, bad options
    ├── DuplicateWorkflowError    a workflow id that is already taken
    ├── WorkflowNotFoundError     an id no workflow has (or had, before a purge)
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

The exception that suspends a workflow (``hotmesh_sync.workflow.Suspension``)
derives from ``BaseException`` on purpose and is not part of this tree: a
coordinator's ``except Exception`` must never swallow it.
"""

from __future__ import annotations

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


class _RemoteError(HotMeshError):
    """An error that happened elsewhere, carried by class name and message."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or type(self).__name__


class FatalError(_RemoteError):
    """Raise it in an activity to fail without retries; also what a workflow
    sees when an activity failed with a non-retryable error."""


class MaxedError(_RemoteError):
    """What a workflow sees when an activity failed on every allowed attempt."""


class WorkflowFailedError(HotMeshError):
    """A workflow ended in failure; ``code`` says how (598, 597, 596, 410)."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        error_type: str,
        workflow_id: str | None = None,
    ) -> None:
        super().__init__(f"[{code}] {error_type}: {message}")
        self.message = message
        self.code = code
        self.error_type = error_type
        self.workflow_id = workflow_id


class WorkflowInterruptedError(WorkflowFailedError):
    """A workflow was interrupted (cancelled); its code is 410."""
