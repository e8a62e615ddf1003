"""examples/queues.py runs as a user runs it, printing exactly what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = """\
queue emails: at most 2 sending at once
8 emails sent, at most 2 at a time
first two sent: ['password reset', 'password reset']
"""


def test_queues_sample(pg_dsn: str, app_id: str) -> None:
    env = dict(os.environ, HOTMESH_DSN=pg_dsn, HOTMESH_APP_ID=app_id)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "queues.py")],
                          env=env, capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0
    assert done.stdout == EXPECTED
