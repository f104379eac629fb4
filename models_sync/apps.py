from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def ensure_schedule(**kwargs: Any) -> None:
    """Create or update the sync schedule after every migrate: idempotent, follows the setting."""
    from django_q.models import Schedule

    from . import conf

    name = conf.schedule_name()
    minutes = conf.interval_minutes()
    if minutes <= 0:
        Schedule.objects.filter(name=name).delete()
        return
    Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": "models_sync.tasks.run_scheduled_sync",
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )


class ModelsSyncConfig(AppConfig):
    name = "models_sync"
    verbose_name = _("OpenRouter models")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedule, sender=self, dispatch_uid="models_sync_schedule")
