"""``manage.py hotmesh_migrate``: create or migrate the HotMesh schema of settings.HOTMESH."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from hotmesh_sync.contrib.django import sync_schedules
from hotmesh_sync.contrib.django.conf import load_settings
from hotmesh_sync.errors import ConfigurationError
from hotmesh_sync.serving import migrate_schema


# Without django-stubs installed BaseCommand is Any to mypy; with them the ignore is unused.
class Command(BaseCommand):  # type: ignore[misc,unused-ignore]
    help = ("Create or migrate the HotMesh schema of settings.HOTMESH['APP_ID'], and bring "
            "its schedules in line with settings.HOTMESH['SCHEDULES'].")

    def handle(self, *args: Any, **options: Any) -> None:
        conf = load_settings()
        try:
            schema, version = migrate_schema(conf.dsn, conf.app_id)
            self.stdout.write(f"HotMesh schema {schema} is at version {version}")
            synced = sync_schedules()
        except (ConfigurationError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("HotMesh schedules: " + ", ".join(
            f"{what} {len(ids)}" for what, ids in synced.items()))
