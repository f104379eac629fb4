from __future__ import annotations

from django.urls import path

from . import views

app_name = "models_sync"
urlpatterns = [
    path("sync", views.ModelsSyncView.as_view(), name="sync"),
    path("openapi.json", views.openapi, name="openapi"),
]
