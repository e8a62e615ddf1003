"""Retry policies: durable data that says how often and how slowly to retry."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .durations import Duration, to_seconds

#: Failures no policy retries: the code or the store says "stop", not "try again".
NEVER_RETRIED = (errors.FatalError, errors.NonDeterminismError, errors.ActivationLimitError,
                 errors.StoreError)


@dataclass(frozen=True)
class RetryPolicy:
    """How an activity (or a workflow) is retried after an error.

    ``maximum_attempts`` counts the first try. Waits grow from
    ``initial_interval`` by ``backoff_coefficient`` up to ``maximum_interval``.
    Exceptions of a ``non_retryable`` type fail at once.
    """

    maximum_attempts: int = 5
    backoff_coefficient: float = 2.0
    initial_interval: Duration = "1s"
    maximum_interval: Duration = "120s"
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.maximum_attempts < 1:
            raise ValueError("maximum_attempts must be at least 1")
        if not 1 <= self.backoff_coefficient < math.inf:
            raise ValueError("backoff_coefficient must be a finite number, at least 1")
        to_seconds(self.initial_interval)
        to_seconds(self.maximum_interval)
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return _backoff(to_seconds(self.initial_interval), self.backoff_coefficient,
                        to_seconds(self.maximum_interval), attempt)

    def decide(self, exc: BaseException, attempt: int) -> Decision:
        """After failed attempt ``attempt`` with ``exc``: retry after how long, or give up."""
        return decide(self.to_json(), exc, attempt)

    def to_json(self) -> dict[str, Any]:
        """The durable form (exception types are kept by name)."""
        return {
            "maximum_attempts": self.maximum_attempts,
            "backoff_coefficient": self.backoff_coefficient,
            "initial_interval": to_seconds(self.initial_interval),
            "maximum_interval": to_seconds(self.maximum_interval),
            "non_retryable": [t.__name__ for t in self.non_retryable],
        }


@dataclass(frozen=True)
class Decision:
    """What a policy decides after a failed attempt: retry after ``delay``
    seconds, or give up (``delay`` None) because the error is ``non_retryable``
    or the attempts are ``exhausted``."""

    delay: float | None
    reason: str | None = None

    @property
    def gives_up(self) -> bool:
        return self.delay is None


def decide(policy: Mapping[str, Any], exc: BaseException, attempt: int) -> Decision:
    """The one retry decision, for a policy in its durable form (``to_json``):
    activities and workflows both go through it."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, NEVER_RETRIED) or names & set(policy.get("non_retryable", [])):
        return Decision(None, "non_retryable")
    if attempt >= int(policy["maximum_attempts"]):
        return Decision(None, "exhausted")
    return Decision(delay_from_json(policy, attempt))


def delay_from_json(policy: Mapping[str, Any], attempt: int) -> float:
    """``delay_after`` for a policy in its durable form."""
    return _backoff(float(policy["initial_interval"]), float(policy["backoff_coefficient"]),
                    float(policy["maximum_interval"]), attempt)


def _backoff(first: float, coefficient: float, maximum: float, attempt: int) -> float:
    # Many attempts make the growth too large for a float: then it is the maximum.
    try:
        delay = first * coefficient ** (attempt - 1)
    except OverflowError:
        return maximum
    return min(delay, maximum)
