"""The entity command compiler: checks a command and its arguments, and says
which named query runs it with which parameters. Pure: no connection here.

Everything a user passes is checked before anything is sent, so a bad path or
a value that is not JSON never reaches the database and leaves the document
as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import EntityTypeError, InvalidPathError
from ..jsonvalue import dumps
from .paths import parse, parse_optional

#: Commands that take a path, a required one.
PATH_COMMANDS = frozenset(
    {"append", "prepend", "remove", "increment", "toggle", "set_if_not_exists", "delete"}
)
#: Commands on the whole document.
DOCUMENT_COMMANDS = frozenset({"set", "merge"})
#: Every command, ``get`` (a read) included.
COMMANDS = PATH_COMMANDS | DOCUMENT_COMMANDS | {"get"}
#: Commands that return the whole document rather than the value at their path.
RETURNS_DOCUMENT = frozenset({"set", "merge", "delete"})
#: The largest magnitude of an increment's amount, and of the number it leaves:
#: the largest double as JSON writes it (1.7976931348623157e+308), as an exact
#: integer. The SQL function entity_apply has the same bound. PostgreSQL's
#: numeric would go on, but a sum beyond it with a fraction reads back into
#: Python (and most JSON readers) as infinity, which JSON cannot hold.
MAX_NUMBER = 17976931348623157 * 10**292


@dataclass(frozen=True)
class CompiledCommand:
    """A checked command: the named query to run and its parameters.

    ``params`` lacks only ``job_id``. ``path`` is the parsed path (None for
    the whole document); ``result_path`` is where the return value is read
    from the document after the command (None: the document itself).
    """

    command: str
    query: str
    params: dict[str, Any]
    path: list[str] | None
    result_path: list[str] | None

    @property
    def writes(self) -> bool:
        return self.query != "entity_get"


def compile_command(
    command: str,
    path: object = None,
    value: Any = None,
    *,
    index: Any = None,
    amount: Any = 1,
) -> CompiledCommand:
    """Check ``command`` with its arguments and compile it.

    ``value`` is the argument of set, merge, append, prepend and
    set_if_not_exists; ``index`` that of remove; ``amount`` that of increment.
    Raises InvalidPathError (bad path), TypeError (a value that is not JSON, a
    bad index or amount), EntityTypeError (set/merge with a non-object) and
    ValueError (an unknown command, an amount beyond ±MAX_NUMBER).
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown entity command {command!r}; one of {sorted(COMMANDS)}")
    if command == "get":
        segments = parse_optional(path)
        return CompiledCommand(command, "entity_get", {"path": segments}, segments, segments)
    if command in DOCUMENT_COMMANDS:
        if path is not None:
            raise InvalidPathError(f"{command} works on the whole document and takes no path")
        if not isinstance(value, dict):
            raise EntityTypeError(
                f"{command} needs a JSON object (a dict), not {type(value).__name__}"
            )
        arg: str | None = dumps(value, f"the value to {command}")
        return _compiled(command, None, arg)
    segments = parse(path)
    if command == "remove":
        arg = dumps(_integer(index), "the index to remove")
    elif command == "increment":
        arg = dumps(_number(amount), "the amount to increment by")
    elif command in ("toggle", "delete"):
        arg = None
    else:
        arg = dumps(value, f"the value to {command}")
    return _compiled(command, segments, arg)


def _compiled(command: str, segments: list[str] | None, arg: str | None) -> CompiledCommand:
    params = {"command": command, "path": segments, "arg": arg}
    result_path = None if command in RETURNS_DOCUMENT else segments
    return CompiledCommand(command, "entity_apply", params, segments, result_path)


def _integer(index: Any) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"remove needs an integer index, not {type(index).__name__}")
    return index


def _number(amount: Any) -> int | float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"increment needs a number (int or float), not {type(amount).__name__}")
    # A float is finite here or dumps refuses it (TypeError); an int may be
    # beyond any double.
    if isinstance(amount, int) and abs(amount) > MAX_NUMBER:
        raise ValueError(
            "increment's amount must be within ±1.7976931348623157e308 (a double's range);"
            f" got an integer of {amount.bit_length()} bits"
        )
    return amount
