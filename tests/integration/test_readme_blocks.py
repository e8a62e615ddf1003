"""README code that is meant to run, run as written (the newcomer's first program)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def block_after(heading: str) -> str:
    """The first ```python block under ``heading``."""
    section = README.split(f"\n{heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


def test_the_shape_of_it_runs_twice_as_written(pg_dsn: str, app_id: str,
                                               tmp_path: Path) -> None:
    # The block's own app id, in a schema of the test's; run twice: a fixed id
    # must not fail the second time.
    code = block_after("## The shape of it").replace('app_id="my-app"', f'app_id="{app_id}"')
    script = tmp_path / "shape.py"
    script.write_text(code)
    env = dict(os.environ, HOTMESH_DSN=pg_dsn)
    for _ in range(2):
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                              text=True, timeout=90, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "'status': 'completed'" in done.stdout
        assert "'optimistic': {'length': " in done.stdout
