"""The Django app config: checks ``settings.HOTMESH`` at startup, without connecting."""

from __future__ import annotations

from django.apps import AppConfig

from .conf import load_settings


# Without django-stubs installed AppConfig is Any to mypy; with them the ignore is unused.
class HotMeshConfig(AppConfig):  # type: ignore[misc,unused-ignore]
    name = "hotmesh_sync.contrib.django"
    label = "hotmesh_sync"  # the default ("django") would read oddly and could clash
    verbose_name = "HotMesh durable workflows"

    def ready(self) -> None:
        load_settings()  # a bad HOTMESH setting fails at startup, not at first use
