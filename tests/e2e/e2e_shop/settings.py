"""Settings of the test project. The database and app id come from the environment,
set by the test fixture before django.setup()."""

from __future__ import annotations

import os
from importlib.util import find_spec

from psycopg.conninfo import conninfo_to_dict

_db = conninfo_to_dict(os.environ["E2E_SHOP_DSN"])

SECRET_KEY = "e2e-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
ROOT_URLCONF = "e2e_shop.urls"
# Sessions and auth for the dashboard's staff-only mount (test_dashboard_django.py), and
# Django's CSRF middleware, which the dashboard's mount steps around (it has its own).
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
# e2e_shop for its model (stock.py writes it inside a transactional activity); the admin
# for its login page, where the dashboard sends whoever is not staff.
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages",
                  "hotmesh_sync.contrib.django", "e2e_shop"]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth",
                                       "django.contrib.messages.context_processors.messages"]},
}]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.get("dbname", "postgres"),
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
    }
}
HOTMESH = {
    "APP_ID": os.environ["E2E_SHOP_APP_ID"],
    "WORKFLOWS": ["e2e_shop.workflows"],
    "TASK_QUEUE": "shop",
    "CONCURRENCY": 2,
    "POOL_SIZE": 4,
}

# Django's Tasks framework, where there is one: Django 6, or the backport before it.
# Without it the project has no TASKS (and the tasks tests are skipped).
if find_spec("django.tasks") or find_spec("django_tasks"):
    TASKS = {
        "default": {
            "BACKEND": "hotmesh_sync.contrib.django.tasks.HotMeshBackend",
            "QUEUES": ["default", "emails"],
        },
        # A second attempt after a failure (Django's tasks have none by default).
        "retrying": {
            "BACKEND": "hotmesh_sync.contrib.django.tasks.HotMeshBackend",
            "QUEUES": ["default"],
            "OPTIONS": {"MAX_ATTEMPTS": 2},
        },
    }
