"""hotmesh_sync: durable memory and coordinated execution for synchronous Python."""

from . import errors, workflow
from .entity import Entity
from .memflow import MemFlow
from .retry import RetryPolicy

__version__ = "0.1.0"
__all__ = ["Entity", "MemFlow", "RetryPolicy", "errors", "workflow", "__version__"]
