"""Running entity commands: check and compile, then hand the SQL to the store.

``apply_command`` works inside the caller's transaction, so the durable core
can apply a command in the same transaction that records the workflow step
(the command then happens exactly once). A refused command (bad path, wrong
type) changes nothing and leaves the caller's transaction usable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..store.connect import Pool
from ..store.entity_ops import Conn, apply_compiled, read_document, run_on_pool
from .commands import compile_command
from .paths import lookup, parse_optional

#: What an ``Entity`` hands each command to: (command, parsed path, args) -> result.
Executor = Callable[[str, list[str] | None, dict[str, Any]], Any]


def apply_command(
    conn: Conn,
    schema: str,
    job_id: str,
    command: str,
    path: object = None,
    args: Mapping[str, Any] | None = None,
    history_sink: list[tuple[int, list[dict[str, Any]]]] | None = None,
) -> Any:
    """Apply one entity command to the document of ``job_id``; return its result.

    ``path`` is dotted text, a list of segments, or None (whole document).
    ``args`` holds the command's argument as ``Entity`` passes it to its
    executor: ``{"value": v}`` (set, merge, append, prepend,
    set_if_not_exists), ``{"index": i}`` (remove), ``{"amount": n}``
    (increment, default 1), or nothing. See ``store.entity_ops.apply_compiled``
    for the transaction and the history row.
    """
    return run_command(
        command, path, args,
        read=lambda segments: read_document(conn, schema, job_id, segments),
        write=lambda params: apply_compiled(conn, schema, job_id, params, history_sink))


def run_command(command: str, path: object, args: Mapping[str, Any] | None,
                read: Callable[[list[str] | None], Any],
                write: Callable[[Mapping[str, Any]], Any]) -> Any:
    """Compile a command and run it through ``read`` (a ``get``: the value at the
    parsed path) or ``write`` (the compiled params: the document after); its result."""
    compiled = compile_command(command, path, **dict(args or {}))
    if not compiled.writes:
        return read(compiled.path)
    return lookup(write(compiled.params), compiled.result_path)


def get_document(conn: Conn, schema: str, job_id: str, path: object = None) -> Any:
    """The value at ``path`` of the document of ``job_id`` (None when absent);
    the whole document for ``path=None``."""
    return read_document(conn, schema, job_id, parse_optional(path))


def pool_executor(pool: Pool, schema: str, job_id: str) -> Executor:
    """The executor of ``mf.entity(job_id)``: each command in a transaction of its own."""

    def execute(command: str, path: list[str] | None, args: dict[str, Any]) -> Any:
        # apply_command opens the transaction itself (no savepoint needed on
        # a connection fresh from the pool); the pool commits a read on return.
        return run_on_pool(pool, lambda conn: apply_command(conn, schema, job_id, command,
                                                            path, args))

    return execute
