"""``python -m hotmesh_sync``: the ``hotmesh-sync`` command line."""

import sys

from .cli import main

sys.exit(main())
