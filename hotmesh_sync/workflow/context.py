"""The state of one activation of a run, and the session it records through.

A run (a coordinator or a hook) is re-executed from the top on each
activation. Each durable call takes the next position (``step key``) in its
scope: ``"0"``, ``"1"``, ... at the top level and ``"4.1.0"`` for the first
call of branch 1 of the ``workflow.all`` at position 4. A call whose key is in
the loaded history replays its recorded result.
"""

from __future__ import annotations

import contextvars
import hashlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from .. import errors
from ..records import StepRecord
from .suspension import Pending, Suspension

#: Signal data that tells an exec_hook its hook failed instead of signalling.
HOOK_ERROR_KEY = "$hotmesh_hook_error"

#: The durable calls a run waits on: where a requested cancellation is raised.
WAITING_KINDS = frozenset({"activity", "sleep", "wait", "wait_any", "child_result"})
#: The step kind of a ``workflow.patched`` marker.
PATCH_KIND = "patch"


class StepSession(Protocol):
    """What the replay engine needs from storage during one activation.

    Every method runs inside the activation's transaction, so whatever it
    writes commits together with the step that records it.
    """

    def record(self, key: str, kind: str, name: str, result: Any,
               error: dict[str, Any] | None) -> None: ...

    def entity_command(self, command: str, path: list[str] | None,
                       args: dict[str, Any]) -> Any: ...

    def take_signal(self, key: str, signal_ids: list[str]) -> tuple[str, Any] | None: ...

    def has_pending(self, key: str) -> bool: ...

    def cancel_delivered(self) -> None: ...

    def send_signal(self, job_id: str, signal_id: str, data: Any) -> int: ...

    def start_child(self, spec: dict[str, Any]) -> str: ...

    def start_hook(self, spec: dict[str, Any]) -> None: ...

    def interrupt(self, job_id: str, reason: str | None, force: bool) -> None: ...

    def now_iso(self) -> str: ...


@dataclass
class RunInfo:
    """What ``workflow.info()`` returns."""

    workflow_id: str
    workflow_name: str
    task_queue: str
    entity: str | None
    is_replaying: bool
    attempt: int
    hook: bool
    run_id: str = ""
    #: Which run of this workflow id (1, then one more per continue_as_new or restart).
    run_number: int = 1


@dataclass(frozen=True)
class ActivationLimits:
    """How much one activation may do before it fails (API.md §10)."""

    max_steps: int = 10_000
    max_seconds: float = 60.0


@dataclass
class RunContext:
    """One activation: identity, loaded history, and where the code is now.

    ``suspension`` is set once a durable call has suspended this activation:
    from then on every durable call re-raises it (cleanup code in ``finally``
    must not schedule or record anything out of order), and a run that ends
    any other way has swallowed it. ``poisoned`` is set when work done inside
    the activation's transaction could not be recorded with its step: the
    transaction must then roll back whatever the workflow code does next.
    """

    job_id: str
    run_id: str
    workflow_name: str
    task_queue: str
    entity_label: str | None
    attempt: int
    history: dict[str, StepRecord]
    session: StepSession
    scope: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    seen_recorded: int = 0
    broken: errors.HotMeshError | None = None
    limits: ActivationLimits = field(default_factory=ActivationLimits)
    suspension: Suspension | None = None
    poisoned: BaseException | None = None
    new_calls: int = 0
    started: float = field(default_factory=time.monotonic)
    #: Which run of the workflow id this is (continue_as_new starts the next).
    run_number: int = 1
    #: A requested cancellation not raised yet: the stored error it ends with.
    cancel: dict[str, Any] | None = None

    @property
    def is_hook(self) -> bool:
        return self.run_id != ""

    def next_key(self) -> str:
        if self.suspension is not None:
            self._after_suspension()
        n = self.counters.get(self.scope, 0)
        self.counters[self.scope] = n + 1
        return f"{self.scope}.{n}" if self.scope else str(n)

    def step(self, kind: str, name: str) -> tuple[str, StepRecord | None]:
        """Take the next position; return it with its record, if any.

        A record of another kind or name at this position means the code has
        changed under a running workflow: NonDeterminismError.
        """
        key = self.next_key()
        record = self.history.get(key)
        if record is not None:
            self.seen_recorded += 1
            if record.kind != kind or record.name != name:
                self.fail(errors.NonDeterminismError(self._mismatch(key, record, kind, name)))
        else:
            self._count_new_call(key)
            if self.cancel is not None and kind in WAITING_KINDS:
                self._raise_cancel(key, kind, name)
        return key, record

    def _mismatch(self, key: str, record: StepRecord, kind: str, name: str) -> str:
        text = (f"position {key} of {self.workflow_name!r} (workflow {self.job_id!r}) "
                f"recorded {record.kind} {record.name!r} but replay called {kind} {name!r}")
        if record.kind == PATCH_KIND:
            text += (f": this run was recorded by code that called workflow.patched("
                     f"{record.name!r}) here; keep workflow.deprecate_patch({record.name!r}) "
                     "in its place until no run recorded with that patch remains")
        return text

    def _raise_cancel(self, key: str, kind: str, name: str) -> NoReturn:
        """Raise the requested cancellation at this waiting call, recorded
        there so every replay raises it at the same place."""
        assert self.cancel is not None
        message = str(self.cancel.get("message") or "cancelled")
        exc = errors.CancelledError(message, reason=message)
        error = {"type": "CancelledError", "error_type": "CancelledError", "message": message}
        self.session.record(key, kind, name, None, error)
        self.remember(key, StepRecord(kind, name, None, error))
        self.session.cancel_delivered()
        self.cancel = None
        raise exc

    def peek_key(self) -> str:
        """The position the next durable call will take, without taking it."""
        if self.suspension is not None:
            self._after_suspension()
        n = self.counters.get(self.scope, 0)
        return f"{self.scope}.{n}" if self.scope else str(n)

    def take_key(self, key: str) -> None:
        """Take ``key`` (just returned by ``peek_key``) for a recorded marker."""
        self.counters[self.scope] = self.counters.get(self.scope, 0) + 1
        if key in self.history:
            self.seen_recorded += 1

    def suspend(self, pending: list[Pending]) -> NoReturn:
        """Suspend this activation on ``pending`` calls."""
        self.suspension = Suspension(pending)
        raise self.suspension

    def _after_suspension(self) -> NoReturn:
        """A durable call made after the activation suspended.

        In cleanup code (a ``finally``, an ``except BaseException``, a ``with``
        exit) the suspension is still being handled: raise it again, so
        nothing runs out of order. Anywhere else the code caught it and went
        on as if the call had returned: that can never replay correctly.
        """
        assert self.suspension is not None
        if _handling(self.suspension):
            raise self.suspension
        self.fail(errors.NonDeterminismError(self.swallowed_message()))

    def swallowed_message(self) -> str:
        return (f"{self.workflow_name!r} (workflow {self.job_id!r}) caught the suspension of a "
                "durable call (an 'except BaseException' or a 'finally' that returns) and went "
                "on: durable calls must be free to suspend the run")

    def fail(self, exc: errors.HotMeshError) -> NoReturn:
        """Raise ``exc`` and keep it: catching it cannot save this activation."""
        self.broken = exc
        raise exc

    def _count_new_call(self, key: str) -> None:
        self.new_calls += 1
        if self.new_calls > self.limits.max_steps:
            self.fail(errors.ActivationLimitError(
                f"one activation of {self.workflow_name!r} (workflow {self.job_id!r}) made more "
                f"than {self.limits.max_steps} new durable calls (HOTMESH_MAX_ACTIVATION_STEPS);"
                f" the last at position {key}"))
        if time.monotonic() - self.started > self.limits.max_seconds:
            self.fail(errors.ActivationLimitError(
                f"one activation of {self.workflow_name!r} (workflow {self.job_id!r}) ran longer "
                f"than {self.limits.max_seconds:g}s (HOTMESH_MAX_ACTIVATION_SECONDS)"))

    def remember(self, key: str, record: StepRecord) -> None:
        """Add a step recorded during this activation to the history."""
        self.history[key] = record
        self.seen_recorded += 1

    @contextmanager
    def branch(self, scope: str) -> Iterator[None]:
        saved = self.scope
        self.scope = scope
        try:
            yield
        finally:
            self.scope = saved

    def seed(self, purpose: str) -> bytes:
        """Deterministic bytes for the next random/uuid call of this run."""
        n = self.counters.get("#" + purpose, 0)
        self.counters["#" + purpose] = n + 1
        text = f"{self.job_id}\x00{self.run_id}\x00{self.attempt}\x00{purpose}\x00{n}"
        if self.run_number > 1:  # a later run of the id must not repeat the first's values
            text += f"\x00run{self.run_number}"
        return hashlib.sha256(text.encode()).digest()

    def info(self) -> RunInfo:
        return RunInfo(
            workflow_id=self.job_id,
            workflow_name=self.workflow_name,
            task_queue=self.task_queue,
            entity=self.entity_label,
            is_replaying=self.seen_recorded < len(self.history),
            attempt=self.attempt,
            hook=self.is_hook,
            run_id=self.run_id,
            run_number=self.run_number,
        )


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "hotmesh_sync_run", default=None
)


def current() -> RunContext:
    """The running activation, or NotInWorkflowError."""
    ctx = _current.get()
    if ctx is None:
        raise errors.NotInWorkflowError(
            "this function works only inside a workflow or hook run by a worker"
        )
    return ctx


@contextmanager
def activated(ctx: RunContext) -> Iterator[RunContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def _handling(suspension: Suspension) -> bool:
    """True while ``suspension`` is the exception being handled (or its cause)."""
    exc = sys.exc_info()[1]
    seen = 0
    while exc is not None and seen < 100:
        if exc is suspension:
            return True
        exc, seen = exc.__context__, seen + 1
    return False
