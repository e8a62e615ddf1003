"""Workers: claim tasks from PostgreSQL and run workflows, hooks and activities."""

from .worker import Worker

__all__ = ["Worker"]
