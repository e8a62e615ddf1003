"""What a durable call raises when its result is not recorded yet."""

from __future__ import annotations

from ..records import Pending

__all__ = ["ContinueAsNew", "Pending", "Suspension"]


class Suspension(BaseException):  # noqa: N818 - not an error: a control-flow signal
    """Unwinds a workflow function to the worker at a call with no recorded result.

    Derives from BaseException so that ``except Exception`` in workflow code
    cannot swallow it.
    """

    def __init__(self, pending: list[Pending]) -> None:
        super().__init__(f"suspended on {len(pending)} durable call(s)")
        self.pending = pending


class ContinueAsNew(BaseException):  # noqa: N818 - not an error: a control-flow signal
    """Ends the current run; the worker begins the next run of the same
    workflow id with ``args`` (``workflow.continue_as_new``).

    A BaseException for the same reason as ``Suspension``.
    """

    def __init__(self, args: list[object]) -> None:
        super().__init__("continue as new")
        self.args_for_next = args
