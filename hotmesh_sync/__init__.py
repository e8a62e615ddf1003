"""hotmesh_sync: durable memory and coordinated execution for synchronous Python."""

import logging

from . import activity, errors, workflow
from .entity import Entity
from .memflow import MemFlow
from .retry import RetryPolicy

# The library never prints: its events are records of the `hotmesh_sync` loggers, shown only
# where the application configures logging (this keeps logging's lastResort handler quiet too).
logging.getLogger("hotmesh_sync").addHandler(logging.NullHandler())

__version__ = "0.1.0"
__all__ = ["Entity", "MemFlow", "RetryPolicy", "activity", "errors", "workflow", "__version__"]
