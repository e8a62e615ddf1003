"""``Entity``: the commands on one workflow's JSON document, and the finders.

An Entity checks every call (path, JSON values, argument types) and hands
the checked command to its executor, which decides where and how it runs:
inside a workflow, as a recorded step of the activation's transaction;
outside (``mf.entity(id)``), in a transaction of its own (``pool_executor``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..store.connect import Pool
from . import finders
from .commands import compile_command
from .execute import Executor, pool_executor
from .paths import PathLike

__all__ = ["Entity", "Executor", "HasPool", "pool_executor"]


class HasPool(Protocol):
    """What the finders need of a MemFlow: its pool and schema."""

    @property
    def pool(self) -> Pool: ...

    @property
    def schema(self) -> str: ...


class Entity:
    """The durable JSON document of the workflow ``workflow_id``."""

    def __init__(self, workflow_id: str, executor: Executor) -> None:
        self.workflow_id = workflow_id
        self._executor = executor

    def __repr__(self) -> str:
        return f"Entity({self.workflow_id!r})"

    def get(self, path: PathLike | None = None) -> Any:
        """The value at ``path`` (None when absent), or the whole document."""
        return self._run("get", path, {})

    def set(self, value: dict[str, Any]) -> Any:
        """Replace the whole document; returns it."""
        return self._run("set", None, {"value": value})

    def merge(self, value: dict[str, Any]) -> Any:
        """Deep-merge ``value`` into the document; returns the document."""
        return self._run("merge", None, {"value": value})

    def append(self, path: PathLike, value: Any) -> Any:
        """Add ``value`` at the end of the array at ``path``; returns the array."""
        return self._run("append", path, {"value": value})

    def prepend(self, path: PathLike, value: Any) -> Any:
        """Add ``value`` at the start of the array at ``path``; returns the array."""
        return self._run("prepend", path, {"value": value})

    def remove(self, path: PathLike, index: int) -> Any:
        """Remove item ``index`` (negative: from the end) of the array at ``path``;
        returns the array."""
        return self._run("remove", path, {"index": index})

    def increment(self, path: PathLike, amount: float = 1) -> Any:
        """Add ``amount`` to the number at ``path`` (absent: 0); returns the number."""
        return self._run("increment", path, {"amount": amount})

    def toggle(self, path: PathLike) -> Any:
        """Negate the boolean at ``path`` (absent: false); returns the boolean."""
        return self._run("toggle", path, {})

    def set_if_not_exists(self, path: PathLike, value: Any) -> Any:
        """Set ``value`` at ``path`` unless a value is there; returns the value there."""
        return self._run("set_if_not_exists", path, {"value": value})

    def delete(self, path: PathLike) -> Any:
        """Remove the value at ``path`` (nothing there: no change); returns the document."""
        return self._run("delete", path, {})

    def _run(self, command: str, path: PathLike | None, args: dict[str, Any]) -> Any:
        # Check everything before the executor records or runs anything.
        compiled = compile_command(command, path, **args)
        return self._executor(command, compiled.path, args)

    # Queries over many entities; ``mf`` is a MemFlow (anything with .pool and .schema).

    @staticmethod
    def find(
        entity: str, conditions: Mapping[Any, Any], mf: HasPool, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Entities of kind ``entity`` meeting every condition, newest first."""
        return finders.find(mf.pool, mf.schema, entity, conditions, limit, offset)

    @staticmethod
    def find_by_condition(
        entity: str,
        field: PathLike,
        value: Any,
        operator: str,
        mf: HasPool,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Entities whose ``field`` compares to ``value`` by ``operator``
        (= != > >= < <= LIKE IN), newest first."""
        return finders.find_by_condition(
            mf.pool, mf.schema, entity, field, value, operator, limit, offset
        )

    @staticmethod
    def find_by_id(entity: str, id: str, mf: HasPool) -> dict[str, Any] | None:
        """The entity ``id`` of kind ``entity``, or None."""
        return finders.find_by_id(mf.pool, mf.schema, entity, id)

    @staticmethod
    def create_index(entity: str, field: PathLike, mf: HasPool, *, kind: str = "btree") -> str:
        """Index ``field`` for entities of kind ``entity`` (idempotent); returns the index name."""
        return finders.create_index(mf.pool, mf.schema, entity, field, kind=kind)
