from __future__ import annotations

from django.urls import path

from . import views

app_name = "models_sync"
urlpatterns = [
    path("sync", views.ModelsSyncView.as_view(), name="sync"),
    path("changes", views.ModelChangesView.as_view(), name="changes"),
    path("changes.atom", views.ModelChangesFeed(), name="changes-feed"),
    path("favorites", views.FavoritesView.as_view(), name="favorites"),
    path("recommend", views.RecommendView.as_view(), name="recommend"),
    path("openapi.json", views.openapi, name="openapi"),
]
