"""``path("hotmesh/", include("hotmesh_sync.contrib.django.urls"))``: the dashboard."""

from __future__ import annotations

from django.urls import re_path

from .dashboard import dashboard_view

app_name = "hotmesh"
urlpatterns = [re_path(r"^(?P<subpath>.*)$", dashboard_view, name="dashboard")]
