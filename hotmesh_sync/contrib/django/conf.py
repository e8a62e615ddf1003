"""``settings.HOTMESH``, read and checked once, and the DSN it implies.

``HOTMESH = {"APP_ID": ..., "WORKFLOWS": [...], "TASK_QUEUE": ..., "CONCURRENCY": ...,
"POOL_SIZE": ..., "DSN": ..., "SCHEDULES": {...}}``; every key is optional. Without
``DSN`` the library connects to the database of ``DATABASES["default"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from psycopg.conninfo import make_conninfo

from ...errors import ConfigurationError
from ...memflow import schema_for

_KEYS = {"APP_ID", "WORKFLOWS", "TASK_QUEUE", "CONCURRENCY", "POOL_SIZE", "DSN", "SCHEDULES"}
_POSTGRES_ENGINES = {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}
# OPTIONS that Django's backend consumes itself; everything else goes to libpq.
_DJANGO_ONLY_OPTIONS = {"assume_role", "isolation_level", "pool", "server_side_binding",
                        "cursor_factory", "context", "prepare_threshold"}


@dataclass(frozen=True)
class HotMeshSettings:
    app_id: str
    workflows: tuple[str, ...]
    task_queue: str
    concurrency: int
    pool_size: int
    #: ``HOTMESH["DSN"]``, when set.
    configured_dsn: str | None
    #: Schedule id -> the keywords of ``mf.schedules.create`` (checked when synced).
    schedules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        """The DSN to connect to: ``HOTMESH["DSN"]``, else ``DATABASES["default"]``.

        Worked out when something connects, not at startup: a project whose
        default database is SQLite runs every other command (``runserver``,
        ``makemigrations``) as before, and only what uses hotmesh_sync gets
        the one clear ImproperlyConfigured.
        """
        return self.configured_dsn or dsn_from_database(settings.DATABASES["default"])


def load_settings() -> HotMeshSettings:
    """``settings.HOTMESH`` checked; ImproperlyConfigured names what is wrong."""
    raw: Any = getattr(settings, "HOTMESH", {})
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("settings.HOTMESH must be a dict")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"settings.HOTMESH has unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    app_id = raw.get("APP_ID", "default")
    try:
        schema_for(app_id)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"settings.HOTMESH['APP_ID']: {exc}") from exc
    workflows = raw.get("WORKFLOWS", [])
    if isinstance(workflows, str) or not all(isinstance(w, str) for w in workflows):
        raise ImproperlyConfigured(
            "settings.HOTMESH['WORKFLOWS'] must be a list of dotted module paths")
    task_queue = raw.get("TASK_QUEUE", "default")
    if not isinstance(task_queue, str) or not task_queue:
        raise ImproperlyConfigured("settings.HOTMESH['TASK_QUEUE'] must be a non-empty string")
    numbers = {key: raw.get(key, default) for key, default in
               (("CONCURRENCY", 8), ("POOL_SIZE", 10))}
    for key, value in numbers.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ImproperlyConfigured(f"settings.HOTMESH[{key!r}] must be a positive integer")
    schedules = raw.get("SCHEDULES", {})
    if not isinstance(schedules, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Mapping) for k, v in schedules.items()):
        raise ImproperlyConfigured("settings.HOTMESH['SCHEDULES'] must be a dict: schedule id "
                                   "-> a dict of mf.schedules.create() keywords")
    dsn = raw.get("DSN")
    if dsn is not None and (not isinstance(dsn, str) or not dsn):
        raise ImproperlyConfigured("settings.HOTMESH['DSN'] must be a libpq DSN string")
    return HotMeshSettings(app_id, tuple(workflows), task_queue, numbers["CONCURRENCY"],
                           numbers["POOL_SIZE"], dsn, dict(schedules))


#: The backend of Django's Tasks framework that runs tasks as workflows.
TASK_BACKEND = "hotmesh_sync.contrib.django.tasks.HotMeshBackend"


def task_backend_configured() -> bool:
    """Whether a backend of ``settings.TASKS`` is ``TASK_BACKEND`` (or a subclass).

    Read without importing the Tasks framework unless TASKS names a backend:
    Django before 6.0 has no framework unless the backport is installed.
    """
    for params in (getattr(settings, "TASKS", None) or {}).values():
        path = params.get("BACKEND") if isinstance(params, Mapping) else None
        if path == TASK_BACKEND:
            return True
        try:
            backend = import_string(path) if isinstance(path, str) else None
        except ImportError:
            continue  # another backend that does not load is not this library's to report
        if any(f"{c.__module__}.{c.__qualname__}" == TASK_BACKEND
               for c in getattr(backend, "__mro__", ())):
            return True
    return False


def dsn_from_database(database: Mapping[str, Any]) -> str:
    """A libpq DSN for a ``DATABASES`` entry, connecting the way Django's backend does."""
    engine = database.get("ENGINE", "")
    if engine not in _POSTGRES_ENGINES:
        raise ImproperlyConfigured(
            f"hotmesh_sync needs PostgreSQL, but DATABASES['default'] uses {engine!r}: "
            "set settings.HOTMESH['DSN'] to a PostgreSQL DSN (e.g. "
            "'postgresql://app@localhost/app'); the rest of the project may stay on "
            f"{engine.rsplit('.', 1)[-1] or 'it'}")
    params: dict[str, Any] = {
        key: value for key, value in dict(database.get("OPTIONS") or {}).items()
        if key not in _DJANGO_ONLY_OPTIONS and isinstance(value, (str, int, float))
    }
    name = database.get("NAME")
    if name is None:  # Django's convention for "the postgres database"
        params.pop("service", None)
        params["dbname"] = "postgres"
    elif name:
        params["dbname"] = name
    for django_key, libpq_key in (("USER", "user"), ("PASSWORD", "password"),
                                  ("HOST", "host"), ("PORT", "port")):
        if database.get(django_key):
            params[libpq_key] = str(database[django_key])
    return make_conninfo(**params)
