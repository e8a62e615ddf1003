"""docs/api.md's generated part (signatures and docstring summaries) matches the code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_api = _gen_api()


def test_the_generated_region_is_up_to_date() -> None:
    text = gen_api.API_MD.read_text(encoding="utf-8")
    assert gen_api.updated(text) == text, (
        "docs/api.md's generated region is out of date: run `python docs/gen_api.py` "
        "and commit docs/api.md")


def test_every_public_name_has_a_docstring_summary() -> None:
    assert gen_api.undocumented() == [], (
        "public names without a docstring: give each a short one (or, for a name you may "
        "not edit, add it to UNDOCUMENTED_OK in docs/gen_api.py with the reason)")


def test_a_stale_region_is_noticed_and_the_prose_around_it_kept() -> None:
    stale = f"# API\n\nprose before\n\n{gen_api.START}\n- `old()`\n{gen_api.END}\n\nprose after\n"
    fresh = gen_api.updated(stale)
    assert fresh != stale
    assert fresh.startswith("# API\n\nprose before\n\n" + gen_api.START)
    assert fresh.endswith(gen_api.END + "\n\nprose after\n")
    assert "- `mf.workflow.start(workflow_name: str | Callable[..., Any]," in fresh
    assert "- `old()`" not in fresh
    with pytest.raises(SystemExit):
        gen_api.updated("no markers here")


def test_signatures_are_written_as_declared() -> None:
    def example(self: object, a: int, b: str = "x", *rest: int, c: bool = False,
                **more: object) -> None:
        """One line.

        Not this paragraph."""

    def keyword_only(*, flag=None):  # type: ignore[no-untyped-def]
        return flag

    assert gen_api.signature(example) == (
        "(a: int, b: str = 'x', *rest: int, c: bool = False, **more: object) -> None")
    assert gen_api.signature(keyword_only) == "(*, flag=None)"
    assert gen_api.summary(example) == "One line."


def test_the_check_command_exits_1_when_out_of_date_and_says_how_to_fix_it(
        tmp_path: Path) -> None:
    copy = tmp_path / "api.md"
    copy.write_text(f"prose\n{gen_api.START}\n{gen_api.END}\n")
    script = str(ROOT / "docs" / "gen_api.py")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, script, *args, "--file", str(copy)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)

    stale = run("--check")
    assert stale.returncode == 1 and "run python docs/gen_api.py" in stale.stderr
    assert run().returncode == 0
    assert run("--check").returncode == 0
    assert copy.read_text().startswith(f"prose\n{gen_api.START}\n\n### `MemFlow`")
