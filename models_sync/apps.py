from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ModelsSyncConfig(AppConfig):
    name = "models_sync"
    verbose_name = _("OpenRouter models")
    default_auto_field = "django.db.models.BigAutoField"
