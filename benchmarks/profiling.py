"""Sampling a worker process with py-spy, and reading the samples back as hotspots.

py-spy attaches from outside (``py-spy record --pid``), so the worker runs
unmodified. Its "raw" output is one line per distinct stack,
``frame;frame;...;leaf COUNT``, each frame ``function (file.py:line)``. It
samples only the thread holding the GIL (``--gil``): a worker that waits on
PostgreSQL does so without the GIL, so the percentages are shares of the
worker's Python CPU time, not of its wall time.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME_LINE = re.compile(r":\d+\)$")


def py_spy_binary() -> str | None:
    """py-spy on PATH, or beside this interpreter (a virtualenv's bin/)."""
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else None


class PySpy:
    """``PySpy(pid, path).start()`` ... ``.stop()``: raw samples written to ``path``."""

    def __init__(self, pid: int, path: Path, rate: int = 250) -> None:
        self.pid = pid
        self.path = path
        self.rate = rate
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PySpy:
        binary = py_spy_binary()
        if binary is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self._process = subprocess.Popen(
            [binary, "record", "--pid", str(self.pid), "--format", "raw",
             "--rate", str(self.rate), "--output", str(self.path), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        """Stop sampling; py-spy writes its file when interrupted."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._process = None


@dataclass(frozen=True)
class Hotspot:
    function: str       # "name (file.py)"
    self_pct: float     # share of samples with this function at the top of the stack
    total_pct: float    # share of samples with this function anywhere on the stack


def read_samples(path: Path) -> Counter[tuple[str, ...]]:
    """Stacks (outermost first, line numbers dropped) and how often each was seen."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(_FRAME_LINE.sub(")", frame) for frame in stack.split(";"))
        stacks[frames] += int(count)
    return stacks


def hotspots(stacks: Counter[tuple[str, ...]], top: int = 15,
             by: str = "self") -> list[Hotspot]:
    """The functions with the most samples, ``by`` self time or by total time.

    By total, frames every sample shares (thread bootstrap, the worker loop)
    are left out: they say nothing about where the time goes.
    """
    total = sum(stacks.values())
    if total == 0:
        return []
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    for frames, count in stacks.items():
        self_counts[frames[-1]] += count
        for function in set(frames):
            total_counts[function] += count
    ranking = self_counts if by == "self" else Counter(
        {f: c for f, c in total_counts.items() if c < 0.95 * total})
    return [Hotspot(f, 100.0 * self_counts[f] / total, 100.0 * total_counts[f] / total)
            for f, _ in ranking.most_common(top)]


def inclusive(stacks: Counter[tuple[str, ...]], functions: list[str]) -> list[Hotspot]:
    """Self and total shares of the named functions (matched by substring)."""
    total = sum(stacks.values()) or 1
    found: list[Hotspot] = []
    for wanted in functions:
        self_count = sum(c for frames, c in stacks.items() if wanted in frames[-1])
        total_count = sum(c for frames, c in stacks.items() if any(wanted in f for f in frames))
        found.append(Hotspot(wanted, 100.0 * self_count / total, 100.0 * total_count / total))
    return found


def render(spots: list[Hotspot], title: str) -> str:
    lines = [title, f"{'self %':>7} {'total %':>8}  function"]
    lines += [f"{s.self_pct:7.1f} {s.total_pct:8.1f}  {s.function}" for s in spots]
    return "\n".join(lines)
