"""What a benchmark reports: named figures with units, notes, and how it ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Metric:
    """One figure: ``key`` is stable (JSON, targets), ``label`` is for people."""

    key: str
    label: str
    value: float | None
    unit: str = ""


@dataclass
class Outcome:
    """The figures of one benchmark, or why it has none."""

    name: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0
    #: What one unit of work is, and how many the worker did (for per-unit profiles).
    unit: tuple[str, int] | None = None

    def add(self, key: str, label: str, value: float | None, unit: str = "") -> float | None:
        """Record a figure (None: not measurable this time); return its value."""
        self.metrics.append(Metric(key, label, value, unit))
        return value

    def value(self, key: str) -> float | None:
        for metric in self.metrics:
            if metric.key == key:
                return metric.value
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def format_value(value: float | None) -> str:
    """A figure with as many digits as it deserves."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"
