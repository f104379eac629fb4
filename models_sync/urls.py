from __future__ import annotations

app_name = "models_sync"
urlpatterns: list = []
