"""``mf.queues``: flow control per task queue (API.md §12).

    mf.queues.configure("emails", concurrency=5, rate_limit="100/minute")
    mf.queues.get("emails")   # {"concurrency", "rate_limit", "running", "ready"}

The limits hold across every worker process: they are checked by the claim
query under the queue's row lock (``Worker._claim_limited``), never counted
in Python. They apply to activities, the work that touches the outside world;
workflow activations, timers and signals of the queue are never held back.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from .durations import to_seconds
from .names import check_name
from .store.store import Store

#: Period words of a rate limit, in seconds.
_PERIODS = {"second": 1.0, "sec": 1.0, "s": 1.0, "minute": 60.0, "min": 60.0, "m": 60.0,
            "hour": 3600.0, "h": 3600.0, "day": 86400.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per\s+)\s*(.+?)\s*$")


class QueuesHost(Protocol):
    @property
    def store(self) -> Store: ...


def parse_rate(rate: str | tuple[int, Any] | None) -> tuple[int, float] | None:
    """``"100/minute"``, ``"5 per second"``, ``"10/30s"`` or ``(count, duration)``
    as (count, period in seconds); None stays None. ValueError otherwise."""
    if rate is None:
        return None
    if isinstance(rate, tuple):
        count, period = rate
        seconds = to_seconds(period)
    elif isinstance(rate, str):
        match = _RATE.match(rate)
        if match is None:
            raise ValueError(f"cannot read {rate!r} as a rate limit (try '100/minute')")
        count = int(match.group(1))
        seconds = _period(match.group(2).lower())
    else:
        raise TypeError("rate_limit must be text such as '100/minute' or (count, duration)")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("a rate limit allows at least 1 start per period")
    if seconds <= 0:
        raise ValueError("a rate limit's period must be longer than zero")
    return count, float(seconds)


def _period(unit: str) -> float:
    """A rate's period: a word ("minute", "hours") or a duration ("30s")."""
    for word in (unit, unit.removesuffix("s")):
        if word in _PERIODS:
            return _PERIODS[word]
    return to_seconds(unit)


def format_rate(count: int | None, period: float | None) -> str | None:
    if count is None or period is None:
        return None
    for word, seconds in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0),
                          ("second", 1.0)):
        if period == seconds:
            return f"{count}/{word}"
    return f"{count}/{period:g}s"


class Queues:
    """Configure and inspect the flow control of task queues."""

    def __init__(self, host: QueuesHost) -> None:
        self._host = host

    def configure(self, name: str, concurrency: int | None = None,
                  rate_limit: str | tuple[int, Any] | None = None) -> dict[str, Any]:
        """Set (or, with None, lift) a queue's limits; its state after.

        ``concurrency``: at most that many of its activities run at once across
        every worker process. ``rate_limit``: at most that many activity starts
        per period (a token bucket that starts full).
        """
        check_name(name, "task queue")
        if concurrency is not None and (isinstance(concurrency, bool)
                                        or not isinstance(concurrency, int)
                                        or concurrency < 1):
            raise ValueError("concurrency must be a whole number of at least 1, or None")
        rate = parse_rate(rate_limit)
        self._host.store.run(lambda tx: tx.configure_queue(
            name, concurrency, None if rate is None else rate[0],
            None if rate is None else rate[1]))
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        """``{"concurrency", "rate_limit", "running", "ready"}``: its limits (None:
        none), activities running now, and tasks due and waiting for a worker."""
        check_name(name, "task queue")
        row = self._host.store.fetch_dicts("queue_state", {"name": name})[0]
        return {"concurrency": row["concurrency"],
                "rate_limit": format_rate(row["rate_count"], row["rate_period"]),
                "running": int(row["running"]), "ready": int(row["ready"])}

    def list(self) -> list[dict[str, Any]]:
        """Every queue with flow control configured, by name."""
        return [{"name": r["name"], "concurrency": r["concurrency"],
                 "rate_limit": format_rate(r["rate_count"], r["rate_period"])}
                for r in self._host.store.fetch_dicts("list_queues", {})]
