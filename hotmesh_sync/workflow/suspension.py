"""What a durable call raises when its result is not recorded yet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pending:
    """One durable call the worker must perform before the run can go on.

    ``kind`` is ``activity``, ``sleep``, ``wait`` or ``child``; ``key`` is the
    call's position; ``payload`` what the worker needs to perform it.
    """

    kind: str
    key: str
    payload: dict[str, Any] = field(default_factory=dict)


class Suspension(BaseException):  # noqa: N818 - not an error: a control-flow signal
    """Unwinds a workflow function to the worker at a call with no recorded result.

    Derives from BaseException so that ``except Exception`` in workflow code
    cannot swallow it.
    """

    def __init__(self, pending: list[Pending]) -> None:
        super().__init__(f"suspended on {len(pending)} durable call(s)")
        self.pending = pending
