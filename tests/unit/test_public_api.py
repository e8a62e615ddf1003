"""The public names of ``hotmesh_sync``, ``hotmesh_sync.workflow`` and ``hotmesh_sync.errors``,
written out, so that adding or removing one is a change someone makes on purpose."""

from __future__ import annotations

import inspect
import types

import pytest

import hotmesh_sync
from hotmesh_sync import errors, workflow

PACKAGE_ALL = ["Entity", "MemFlow", "RetryPolicy", "activity", "errors", "workflow",
               "__version__"]

WORKFLOW_ALL = [
    "ActivityProxy", "RunInfo", "Suspension", "all", "continue_as_new", "deprecate_patch",
    "entity", "exec_child", "exec_hook", "exec_hook_batch", "hook", "info", "interrupt",
    "logger", "now", "patched", "proxy_activities", "random", "signal", "sleep_for",
    "start_child", "transactional", "uuid4", "wait_for", "wait_for_any",
]

#: Every public error class, with the public class it derives from (the tree in errors.py).
ERROR_TREE = {
    "HotMeshError": "Exception",
    "ConfigurationError": "HotMeshError",
    "DuplicateWorkflowError": "HotMeshError",
    "WorkflowNotFoundError": "HotMeshError",
    "DuplicateScheduleError": "HotMeshError",
    "ScheduleNotFoundError": "HotMeshError",
    "NotInWorkflowError": "HotMeshError",
    "NonDeterminismError": "HotMeshError",
    "ActivationLimitError": "HotMeshError",
    "StoreError": "HotMeshError",
    "InvalidPathError": "HotMeshError",
    "EntityTypeError": "HotMeshError",
    "PayloadTooLargeError": "HotMeshError",
    "FatalError": "HotMeshError",
    "MaxedError": "HotMeshError",
    "WorkflowFailedError": "HotMeshError",
    "WorkflowInterruptedError": "WorkflowFailedError",
    "CancelledError": "BaseException",
}

ERROR_CODES = {"CODE_FATAL": 598, "CODE_MAXED": 597, "CODE_TIMEOUT": 596,
               "CODE_INTERRUPTED": 410}


@pytest.mark.parametrize(("module", "expected"), [
    (hotmesh_sync, PACKAGE_ALL),
    (workflow, WORKFLOW_ALL),
], ids=["hotmesh_sync", "hotmesh_sync.workflow"])
def test_all_is_pinned_and_resolves(module: types.ModuleType, expected: list[str]) -> None:
    """``__all__`` is exactly the list above, and every name in it exists."""
    assert sorted(module.__all__) == sorted(expected)
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_star_import_gives_exactly_all() -> None:
    """``from hotmesh_sync.workflow import *`` brings in ``__all__`` and nothing else."""
    namespace: dict[str, object] = {}
    exec("from hotmesh_sync.workflow import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(WORKFLOW_ALL)


def _public_parent(cls: type) -> str:
    for base in cls.__mro__[1:]:
        if not base.__name__.startswith("_"):
            return base.__name__
    raise AssertionError(cls)


def test_error_classes_are_pinned_with_their_parents() -> None:
    """``errors`` has no ``__all__``: its public exception classes and their tree are pinned."""
    found = {name: _public_parent(value) for name, value in vars(errors).items()
             if inspect.isclass(value) and issubclass(value, BaseException)
             and not name.startswith("_") and value.__module__ == errors.__name__}
    assert found == ERROR_TREE


def test_error_codes_are_pinned() -> None:
    """The workflow failure codes keep their numbers."""
    found = {name: value for name, value in vars(errors).items() if name.startswith("CODE_")}
    assert found == ERROR_CODES


def test_suspension_is_outside_the_error_tree() -> None:
    """``except Exception`` (or ``except HotMeshError``) can never catch a suspension."""
    assert issubclass(workflow.Suspension, BaseException)
    assert not issubclass(workflow.Suspension, Exception)


def test_value_and_type_errors_stay_catchable_as_such() -> None:
    """Bad paths and values are also ValueError/TypeError, as callers may catch them so."""
    assert issubclass(errors.InvalidPathError, ValueError)
    assert issubclass(errors.PayloadTooLargeError, ValueError)
    assert issubclass(errors.EntityTypeError, TypeError)
