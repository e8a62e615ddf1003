"""The Citus classification of every SQL statement (tests/unit/citus_queries.py)
follows the store: no statement is missing from it, none is listed that no
longer exists, and each class agrees with the text where that can be checked.

A new query fails here until it is classified, so a new multi-shard query is
noticed (docs/scale-out.md says what a multi-shard query costs on Citus).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from hotmesh_sync.store.queries import parse_named

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "hotmesh_sync" / "store"
CLASSES = {"single", "multi", "none"}
#: How an inline SQL statement starts (string constants of store/*.py).
_STATEMENT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|LISTEN|NOTIFY|SET|VACUUM|"
    r"TRUNCATE|LOCK|BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)


def load_list() -> ModuleType:
    path = Path(__file__).with_name("citus_queries.py")
    spec = importlib.util.spec_from_file_location("citus_queries", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LIST = load_list()


def named_queries() -> dict[str, str]:
    """Every ``-- name:`` block of every .sql file beside the store (not only
    those ``Queries`` loads: a file read by its own module counts too)."""
    found: dict[str, str] = {}
    for path in sorted((STORE / "sql").glob("*.sql")):
        for name, body in parse_named(path.read_text(encoding="utf-8")).items():
            assert name not in found, f"query {name!r} is defined twice"
            found[name] = body
    return found


def inline_statements() -> list[tuple[str, str]]:
    """(file, text with whitespace collapsed) of every string constant in
    store/*.py that starts like an SQL statement (docstrings left out)."""
    found = []
    for path in sorted(STORE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    docstrings.add(id(first.value))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and _STATEMENT.match(node.value)):
                found.append((path.name, " ".join(node.value.split())))
    return found


NAMED = named_queries()
INLINE = inline_statements()


def test_every_named_query_is_classified() -> None:
    missing = sorted(set(NAMED) - set(LIST.NAMED))
    assert not missing, (
        f"classify these queries for Citus in tests/unit/citus_queries.py (NAMED), "
        f"see docs/scale-out.md: {missing}")


def test_no_classified_query_is_gone() -> None:
    gone = sorted(set(LIST.NAMED) - set(NAMED))
    assert not gone, f"these queries no longer exist; drop them from NAMED: {gone}"


def test_every_inline_statement_is_classified() -> None:
    missing = sorted(set(INLINE) - set(LIST.INLINE))
    assert not missing, (
        "classify these inline statements of hotmesh_sync/store/*.py in "
        "tests/unit/citus_queries.py (INLINE), keyed by file and text:\n"
        + "\n".join(f"    {key!r}" for key in missing))


def test_no_classified_inline_statement_is_gone() -> None:
    gone = sorted(set(LIST.INLINE) - set(INLINE))
    assert not gone, f"these inline statements no longer exist; drop them from INLINE: {gone}"


def test_classes_and_reasons() -> None:
    for key, (kind, reason) in [*LIST.NAMED.items(), *LIST.INLINE.items()]:
        assert kind in CLASSES, f"{key}: class {kind!r} is not one of {sorted(CLASSES)}"
        assert reason.strip(), f"{key}: give a one-line reason"


def statements() -> list[tuple[str, str, str]]:
    """(label, class, SQL text) of every classified statement that exists."""
    rows = [(name, *LIST.NAMED[name][:1], text) for name, text in NAMED.items()
            if name in LIST.NAMED]
    rows += [(f"{file}: {text[:50]}", LIST.INLINE[(file, text)][0], text)
             for file, text in INLINE if (file, text) in LIST.INLINE]
    return rows


@pytest.mark.parametrize(("label", "kind", "text"), statements(),
                         ids=[row[0] for row in statements()])
def test_class_agrees_with_the_text(label: str, kind: str, text: str) -> None:
    """``none``: no distributed table is named. ``single``: every distributed
    table in it is pinned to one workflow id (its distribution column compared
    with a parameter, or joined on it to a pinned one), and at least one pin is
    a parameter. ``multi``: some distributed table is not pinned."""
    sql = strip_comments(text)
    tables = distributed_references(sql)
    # A function of the schema that reads distributed tables: its statements
    # are not routed by the call's arguments, so none of them counts as pinned.
    in_functions = {t for f in called_functions(sql) for t in FUNCTION_TABLES.get(f, ())}
    tables |= in_functions
    if kind == "none":
        assert not tables, f"{label} is classified 'none' but touches {sorted(tables)}"
        return
    assert tables, f"{label} is classified {kind!r} but touches no distributed table"
    unpinned = [table for table, alias, scope in scopes(sql) if not pinned(table, alias, scope)]
    unpinned += sorted(in_functions)
    has_parameter = bool(re.search(r"\b(?:\w+\.)?(?:job_id|id)\s*=\s*:\w+", sql)) \
        or any(inserts_parameter(sql, table) for table in tables)
    if kind == "single":
        assert not unpinned and has_parameter, (
            f"{label} is classified 'single' but "
            + (f"{unpinned} is not pinned to one workflow id by its distribution column"
               if unpinned else "no distribution column is compared with a parameter"))
    else:
        assert unpinned or not has_parameter, (
            f"{label} is classified 'multi' but every distributed table in it is pinned "
            "to one workflow id: is it single-shard?")


# --- a small reading of the SQL ------------------------------------------------------------

_KEYWORDS = {"where", "set", "on", "join", "left", "right", "inner", "using", "group", "order",
             "limit", "for", "returning", "values", "select", "union", "with", "and", "or",
             "as", "from", "default", "partition", "cross", "full", "natural"}
_HEAD = re.compile(
    r"\b(DELETE\s+FROM|UPDATE|FROM|JOIN|INSERT\s+INTO)\s+\{schema\}\.(\w+)\b(?!\()"
    r"(?:\s+(?:AS\s+)?([A-Za-z_]\w*))?", re.IGNORECASE)


def strip_comments(text: str) -> str:
    """``text`` without comments, each parameter ``%(name)s`` written ``:name``
    (so that its parentheses do not read as nesting)."""
    return re.sub(r"%\((\w+)\)s", r":\1", re.sub(r"--[^\n]*", " ", text))


def distributed_references(sql: str) -> set[str]:
    return {name for name in re.findall(r"\{schema\}\.(\w+)\b(?!\()", sql)
            if name in LIST.DISTRIBUTED}


def called_functions(sql: str) -> set[str]:
    return set(re.findall(r"\{schema\}\.(\w+)\(", sql))


def function_tables() -> dict[str, set[str]]:
    """The distributed tables each function of schema.sql names in its body."""
    text = (STORE / "sql" / "schema.sql").read_text(encoding="utf-8")
    found = {}
    for match in re.finditer(r"CREATE FUNCTION \{schema\}\.(\w+)\(.*?\$\$(.*?)\$\$", text,
                             re.DOTALL):
        found[match.group(1)] = distributed_references(strip_comments(match.group(2)))
    return found


def scopes(sql: str) -> list[tuple[str, str, str]]:
    """(table, alias, the text of its statement at its own nesting level) for
    each distributed table read or written by a FROM, JOIN, UPDATE or DELETE."""
    found = []
    for match in _HEAD.finditer(sql):
        verb, table, alias = match.group(1).upper(), match.group(2), match.group(3)
        if table not in LIST.DISTRIBUTED or verb.startswith("INSERT"):
            continue
        if alias is None or alias.lower() in _KEYWORDS:
            alias = table
        found.append((table, alias, flat_scope(sql, match.start())))
    return found


def flat_scope(sql: str, start: int) -> str:
    """The text from ``start`` to the end of its parenthesized level, with
    whatever is nested deeper (subqueries, argument lists) left out."""
    depth = 0
    kept = []
    for char in sql[start:]:
        if char == "(":
            depth += 1
            continue
        if char == ")":
            if depth == 0:
                break
            depth -= 1
            continue
        if depth == 0:
            kept.append(char)
    return "".join(kept)


def pinned(table: str, alias: str, scope: str) -> bool:
    """Whether ``scope`` compares ``alias``'s distribution column with a
    parameter or with another table's distribution column (a co-located join)."""
    if re.search(r"\bOR\b", scope, re.IGNORECASE):
        return False  # a pin OR something else pins nothing
    column = LIST.DISTRIBUTED[table]
    qualified = rf"\b{re.escape(alias)}\.{column}"
    bare = rf"(?<![\w.]){column}"
    value = r"(?::\w+|\b\w+\.(?:job_id|id)\b)"
    for side in (qualified, bare):
        if re.search(rf"{side}\s*=\s*{value}", scope) or \
                re.search(rf"{value}\s*=\s*{side}\b", scope):
            return True
    return False


def inserts_parameter(sql: str, table: str) -> bool:
    """Whether an INSERT into ``table`` takes its distribution column from a
    parameter (VALUES, or the select list of INSERT ... SELECT)."""
    column = LIST.DISTRIBUTED[table]
    pattern = rf"INSERT\s+INTO\s+\{{schema\}}\.{table}\s*\(([^)]*)\)"
    for match in re.finditer(pattern, sql, re.IGNORECASE):
        columns = [c.strip() for c in match.group(1).split(",")]
        if column not in columns:
            continue
        rest = sql[match.end():].lstrip()
        if rest.upper().startswith("VALUES"):
            items = split_top(flat_inner(rest[rest.index("("):]))
        else:
            select = re.match(r"SELECT\s+(?:DISTINCT\s+)?(.*?)\bFROM\b", rest,
                              re.IGNORECASE | re.DOTALL)
            if select is None:
                continue
            items = split_top(select.group(1))
        index = columns.index(column)
        if index < len(items) and re.fullmatch(r":\w+", items[index].strip()):
            return True
    return False


def flat_inner(text: str) -> str:
    """The inside of the parenthesized group ``text`` starts with."""
    depth = 0
    for i, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            return text[1:i]
    return text[1:]


def split_top(text: str) -> list[str]:
    """``text`` split at commas outside parentheses."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
            continue
        depth += char == "("
        depth -= char == ")"
        current.append(char)
    items.append("".join(current))
    return items


FUNCTION_TABLES = function_tables()


def test_the_reading_of_sql_tells_pinned_from_not() -> None:
    """The checker itself, on the cases that matter: a DELETE by task id with a
    job_id only in its subquery is not pinned; the same DELETE with job_id is."""
    by_id = ("DELETE FROM {schema}.tasks WHERE id IN (SELECT id FROM {schema}.tasks"
             " WHERE job_id = %(job_id)s)")
    def pins(text: str) -> list[bool]:
        return [pinned(t, a, s) for t, a, s in scopes(strip_comments(text))]

    assert pins(by_id) == [False, True]
    assert pins(by_id + " AND job_id = %(job_id)s") == [True, True]
    assert pins("SELECT 1 FROM {schema}.runs r JOIN {schema}.jobs j ON j.id = r.job_id"
                " WHERE r.job_id = %(job_id)s") == [True, True]
    assert pins("UPDATE {schema}.tasks SET claims = 1 WHERE id = %(id)s") == [False]
    assert pins("DELETE FROM {schema}.tasks WHERE job_id = %(id)s OR id = %(task)s") == [False]
    assert FUNCTION_TABLES["claim_limited"] == {"tasks"}
    assert FUNCTION_TABLES["entity_apply"] == set()
    assert inserts_parameter(strip_comments(
        "INSERT INTO {schema}.steps (job_id, k) SELECT %(job_id)s, k"
        " FROM unnest(%(keys)s) AS u(k)"), "steps")
    assert not inserts_parameter(strip_comments(
        "INSERT INTO {schema}.tasks (task_queue, job_id) SELECT"
        " r.task_queue, r.job_id FROM {schema}.runs r"), "tasks")
