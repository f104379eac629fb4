"""The admins' face: read-only model lists and the sync panel ("Synchroniser")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from . import conf, services
from .models import LLMModel, SyncRun

SYNC_PERMISSION = "models_sync.sync_models"
HISTORY_LENGTH = 10
TOP_LENGTH = 10

# Every LLMModel field is written by the sync, which would overwrite a hand edit at the next run.
MODEL_FIELDSETS = (
    (
        None,
        {
            "fields": (
                "model_id",
                "source",
                "name",
                "author",
                "description",
                "category",
                "quality_rank",
            )
        },
    ),
    (
        _("Capabilities"),
        {
            "fields": (
                "context_length",
                "has_vision",
                "input_modalities",
                "output_modalities",
                "supported_parameters",
            )
        },
    ),
    (_("Price"), {"fields": ("is_free", "non_free_reason", "pricing")}),
    (
        _("Life cycle"),
        {
            "fields": (
                "is_available",
                "availability",
                "created_upstream",
                "first_seen_at",
                "last_seen_at",
            )
        },
    ),
    (
        _("Upstream data"),
        {"fields": ("canonical_slug", "metadata", "raw"), "classes": ("collapse",)},
    ),
)


def explain_run(run: SyncRun) -> str:
    """What an admin needs to know about a run, in plain words (the raw error is shown apart)."""
    if run.status == SyncRun.Status.SUCCESS:
        return gettext("The last sync succeeded.")
    if run.status == SyncRun.Status.RUNNING:
        return gettext("A sync is in progress.")
    if run.status == SyncRun.Status.REFUSED:
        if "already running" in run.error:
            return gettext("Another sync was already running, so this one did nothing.")
        return gettext(
            "OpenRouter's answer looked wrong (empty, or most models gone), so nothing was changed."
        )
    status = run.http_status or 0
    if status == 429:
        return gettext("OpenRouter is limiting our requests (HTTP 429); nothing was changed.")
    if status in (401, 403):
        return gettext(
            "OpenRouter refused access (HTTP %(status)d); check the API key. Nothing was changed."
        ) % {"status": status}
    if status >= 500:
        return gettext("OpenRouter is having trouble (HTTP %(status)d); nothing was changed.") % {
            "status": status
        }
    if status >= 400:
        return gettext(
            "OpenRouter rejected the request (HTTP %(status)d); nothing was changed."
        ) % {"status": status}
    if "timeout" in run.error:
        return gettext("OpenRouter did not answer in time; nothing was changed.")
    if run.error.startswith("could not reach"):
        return gettext("OpenRouter could not be reached (network problem); nothing was changed.")
    if run.error.startswith("writing the models failed"):
        return gettext("Saving the models to the database failed; nothing was changed.")
    return gettext("OpenRouter's answer could not be used; nothing was changed.")


def format_duration(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "—"
    if milliseconds < 1000:
        return gettext("%(ms)d ms") % {"ms": milliseconds}
    return gettext("%(seconds)s s") % {
        "seconds": formats.number_format(milliseconds / 1000, 1, use_l10n=True)
    }


def next_scheduled_run() -> Any | None:
    """The django-q2 schedule of the periodic sync, if one was set up."""
    from django_q.models import Schedule

    return Schedule.objects.filter(name=conf.schedule_name()).first()


@admin.register(LLMModel)
class LLMModelAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "author",
        "context_length",
        "has_vision",
        "is_free",
        "is_available",
        "last_seen_at",
    )
    list_filter = ("author", "is_free", "has_vision", "is_available", "source")
    search_fields = ("model_id", "name", "description")
    fieldsets = MODEL_FIELDSETS
    readonly_fields = tuple(f for _title, opts in MODEL_FIELDSETS for f in opts["fields"])
    list_per_page = 50
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LLMModel | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LLMModel | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "panel/",
                self.admin_site.admin_view(self.panel_view),
                name="{}_{}_panel".format(*info),
            ),
            path(
                "panel/sync/",
                self.admin_site.admin_view(require_POST(self.sync_view)),
                name="{}_{}_sync".format(*info),
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "panel_url": self._panel_url()}
        return super().changelist_view(request, extra_context)

    def _panel_url(self) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_panel")

    def panel_view(self, request: HttpRequest) -> TemplateResponse:
        """Reads the database only: the panel must render when OpenRouter is down."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        catalogue = services.load_catalogue_from_db(now=now)
        stats = catalogue.stats
        runs = list(SyncRun.objects.defer("free_ids", "source")[:HISTORY_LENGTH])
        for run in runs:
            run.duration_label = format_duration(run.duration_ms)
        last_run = runs[0] if runs else None
        by_author = stats["byProvider"]
        top = max(by_author.values(), default=0)
        bars = [
            {"author": author, "count": count, "percent": max(1, round(count * 100 / top))}
            for author, count in by_author.items()
        ]
        last_sync = catalogue.last_sync
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("OpenRouter sync panel"),
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "stats": stats,
            "free_count": stats["free"],
            "total_available": catalogue.total_available,
            "bars": bars,
            "authors": sorted(by_author),
            "top_models": catalogue.models[:TOP_LENGTH],
            "last_sync": last_sync,
            "stale": last_sync is None or last_sync < now - timedelta(hours=conf.fresh_hours()),
            "last_run": last_run,
            "last_run_explanation": explain_run(last_run) if last_run else "",
            "runs": runs,
            "schedule": next_scheduled_run(),
            "sync_running": services.sync_is_running(),
            "can_sync": request.user.has_perm(SYNC_PERMISSION),
            "sync_url": reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_sync"
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/models_sync/llmmodel/panel.html", context)

    def sync_view(self, request: HttpRequest) -> HttpResponseRedirect:
        # Checked here, not only by hiding the button: a forged POST must not start a sync.
        if not request.user.has_perm(SYNC_PERMISSION):
            raise PermissionDenied
        try:
            run = services.sync_models(trigger=SyncRun.Trigger.ADMIN)
        except services.SyncAlreadyRunning:
            messages.warning(request, gettext("A sync is already running; try again shortly."))
        except services.SyncRefused as exc:
            messages.warning(request, gettext("Sync refused: %(error)s") % {"error": exc.message})
        except services.SyncFailed as exc:
            messages.error(request, gettext("Sync failed: %(error)s") % {"error": exc.message})
        else:
            messages.success(
                request,
                ngettext(
                    "%(count)d model synchronised",
                    "%(count)d models synchronised",
                    run.free_count,
                )
                % {"count": run.free_count},
            )
        return HttpResponseRedirect(self._panel_url())


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    """The sync history: written only by syncs, so it is read-only here."""

    list_display = (
        "started_at",
        "trigger",
        "status",
        "duration_ms",
        "fetched_count",
        "free_count",
        "added_count",
        "updated_count",
        "unavailable_count",
        "changes_count",
        "short_error",
    )
    list_filter = ("status", "trigger")
    ordering = ("-started_at", "-pk")
    date_hierarchy = "started_at"
    show_full_result_count = False

    @admin.display(description=_("error"))
    def short_error(self, run: SyncRun) -> str:
        return run.error if len(run.error) <= 80 else run.error[:79] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SyncRun | None = None) -> bool:
        return False


# The admin index links to the panel. An app template cannot shadow admin/index.html (the admin
# app comes first in INSTALLED_APPS), so the default site gets an index template that extends it,
# unless the project already chose its own.
if admin.site.index_template is None:
    admin.site.index_template = "admin/models_sync/index.html"
