"""Framework integrations (``contrib.django``, ``contrib.flask``).

What they share with the command line lives in the core module
``hotmesh_sync.serving``; its functions stay importable from here too.
"""

from __future__ import annotations

from ..serving import load_functions, migrate_schema, serve, wrap_activities

__all__ = ["load_functions", "migrate_schema", "serve", "wrap_activities"]
