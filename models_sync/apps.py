from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _schedule(name: str, func: str, minutes: int) -> None:
    from django_q.models import Schedule

    if minutes <= 0:
        Schedule.objects.filter(name=name).delete()
        return
    Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": func,
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )


def ensure_schedule(**kwargs: Any) -> None:
    """Create or update the schedules after every migrate: idempotent, follows the settings.

    The sync (every 6 h), the endpoints health pass (hourly) and, only with an OpenRouter key,
    the daily one-token probe.
    """
    from . import conf

    _schedule(conf.schedule_name(), "models_sync.tasks.run_scheduled_sync", conf.interval_minutes())
    _schedule(
        "openrouter-health", "models_sync.tasks.run_health_check", conf.health_interval_minutes()
    )
    _schedule(
        "openrouter-probe",
        "models_sync.tasks.run_probes",
        24 * 60 if conf.api_key() else 0,
    )


class ModelsSyncConfig(AppConfig):
    name = "models_sync"
    verbose_name = _("OpenRouter models")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedule, sender=self, dispatch_uid="models_sync_schedule")
