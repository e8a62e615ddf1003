"""Each worker's own table of activities: no process-wide registry.

An activity is found by where it is defined (its ``ref``, ``module:qualname``,
which the proxy puts in the task), so two modules' same-named activities
never collide. The worker knows an activity because it was given it
(``activities=[...]``), because one of its workflows suspended on it (the
proxy hands the function up with the pending call), or because its module is
loaded in this process.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..workflow.registry import ref_of

Fn = Callable[..., Any]


class ActivityTable:
    """The activities one worker can run."""

    def __init__(self, given: Mapping[str, Fn]) -> None:
        self._lock = threading.Lock()
        self._by_name = dict(given)
        self._by_ref = {ref_of(fn): fn for fn in given.values()}

    def learn(self, ref: str, fn: Fn) -> None:
        """Remember an activity a workflow of this worker suspended on."""
        with self._lock:
            self._by_ref.setdefault(ref, fn)

    def find(self, name: str, ref: str | None) -> Fn | None:
        """The activity the proxy meant (by ``ref``), else the one given as ``name``."""
        with self._lock:
            found = self._by_ref.get(ref) if ref else None
        if found is None and ref:
            found = _loaded(ref)
            if found is not None:
                self.learn(ref, found)
        return found or self._by_name.get(name)


def _loaded(ref: str) -> Fn | None:
    """The function at ``ref`` in a module this process has loaded already
    (never imports: a task's text does not choose what code is loaded)."""
    module_name, _, qualname = ref.partition(":")
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if target is None or part.startswith("<"):  # <locals>, <lambda>: not reachable
            return None
        target = getattr(target, part, None)
    return target if callable(target) else None
