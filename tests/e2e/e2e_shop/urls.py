from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("orders/", views.place_order),
    path("orders/<str:workflow_id>/", views.order_status),
    path("admin/", admin.site.urls),
    path("hotmesh/", include("hotmesh_sync.contrib.django.urls")),
]
