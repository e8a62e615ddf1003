"""Every ``HOTMESH_*`` limit in one object, read from the environment once.

``Settings.from_env()`` is called when a ``MemFlow`` or a ``Worker`` is made,
never at import, so an application or a test may set the variables just
before. Code below those objects receives the values it needs explicitly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigurationError


@dataclass(frozen=True)
class Settings:
    """The limits and timings a MemFlow and its workers run with."""

    #: Seconds an activity's lease lasts unless its worker extends it.
    lease_seconds: float = 60.0
    #: Claims of a leased activity beyond its attempts before it is dead-lettered.
    max_recoveries: int = 3
    #: Ceiling, in bytes of JSON, for one value (args, result, signal data, document).
    max_payload_bytes: int = 16 * 1024 * 1024
    #: Failures inside PostgreSQL of one task before its workflow fails with 598.
    max_task_failures: int = 5
    #: New durable calls one activation may make before it fails with 598.
    max_activation_steps: int = 10_000
    #: Seconds one activation may run before it fails with 598.
    max_activation_seconds: float = 60.0
    #: The DSN leads to PgBouncer in transaction pooling mode: no session state
    #: (server-side prepared statements, session SETs, LISTEN) is relied upon.
    pgbouncer: bool = False
    #: A direct connection to the server for LISTEN alone (``None``: the DSN's
    #: own server, or polling when ``pgbouncer`` is set).
    listen_dsn: str | None = None
    #: Seconds between wake-ups of waiters and workers when nothing can LISTEN.
    poll_seconds: float = 0.25

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The defaults, overridden by whichever ``HOTMESH_*`` variables are set."""
        env = os.environ if environ is None else environ
        return cls(
            lease_seconds=_number(env, "HOTMESH_LEASE_SECONDS", cls.lease_seconds,
                                  maximum=_DAY),
            max_recoveries=int(_number(env, "HOTMESH_MAX_RECOVERIES", cls.max_recoveries, 0)),
            max_payload_bytes=payload_ceiling(env),
            max_task_failures=int(_number(env, "HOTMESH_MAX_TASK_FAILURES",
                                          cls.max_task_failures)),
            max_activation_steps=int(_number(env, "HOTMESH_MAX_ACTIVATION_STEPS",
                                             cls.max_activation_steps)),
            max_activation_seconds=_number(env, "HOTMESH_MAX_ACTIVATION_SECONDS",
                                           cls.max_activation_seconds, maximum=_DAY),
            pgbouncer=_flag(env, "HOTMESH_PGBOUNCER"),
            listen_dsn=env.get("HOTMESH_LISTEN_DSN") or None,
            poll_seconds=_number(env, "HOTMESH_POLL_SECONDS", cls.poll_seconds,
                                 minimum=0.01, maximum=60.0),
        )


_DAY = 86_400.0


def payload_ceiling(environ: Mapping[str, str] | None = None) -> int:
    """``HOTMESH_MAX_PAYLOAD_BYTES`` now (16 MB unset).

    Read at each check rather than once: a ceiling lowered by an operator or a
    test applies at once to every MemFlow of the process.
    """
    env = os.environ if environ is None else environ
    return int(_number(env, "HOTMESH_MAX_PAYLOAD_BYTES", Settings.max_payload_bytes))


def dsn_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``$HOTMESH_DSN``, else ``$DATABASE_URL``; None when neither is set (or empty)."""
    env = os.environ if environ is None else environ
    return env.get("HOTMESH_DSN") or env.get("DATABASE_URL") or None


def data_dir_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """``$HOTMESH_DATA_DIR``: where the embedded default keeps its cluster, if set."""
    env = os.environ if environ is None else environ
    return env.get("HOTMESH_DATA_DIR") or None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise ConfigurationError(f"{name}={raw!r} must be 1/true/yes/on or 0/false/no/off")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 1e-9,
            maximum: float = 2.0**31 - 1) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise ConfigurationError(
            f"{name}={raw!r} must be a number from {minimum:g} to {maximum:g}")
    return value
