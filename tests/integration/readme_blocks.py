"""README.md's fenced code blocks, each named by the heading it sits under and
its position under that heading, so a name survives edits to other sections.

Also the small helpers that README tests share: splitting a shell block into
commands, running them, a database of their own for programs with fixed app ids.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # the venv's bin: hotmesh-sync, flask, python

_FENCE = re.compile(r"^(`{3,})(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: ``heading`` (the whole heading line, ``"## Django"``),
    ``index`` (0 for the first block under that heading), ``lang`` (the fence's
    info string, "" when none), ``code`` and ``line`` (where the fence opens)."""

    heading: str
    index: int
    lang: str
    code: str
    line: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.heading, self.index)

    def __str__(self) -> str:
        return f"README.md:{self.line} {self.heading!r} block {self.index} ({self.lang or 'plain'})"


def read_blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    heading = "(top)"
    counts: dict[str, int] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != fence.group(1):
                end += 1
            if end == len(lines):
                raise AssertionError(f"README.md:{i + 1}: a code fence that is never closed")
            index = counts.get(heading, 0)
            counts[heading] = index + 1
            blocks.append(Block(heading, index, fence.group(2), "\n".join(lines[i + 1:end]) + "\n",
                                i + 1))
            i = end + 1
            continue
        if re.match(r"^#{1,6} ", line):
            heading = line.rstrip()
        i += 1
    return blocks


def block(heading: str, index: int = 0) -> Block:
    """The block ``index`` under ``heading``."""
    for found in read_blocks():
        if found.key == (heading, index):
            return found
    raise AssertionError(f"README.md has no block {index} under {heading!r}")


# --- shell ----------------------------------------------------------------------------

def commands(code: str) -> list[str]:
    """The commands of a shell block: ``\\``-continued lines joined, comments and blank
    lines dropped (a ``#`` that shlex reads as a comment ends the command)."""
    joined: list[str] = []
    pending = ""
    for raw in code.splitlines():
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        text = _without_comment(line).strip()
        if text:
            joined.append(text)
    return joined


def _without_comment(line: str) -> str:
    """``line`` up to a shell comment (a ``#`` after a blank, outside quotes)."""
    quote: str | None = None
    for pos, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (pos == 0 or line[pos - 1].isspace()):
            return line[:pos]
    return line


def shell_env(dsn: str | None, app_id: str | None, **extra: str) -> dict[str, str]:
    """The environment README commands run in: the venv's bin first on PATH, the
    test's database and app id (or neither: then the embedded default)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HOTMESH_DSN", "DATABASE_URL", "HOTMESH_APP_ID")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if dsn is not None:
        env["HOTMESH_DSN"] = dsn
    if app_id is not None:
        env["HOTMESH_APP_ID"] = app_id
    env.update(extra)
    return env


def run_command(command: str, env: dict[str, str], cwd: Path,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one command line with bash, as a reader pastes it."""
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def check_command(command: str, env: dict[str, str], cwd: Path,
                  timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run it and fail the test, with its output, unless it exits 0."""
    done = run_command(command, env, cwd, timeout)
    assert done.returncode == 0, (
        f"{command!r} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n"
        f"{done.stderr}")
    return done


@contextmanager
def fresh_database(dsn: str) -> Iterator[str]:
    """A database of its own on the test server, dropped afterwards: for programs
    whose app id is fixed, so that they never touch a schema another test uses."""
    name = f"readme_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(dsn, dbname=name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
