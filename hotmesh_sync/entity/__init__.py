"""The entity: a workflow's durable JSON document, its commands, history and finders.

``paths`` parses paths; ``commands`` checks and compiles a command (pure);
``reference`` is a pure-Python model of every command, for tests. Running a
command, reading history and the finders are SQL, so they live in the store
(``store/entity_ops.py``, ``store/finders.py``); ``Entity`` and ``Entities``
are the user-facing objects over them.
"""

from ..store.entity_ops import history
from .entity import Entity, Executor, HasPool
from .execute import apply_command, get_document, pool_executor
from .finders import Entities

__all__ = [
    "Entities",
    "Entity",
    "Executor",
    "HasPool",
    "apply_command",
    "get_document",
    "history",
    "pool_executor",
]
