"""settings.HOTMESH["SCHEDULES"] in the e2e_shop Django project: brought in line by
manage.py hotmesh_migrate and hotmesh_worker, and fired by the worker."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from hotmesh_sync import MemFlow
from hotmesh_sync.schedule_spec import tick_workflow_id
from hotmesh_sync.store.queries import render

django = pytest.importorskip("django")

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.management import CommandError, call_command  # noqa: E402
from django.test import override_settings  # noqa: E402

UTC = timezone.utc


@pytest.fixture(scope="module")
def hotmesh(pg_dsn: str, module_app_id: str) -> Iterator[dict[str, Any]]:
    """The project's settings.HOTMESH, on this module's app id.

    Django reads its settings once per process (another test module may have
    done so first), so the app id is put in place with override_settings and
    the project's MemFlow is made again from it."""
    variables = {"E2E_SHOP_DSN": pg_dsn, "E2E_SHOP_APP_ID": module_app_id,
                 "DJANGO_SETTINGS_MODULE": "e2e_shop.settings"}
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    django.setup()
    from django.conf import settings

    from hotmesh_sync.contrib.django import _lazy

    _lazy.close()
    base = {**settings.HOTMESH, "APP_ID": module_app_id}
    with override_settings(HOTMESH=base):
        yield base
        _lazy.close()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def project_memflow() -> MemFlow:
    from hotmesh_sync.contrib.django import get_memflow

    return get_memflow()


def migrate() -> str:
    out = io.StringIO()
    call_command("hotmesh_migrate", stdout=out)
    return out.getvalue()


def test_migrate_brings_declared_schedules_in_line(hotmesh: dict[str, Any]) -> None:
    declared: dict[str, dict[str, Any]] = {
        "nightly": {"cron": "0 2 * * *", "workflow_name": "ping", "args": ["night"],
                    "task_queue": "shop", "timezone": "Europe/Berlin"},
        "hourly": {"cron": "@hourly", "workflow_name": "ping", "task_queue": "shop"},
    }
    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": declared}):
        assert migrate().splitlines()[1] == "HotMesh schedules: created 2, updated 0, deleted 0"
    mf = project_memflow()
    assert [(s["id"], s["declared"]) for s in mf.schedules.list()] == [
        ("hourly", True), ("nightly", True)]
    mf.schedules.create("by-hand", cron="@daily", workflow_name="ping", task_queue="shop")
    mf.schedules.pause("nightly")  # an operator's pause outlives the next deploy

    declared = {"nightly": {**declared["nightly"], "cron": "30 3 * * *"}}
    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": declared}):
        assert migrate().splitlines()[1] == "HotMesh schedules: created 0, updated 1, deleted 1"
    shown = {s["id"]: s for s in mf.schedules.list()}
    assert sorted(shown) == ["by-hand", "nightly"]
    assert (shown["nightly"]["cron"], shown["nightly"]["paused"]) == ("30 3 * * *", True)
    assert shown["by-hand"]["declared"] is False

    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": {}}):
        migrate()
    assert [s["id"] for s in mf.schedules.list()] == ["by-hand"]


def test_bad_declarations_are_refused(hotmesh: dict[str, Any]) -> None:
    from hotmesh_sync.contrib.django import load_settings

    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": ["nightly"]}), pytest.raises(
            ImproperlyConfigured, match="SCHEDULES"):
        load_settings()
    bad = {"nightly": {"cron": "0 25 * * *", "workflow_name": "ping"}}
    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": bad}), pytest.raises(
            CommandError, match="schedule 'nightly'"):
        migrate()
    typo = {"nightly": {"cron": "@daily", "workflow": "ping"}}
    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": typo}), pytest.raises(
            CommandError, match="unknown keys"):
        migrate()


def test_worker_command_syncs_and_fires(hotmesh: dict[str, Any], pg_dsn: str) -> None:
    """manage.py hotmesh_worker brings the settings in line and fires their ticks:
    here one missed while no worker ran, whose workflow is the worker's one task."""
    soon = (datetime.now(UTC) + timedelta(hours=12)).replace(second=0, microsecond=0)
    declared = {"restock": {"cron": f"{soon.minute} {soon.hour} * * *",
                            "workflow_name": "ping", "args": ["restocked"],
                            "task_queue": "shop-sched"}}
    with override_settings(HOTMESH={**hotmesh, "SCHEDULES": declared}):
        migrate()
        mf = project_memflow()
        missed = soon - timedelta(days=1)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(render("UPDATE {schema}.schedules SET next_run_at = %s", mf.schema),
                         [missed])
        call_command("hotmesh_worker", "--task-queue", "shop-sched", "--max-tasks", "1",
                     "--concurrency", "1", "--max-runtime", "30s")
    workflow_id = tick_workflow_id("restock", missed)
    assert mf.workflow.get_handle(workflow_id).result(timeout=1) == "restocked"
    assert mf.schedules.get("restock")["last_workflow_id"] == workflow_id
