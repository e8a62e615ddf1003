"""The entity: a workflow's durable JSON document, its commands, history and finders.

``paths`` parses paths; ``commands`` checks and compiles a command (pure);
``store_ops`` runs one on a connection and reads documents and history;
``finders`` queries many entities; ``reference`` is a pure-Python model of
every command, for tests.
"""

from .entity import Entity, Executor, HasPool
from .finders import Entities
from .store_ops import apply_command, get_document, history, pool_executor

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
