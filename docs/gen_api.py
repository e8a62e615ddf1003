"""Render the public API's signatures and docstring summaries into docs/api.md.

    python docs/gen_api.py           # rewrite the generated region of docs/api.md
    python docs/gen_api.py --check   # exit 1 when that region is out of date
    python docs/gen_api.py --file F  # another file with the same markers (tests)

Only the text between the two marker lines below is written; the hand-written
prose around it is left alone. ``tests/unit/test_api_docs.py`` runs the check.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

API_MD = Path(__file__).resolve().parent / "api.md"
START = "<!-- generated:start (python docs/gen_api.py) -->"
END = "<!-- generated:end -->"
COMMAND = "python docs/gen_api.py"

#: Public names without a docstring of their own, allowed for a reason.
UNDOCUMENTED_OK = {
    "worker.max_tasks": "a property in hotmesh_sync/worker/, documented in the table above",
}


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature(function: Callable[..., Any]) -> str:
    """``(a: int, b: str = 'x', *, c=None) -> T`` as written in the source, without
    ``self``/``cls``; the same text on every Python version."""
    sig = inspect.signature(function)
    parts: list[str] = []
    star_done = False
    for param in sig.parameters.values():
        if param.name in ("self", "cls"):
            continue
        text = param.name
        if param.kind is param.VAR_POSITIONAL:
            text, star_done = "*" + text, True
        elif param.kind is param.VAR_KEYWORD:
            text = "**" + text
        elif param.kind is param.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        annotation = _annotation(param.annotation)
        if annotation:
            text += f": {annotation}"
        if param.default is not param.empty:
            text += f" = {param.default!r}" if annotation else f"={param.default!r}"
        parts.append(text)
    returns = _annotation(sig.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {returns}" if returns else "")


def summary(obj: Any) -> str:
    """The docstring's first paragraph on one line, in Markdown's backticks."""
    doc = obj.__doc__ if isinstance(obj, property) else inspect.getdoc(obj)
    if not doc:
        return ""
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(paragraph.split()).replace("``", "`")


def _own_doc(cls: type, name: str) -> str:
    """The member's docstring, not one inherited from object (``Initialize self...``)."""
    member = vars(cls)[name]
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    return summary(member) if getattr(member, "__doc__", None) else ""


def _methods(cls: type, shown_as: str, static_as: str) -> Iterator[tuple[str, str, str]]:
    """(name as shown, signature, summary) of the public methods and properties that
    ``cls`` defines itself, in source order."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield f"{shown_as}.{name}", "", _own_doc(cls, name)
        elif isinstance(member, (staticmethod, classmethod)):
            yield f"{static_as}.{name}", signature(member.__func__), _own_doc(cls, name)
        elif inspect.isfunction(member):
            yield f"{shown_as}.{name}", signature(member), _own_doc(cls, name)


def _functions(module: Any, shown_as: str) -> Iterator[tuple[str, str, str]]:
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isfunction(value):
            yield f"{shown_as}.{name}", signature(value), summary(value)
        elif inspect.isclass(value):
            yield f"{shown_as}.{name}", "", summary(value)
        else:
            yield f"{shown_as}.{name}", "", summary(type(value))


def sections() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(heading, intro, entries) for each part of the public API."""
    from hotmesh_sync import Entity, MemFlow, RetryPolicy, activity, errors, ui, workflow
    from hotmesh_sync.client import WorkflowClient, WorkflowHandle
    from hotmesh_sync.worker import Worker

    error_entries = []
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, BaseException) \
                and value.__module__ == errors.__name__ and not name.startswith("_"):
            bases = ", ".join(b.__name__ for b in value.__bases__ if b.__name__ != "_RemoteError")
            if any(b.__name__ == "_RemoteError" for b in value.__bases__):
                bases = "HotMeshError"
            error_entries.append((f"errors.{name}", f"({bases})", summary(value)))
    return [
        ("`MemFlow`", summary(MemFlow), list(_methods(MemFlow, "mf", "MemFlow"))),
        ("`mf.workflow`", summary(WorkflowClient),
         list(_methods(WorkflowClient, "mf.workflow", "mf.workflow"))),
        ("`WorkflowHandle`", summary(WorkflowHandle),
         list(_methods(WorkflowHandle, "handle", "handle"))),
        ("`Worker`", summary(Worker), list(_methods(Worker, "worker", "Worker"))),
        ("`hotmesh_sync.workflow`", summary(workflow), list(_functions(workflow, "workflow"))),
        ("`Entity`", summary(Entity), list(_methods(Entity, "e", "Entity"))),
        ("`hotmesh_sync.activity`", summary(activity), list(_functions(activity, "activity"))),
        ("`RetryPolicy`", summary(RetryPolicy),
         [("RetryPolicy", signature(RetryPolicy), "")]),
        ("`hotmesh_sync.errors`", "", error_entries),
        ("`hotmesh_sync.ui`", summary(ui),
         [(name, signature(getattr(ui, name)), summary(getattr(ui, name)))
          for name in ui.__all__]),
    ]


def undocumented() -> list[str]:
    """Public names rendered without a summary (and not allowed to be)."""
    return [name for _, _, entries in sections() for name, _, text in entries
            if not text and name != "RetryPolicy" and name not in UNDOCUMENTED_OK]


def render() -> str:
    """The generated region, markers included."""
    lines = [START, ""]
    for heading, intro, entries in sections():
        lines.append(f"### {heading}")
        lines.append("")
        if intro:
            lines += [intro, ""]
        for name, sig, text in entries:
            lines.append(f"- `{name}{sig}`" + (f": {text}" if text else ""))
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def updated(text: str) -> str:
    """``text`` (docs/api.md) with its generated region rendered afresh."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise SystemExit(f"{API_MD} must hold one {START!r} and one {END!r} line")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    return before + render() + after


def main(argv: list[str]) -> int:
    target = Path(argv[argv.index("--file") + 1]) if "--file" in argv else API_MD
    current = target.read_text(encoding="utf-8")
    fresh = updated(current)
    if "--check" in argv:
        if fresh != current:
            print(f"{target.name}'s generated region is out of date: run {COMMAND}",
                  file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        target.write_text(fresh, encoding="utf-8")
        print(f"updated {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(API_MD.parent.parent))  # the checkout's hotmesh_sync
    raise SystemExit(main(sys.argv[1:]))
