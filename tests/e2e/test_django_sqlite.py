"""A Django project whose default database is SQLite: only what uses hotmesh_sync fails,
with one clear message; every other command works as before."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_project(root: Path) -> dict[str, str]:
    (root / "sqliteproj").mkdir()
    (root / "sqliteproj" / "__init__.py").write_text("")
    (root / "sqliteproj" / "flows.py").write_text("def hello() -> str:\n    return 'hi'\n")
    (root / "sqliteproj" / "settings.py").write_text(textwrap.dedent(f"""
        SECRET_KEY = "test"
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth",
                          "hotmesh_sync.contrib.django"]
        DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3",
                                  "NAME": {str(root / "db.sqlite3")!r}}}}}
        HOTMESH = {{"APP_ID": "sqliteproj", "WORKFLOWS": ["sqliteproj.flows"]}}
        USE_TZ = True
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTMESH_")}
    env.update(DJANGO_SETTINGS_MODULE="sqliteproj.settings",
               PYTHONPATH=os.pathsep.join([str(root), str(REPO)]))
    return env


def manage(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "django", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_other_commands_work_and_ours_say_what_to_set(tmp_path: Path) -> None:
    env = make_project(tmp_path)
    for args in (["check"], ["makemigrations", "--check", "--dry-run"], ["migrate", "-v", "0"]):
        done = manage(tmp_path, env, *args)
        assert done.returncode == 0, (args, done.stderr)
    for args in (["hotmesh_migrate"], ["hotmesh_worker", "--max-tasks", "1"]):
        done = manage(tmp_path, env, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert "hotmesh_sync needs PostgreSQL" in done.stderr
        assert "settings.HOTMESH['DSN']" in done.stderr
