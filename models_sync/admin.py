"""The admins' face: read-only model lists and the sync panel ("Synchroniser")."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from . import conf, services
from .models import (
    UNSTABLE_BELOW,
    Favorite,
    HealthCheck,
    LLMModel,
    ModelChange,
    SyncRun,
    WebhookDelivery,
)

SYNC_PERMISSION = "models_sync.sync_models"
HISTORY_LENGTH = 10
TOP_LENGTH = 10
CHANGES_LENGTH = 20
RECOMMENDED_LENGTH = 3
VALUE_LENGTH = 80

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
                "availability_display",
                "created_upstream",
                "first_seen_at",
                "last_seen_at",
            )
        },
    ),
    (_("Health"), {"fields": ("health_display",)}),
    (
        _("Upstream data"),
        {"fields": ("canonical_slug", "metadata", "health", "raw"), "classes": ("collapse",)},
    ),
)

# Labels for values that the services keep in English (stored, or sent by the API).
TASK_LABELS = {
    "chat": _("Chat"),
    "code": _("Code"),
    "reasoning": _("Reasoning"),
    "vision": _("Vision"),
    "long-context": _("Long context"),
    "agent": _("Agent"),
}
HEALTH_LABELS = {
    "up": _("up"),
    "degraded": _("degraded"),
    "down": _("down"),
    "unknown": _("unknown"),
}
# One change, so singular words ("added" alone is the plural count of a sync run in French).
CHANGE_KINDS = {
    ModelChange.Kind.ADDED: pgettext_lazy("model change", "added"),
    ModelChange.Kind.REMOVED: pgettext_lazy("model change", "removed"),
    ModelChange.Kind.RETURNED: pgettext_lazy("model change", "returned"),
    ModelChange.Kind.BECAME_FREE: pgettext_lazy("model change", "became free"),
    ModelChange.Kind.BECAME_PAID: pgettext_lazy("model change", "became paid"),
    ModelChange.Kind.RENAMED: pgettext_lazy("model change", "renamed"),
    ModelChange.Kind.CONTEXT_CHANGED: pgettext_lazy("model change", "context changed"),
    ModelChange.Kind.PRICING_CHANGED: pgettext_lazy("model change", "pricing changed"),
}
FAVORITE_PROBLEMS = {
    "no longer available": _("no longer available"),
    "no longer free": _("no longer free"),
}


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


# --- Presentation helpers (pure: they format what the services and models hold) -------------


def format_percent(share: float | None, *, decimals: int = 0) -> str:
    """A share (0..1) as a localised percentage; up to ``decimals`` decimals, none if whole."""
    if share is None:
        return "—"
    value = round(share * 100, decimals)
    places = decimals if value != int(value) else 0
    return gettext("%(percent)s %%") % {
        "percent": formats.number_format(value, places, use_l10n=True)
    }


def is_unstable(model: LLMModel) -> bool:
    """The same rule as ``LLMModel.objects.unstable()``, on a row already loaded."""
    return model.is_free and model.availability < UNSTABLE_BELOW


def _shorten(text: str, length: int = VALUE_LENGTH) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _grouped(number: int | float) -> str:
    return formats.number_format(number, use_l10n=True, force_grouping=True)


def describe_change_value(kind: str, value: Any) -> str:
    """A change's before or after value in a few words; the result still needs escaping."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return gettext("free") if value else gettext("paid")
    if isinstance(value, int | float):
        return _grouped(value)
    if isinstance(value, str):
        return _shorten(value)
    if isinstance(value, dict) and set(value) == {"isFree"}:
        return gettext("free") if value["isFree"] is True else gettext("paid")
    if isinstance(value, dict) and kind == ModelChange.Kind.PRICING_CHANGED:
        prices = ", ".join(f"{key} {price}" for key, price in value.items())
        return _shorten(prices) if prices else gettext("free")
    if isinstance(value, dict) and "name" in value:
        parts = [str(value["name"])]
        if isinstance(value.get("isFree"), bool):
            parts.append(gettext("free") if value["isFree"] else gettext("paid"))
        context = value.get("contextLength")
        if isinstance(context, int) and not isinstance(context, bool) and context:
            parts.append(gettext("%(tokens)s tokens") % {"tokens": _grouped(context)})
        return _shorten(" · ".join(parts))
    return _shorten(json.dumps(value, ensure_ascii=False, sort_keys=True))


def describe_change(change: ModelChange) -> str:
    """``before → after``, or empty for a change without values (a model that returned)."""
    if change.before is None and change.after is None:
        return ""
    before = describe_change_value(change.kind, change.before)
    after = describe_change_value(change.kind, change.after)
    return f"{before} → {after}"


def health_status(health: Any) -> str:
    """One of up, degraded, down, unknown; empty when the model was never checked."""
    if not isinstance(health, dict) or not health.get("status"):
        return ""
    status = health["status"]
    return status if isinstance(status, str) and status in HEALTH_LABELS else "unknown"


def short_datetime(moment: Any) -> str:
    return formats.date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def _local_time(value: Any) -> str:
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return ""
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def _number(value: Any) -> float | None:
    """A number from the health JSON (written from upstream figures), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def health_lines(health: Any) -> list[tuple[str, str]]:
    """(label, value) pairs of ``LLMModel.health`` for the change page."""
    status = health_status(health)
    if not status:
        return []
    lines = [(gettext("Status"), str(HEALTH_LABELS[status]))]
    uptime = _number(health.get("uptime"))
    if uptime is not None:
        lines.append((gettext("Uptime"), format_percent(uptime / 100, decimals=1)))
    latency = _number(health.get("latencyMs"))
    if latency is not None:
        lines.append((gettext("Latency"), format_duration(round(latency))))
    endpoints = _number(health.get("freeEndpoints"))
    if endpoints is not None:
        lines.append((gettext("Free endpoints"), _grouped(endpoints)))
    providers = health.get("providers")
    if isinstance(providers, list) and providers:
        lines.append((gettext("Providers"), ", ".join(str(p) for p in providers)))
    checked = _local_time(health.get("checkedAt"))
    if checked:
        lines.append((gettext("Checked"), checked))
    if health.get("error"):
        lines.append((gettext("Error"), str(health["error"])))
    probe = health.get("probe")
    if isinstance(probe, dict) and "ok" in probe:
        parts = [gettext("answered") if probe["ok"] is True else gettext("failed")]
        probe_latency = _number(probe.get("latencyMs"))
        if probe_latency is not None:
            parts.append(format_duration(round(probe_latency)))
        probed = _local_time(probe.get("at"))
        if probed:
            parts.append(probed)
        lines.append((gettext("One-token probe"), ", ".join(parts)))
    return lines


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


# --- List filters ---------------------------------------------------------------------------


class FavoriteFilter(admin.SimpleListFilter):
    title = _("my favourites")
    parameter_name = "favorite"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Only my favourites")), ("no", _("Not my favourites"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        mine = Favorite.objects.filter(user=request.user, llm_model=OuterRef("pk"))
        if self.value() == "yes":
            return queryset.filter(Exists(mine))
        if self.value() == "no":
            return queryset.exclude(Exists(mine))
        return queryset


class StabilityFilter(admin.SimpleListFilter):
    title = _("stability")
    parameter_name = "stability"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("unstable", _("Unstable (free, seen in under half the syncs)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "unstable":
            return queryset.unstable()
        return queryset


class HealthFilter(admin.SimpleListFilter):
    title = _("health")
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(status, label) for status, label in HEALTH_LABELS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in HEALTH_LABELS:
            return queryset.filter(health__status=self.value())
        return queryset


class KindFilter(admin.SimpleListFilter):
    title = _("kind")
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(str(kind), label) for kind, label in CHANGE_KINDS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in CHANGE_KINDS:
            return queryset.filter(kind=self.value())
        return queryset


class RunFilter(admin.SimpleListFilter):
    """The changes of one sync run: the recent runs that changed something, and the chosen one."""

    title = _("sync run")
    parameter_name = "run"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        chosen = self.value() if (self.value() or "").isdigit() else None
        runs = SyncRun.objects.filter(Q(changes_count__gt=0) | Q(pk=chosen or 0)).only(
            "pk", "started_at", "trigger", "changes_count"
        )[:HISTORY_LENGTH]
        return [
            (
                str(run.pk),
                "{} ({})".format(
                    formats.date_format(
                        timezone.localtime(run.started_at), "SHORT_DATETIME_FORMAT"
                    ),
                    run.changes_count,
                ),
            )
            for run in runs
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if (self.value() or "").isdigit():
            return queryset.filter(run_id=int(self.value()))
        return queryset


# --- Read-only admins -----------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the syncs and their tasks: viewable, never edited by hand."""

    show_full_result_count = False

    class Media:
        css = {"all": ("models_sync/admin/panel.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LLMModel)
class LLMModelAdmin(ReadOnlyAdmin):
    list_display = (
        "favorite_star",
        "model_name",
        "context_length",
        "has_vision",
        "is_free",
        "availability_percent",
        "health_badge",
        "available_since",
    )
    list_display_links = ("model_name",)
    list_filter = (
        FavoriteFilter,
        "author",
        "is_free",
        "has_vision",
        "is_available",
        StabilityFilter,
        HealthFilter,
        "source",
    )
    search_fields = ("model_id", "name", "description")
    fieldsets = MODEL_FIELDSETS
    readonly_fields = tuple(f for _title, opts in MODEL_FIELDSETS for f in opts["fields"])
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        mine = Favorite.objects.filter(user=request.user, llm_model=OuterRef("pk"))
        return super().get_queryset(request).annotate(is_favorite=Exists(mine))

    @admin.display(description=_("name"), ordering="name")
    def model_name(self, model: LLMModel) -> str:
        # The id (author/slug) under the name: what scripts use, and the author at a glance.
        return format_html('{}<span class="models-sync-id">{}</span>', model.name, model.model_id)

    @admin.display(description="★", ordering="-is_favorite")
    def favorite_star(self, model: LLMModel) -> str:
        # The button submits the row's form, rendered outside the changelist form (forms cannot
        # nest) by change_list.html.
        if model.is_favorite:
            action, star, label = "remove", "★", gettext("Remove from my favourites")
        else:
            action, star, label = "add", "☆", gettext("Add to my favourites")
        return format_html(
            '<button type="submit" form="models-sync-favorite-{}" name="action" value="{}" '
            'class="models-sync-star models-sync-star--{}" title="{}" aria-label="{}" '
            'data-testid="star" data-model="{}">{}</button>',
            model.pk,
            action,
            "on" if model.is_favorite else "off",
            label,
            label,
            model.model_id,
            star,
        )

    @admin.display(description=_("availability"), ordering="availability")
    def availability_percent(self, model: LLMModel) -> str:
        if is_unstable(model):
            return format_html(
                '{} <span class="models-sync-badge models-sync-badge--unstable" '
                'title="{}">{}</span>',
                format_percent(model.availability),
                gettext("Seen free in under %(percent)s of the recent syncs")
                % {"percent": format_percent(UNSTABLE_BELOW)},
                gettext("unstable"),
            )
        return format_percent(model.availability)

    @admin.display(description=_("availability"))
    def availability_display(self, model: LLMModel) -> str:
        return self.availability_percent(model)

    @admin.display(description=_("health"))
    def health_badge(self, model: LLMModel) -> str:
        status = health_status(model.health)
        if not status:
            return "—"
        uptime = _number(model.health.get("uptime"))
        return format_html(
            '<span class="models-sync-badge models-sync-badge--{}">{}</span>{}',
            status,
            HEALTH_LABELS[status],
            format_html(
                ' <span class="models-sync-uptime">{}</span>',
                format_percent(uptime / 100, decimals=1),
            )
            if uptime is not None
            else "",
        )

    @admin.display(description=_("available"), ordering="is_available")
    def available_since(self, model: LLMModel) -> str:
        """The available flag; for a model that left, when the syncs last saw it."""
        icon = format_html(
            '<img src="{}" alt="{}">',
            static(f"admin/img/icon-{'yes' if model.is_available else 'no'}.svg"),
            model.is_available,
        )
        if model.is_available:
            return icon
        return format_html(
            '{} <time datetime="{}" title="{}" class="models-sync-last-seen">{}</time>',
            icon,
            model.last_seen_at.isoformat(),
            formats.date_format(timezone.localtime(model.last_seen_at), "DATETIME_FORMAT"),
            gettext("last seen %(age)s") % {"age": naturaltime(model.last_seen_at)},
        )

    @admin.display(description=_("health"))
    def health_display(self, model: LLMModel) -> str:
        lines = health_lines(model.health)
        if not lines:
            return gettext("Not checked yet.")
        return format_html(
            '<dl class="models-sync-health">{}</dl>',
            format_html_join("", "<dt>{}</dt><dd>{}</dd>", lines),
        )

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
            path(
                "favorite/",
                self.admin_site.admin_view(require_POST(self.favorite_view)),
                name="{}_{}_favorite".format(*info),
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "panel_url": self._panel_url(),
            "favorite_url": self._url("favorite"),
        }
        return super().changelist_view(request, extra_context)

    def _url(self, name: str) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{name}"
        )

    def _panel_url(self) -> str:
        return self._url("panel")

    def panel_view(self, request: HttpRequest) -> TemplateResponse:
        """Reads the database only: the panel must render when OpenRouter is down."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        source = request.GET.get("source") or None
        catalogue = services.load_catalogue_from_db(now=now)
        sources = list(
            LLMModel.objects.order_by("source")
            .values("source")
            .annotate(available=Count("pk", filter=Q(is_available=True)))
            .values_list("source", "available")
        )
        if source is None:
            models, total_available = catalogue.models, catalogue.total_available
        else:
            models = services.filter_app_models(catalogue.models, source=source)
            total_available = dict(sources).get(source, 0)
        stats = services.compute_stats(models, total_available=total_available)
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
        favorites = [
            favorite
            for favorite in services.list_favorites(user=request.user)
            if source is None or favorite.llm_model.source == source
        ]
        starred = {(f.llm_model.source, f.llm_model.model_id) for f in favorites}
        last_sync = catalogue.last_sync
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("OpenRouter sync panel"),
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "source": source,
            "sources": sources if len(sources) > 1 or source else [],
            # Carried by the panel's links to the model list (its "source" list filter).
            "source_query": "&" + urlencode({"source__exact": source}) if source else "",
            "stats": stats,
            "free_count": stats["free"],
            "total_available": total_available,
            "bars": bars,
            "authors": sorted(by_author),
            "top_models": [
                {"model": m, "favorite": (m["source"], m["id"]) in starred}
                for m in models[:TOP_LENGTH]
            ],
            "favorites": [
                {
                    "favorite": f,
                    "model": f.llm_model,
                    "problem": FAVORITE_PROBLEMS.get(f.problem, f.problem),
                }
                for f in favorites
            ],
            "recommended": [
                {
                    "task": task,
                    "label": TASK_LABELS.get(task, task),
                    "results": services.recommend(task, limit=RECOMMENDED_LENGTH, models=models),
                }
                for task in services.TASKS
            ],
            **self._last_success_changes(source),
            # Tier 2 carries the sync metrics (same query); sync_metrics() only as a fallback.
            "metrics": self._metrics(catalogue.metrics or services.sync_metrics(now=now)),
            "last_sync": last_sync,
            "stale": last_sync is None or last_sync < now - timedelta(hours=conf.fresh_hours()),
            "last_run": last_run,
            "last_run_explanation": explain_run(last_run) if last_run else "",
            "runs": runs,
            "schedule": next_scheduled_run(),
            "sync_running": services.sync_is_running(),
            "can_sync": request.user.has_perm(SYNC_PERMISSION),
            "sync_url": self._url("sync"),
            "favorite_url": self._url("favorite"),
            "panel_path": request.get_full_path(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/models_sync/llmmodel/panel.html", context)

    @staticmethod
    def _last_success_changes(source: str | None) -> dict[str, Any]:
        """The last successful run (of the catalogue, if one is chosen) and its first changes."""
        runs = SyncRun.objects.filter(status=SyncRun.Status.SUCCESS).defer("free_ids", "source")
        if source is not None:
            runs = runs.filter(catalogue=source)
        run = runs.order_by("-started_at", "-pk").first()
        changes = []
        if run is not None and run.changes_count:
            changes = list(run.changes.order_by("kind", "model_id", "pk")[:CHANGES_LENGTH])
        return {
            "changes_run": run,
            "changes": [
                {
                    "change": change,
                    "kind": CHANGE_KINDS.get(change.kind, change.kind),
                    "values": describe_change(change),
                }
                for change in changes
            ],
            "changes_url": (
                reverse("admin:models_sync_modelchange_changelist") + f"?run={run.pk}"
                if run is not None
                else ""
            ),
        }

    @staticmethod
    def _metrics(metrics: dict[str, Any]) -> dict[str, Any]:
        last_success = parse_datetime(metrics["lastSuccess"]) if metrics["lastSuccess"] else None
        return {
            "days": conf.history_days(),
            "syncs": metrics["syncs"],
            "success_rate": format_percent(metrics["successRate"]) if metrics["syncs"] else "—",
            "mean_latency": format_duration(metrics["meanLatencyMs"])
            if metrics["syncs"] and metrics["meanLatencyMs"]
            else "—",
            "last_success": last_success,
        }

    def favorite_view(self, request: HttpRequest) -> HttpResponse:
        """Star or unstar a model for the current user (any staff user who can see the models)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        action = request.POST.get("action")
        model_id = request.POST.get("model_id", "").strip()
        source = request.POST.get("source", "").strip()
        if action not in ("add", "remove") or not model_id or not source:
            return HttpResponseBadRequest(
                gettext("Expected action (add or remove), model_id and source.")
            )
        if action == "add":
            try:
                created = services.add_favorite(user=request.user, model_id=model_id, source=source)
            except services.UnknownModel:
                messages.error(request, gettext("Unknown model: %(model)s") % {"model": model_id})
            else:
                if created:
                    messages.success(
                        request,
                        gettext("Added to your favourites: %(model)s") % {"model": model_id},
                    )
                else:
                    messages.info(
                        request,
                        gettext("Already one of your favourites: %(model)s") % {"model": model_id},
                    )
        elif services.remove_favorite(user=request.user, model_id=model_id, source=source):
            messages.success(
                request, gettext("Removed from your favourites: %(model)s") % {"model": model_id}
            )
        else:
            messages.info(
                request,
                gettext("Not one of your favourites: %(model)s") % {"model": model_id},
            )
        fallback = reverse(f"{self.admin_site.name}:models_sync_llmmodel_changelist")
        return HttpResponseRedirect(_safe_next(request, fallback))

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
class SyncRunAdmin(ReadOnlyAdmin):
    """The sync history: written only by syncs, so it is read-only here."""

    list_display = (
        "started_at",
        "trigger",
        "catalogue",
        "status",
        "duration_ms",
        "fetched_count",
        "free_count",
        "added_count",
        "updated_count",
        "unavailable_count",
        "changes_link",
        "short_error",
    )
    list_filter = ("status", "trigger", "catalogue")
    ordering = ("-started_at", "-pk")
    date_hierarchy = "started_at"

    @admin.display(description=_("error"))
    def short_error(self, run: SyncRun) -> str:
        return _shorten(run.error)

    @admin.display(description=_("changes"), ordering="changes_count")
    def changes_link(self, run: SyncRun) -> str:
        if not run.changes_count:
            return "0"
        return format_html(
            '<a href="{}?run={}">{}</a>',
            reverse("admin:models_sync_modelchange_changelist"),
            run.pk,
            run.changes_count,
        )


@admin.register(ModelChange)
class ModelChangeAdmin(ReadOnlyAdmin):
    """The changelog of the catalogue, newest first."""

    list_display = ("changed_at", "model_id", "kind_label", "before_after", "run_link")
    list_display_links = ("changed_at",)
    list_filter = (KindFilter, RunFilter, "author")
    search_fields = ("model_id",)
    ordering = ("-timestamp", "-pk")
    date_hierarchy = "timestamp"
    list_select_related = ("run",)
    fields = (
        "timestamp",
        "model_id",
        "author",
        "kind_label",
        "before_after",
        "before",
        "after",
        "run",
    )
    readonly_fields = fields

    @admin.display(description=_("time"), ordering="timestamp")
    def changed_at(self, change: ModelChange) -> str:
        return short_datetime(change.timestamp)

    @admin.display(description=_("kind"), ordering="kind")
    def kind_label(self, change: ModelChange) -> str:
        return CHANGE_KINDS.get(change.kind, change.kind)

    @admin.display(description=_("before → after"))
    def before_after(self, change: ModelChange) -> str:
        return describe_change(change) or "—"

    @admin.display(description=pgettext_lazy("sync run, short", "run"), ordering="run")
    def run_link(self, change: ModelChange) -> str:
        # Short: the change's time is the run's start, shown in the first column.
        return format_html(
            '<a href="{}" title="{}">#{}</a>',
            reverse("admin:models_sync_syncrun_change", args=[change.run_id]),
            f"{short_datetime(change.run.started_at)} · {change.run.get_trigger_display()}",
            change.run_id,
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """What happened to each webhook POST (written by the django-q2 task)."""

    list_display = ("sent_at", "target", "was_delivered", "http_status", "short_error", "sync_run")
    list_filter = ("delivered",)
    search_fields = ("url",)
    ordering = ("-created_at", "-pk")
    list_select_related = ("run",)
    fields = ("sent_at", "target", "was_delivered", "http_status", "full_error", "sync_run")
    readonly_fields = fields

    @admin.display(description=_("sent"), ordering="created_at")
    def sent_at(self, delivery: WebhookDelivery) -> Any:
        return delivery.created_at

    @admin.display(description=_("URL"), ordering="url")
    def target(self, delivery: WebhookDelivery) -> str:
        return delivery.url

    @admin.display(description=_("delivered"), boolean=True, ordering="delivered")
    def was_delivered(self, delivery: WebhookDelivery) -> bool:
        return delivery.delivered

    @admin.display(description=_("HTTP status"), ordering="status_code")
    def http_status(self, delivery: WebhookDelivery) -> Any:
        return delivery.status_code

    @admin.display(description=_("error"))
    def short_error(self, delivery: WebhookDelivery) -> str:
        return _shorten(delivery.error)

    @admin.display(description=_("error"))
    def full_error(self, delivery: WebhookDelivery) -> str:
        return delivery.error

    @admin.display(description=_("sync run"), ordering="run__started_at")
    def sync_run(self, delivery: WebhookDelivery) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:models_sync_syncrun_change", args=[delivery.run_id]),
            delivery.run,
        )


class UserFilter(admin.SimpleListFilter):
    """The users who have favourites (not every user of the site)."""

    title = _("user")
    parameter_name = "user"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        rows = (
            Favorite.objects.order_by("user__username")
            .values_list("user_id", "user__username")
            .distinct()
        )
        return [(str(pk), username) for pk, username in rows]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if (self.value() or "").isdigit():
            return queryset.filter(user_id=int(self.value()))
        return queryset


@admin.register(Favorite)
class FavoriteAdmin(ReadOnlyAdmin):
    """Who starred what; a favourite that is no longer free or available says why."""

    list_display = ("owner", "model_id", "catalogue", "added_at", "problem_label")
    list_filter = (UserFilter,)
    search_fields = ("llm_model__model_id", "user__username")
    ordering = ("-created_at", "-pk")
    list_select_related = ("user", "llm_model")
    fields = ("owner", "model_id", "catalogue", "added_at", "problem_label")
    readonly_fields = fields

    @admin.display(description=_("user"), ordering="user__username")
    def owner(self, favorite: Favorite) -> str:
        return favorite.user.get_username()

    @admin.display(description=_("model"), ordering="llm_model__model_id")
    def model_id(self, favorite: Favorite) -> str:
        return favorite.llm_model.model_id

    @admin.display(description=_("catalogue"), ordering="llm_model__source")
    def catalogue(self, favorite: Favorite) -> str:
        return favorite.llm_model.source

    @admin.display(description=pgettext_lazy("favourite", "added"), ordering="created_at")
    def added_at(self, favorite: Favorite) -> Any:
        return favorite.created_at

    @admin.display(description=_("needs attention"))
    def problem_label(self, favorite: Favorite) -> str:
        problem = favorite.problem
        if not problem:
            return "—"
        return format_html(
            '<span class="models-sync-badge models-sync-badge--problem">{}</span>',
            FAVORITE_PROBLEMS.get(problem, problem),
        )


@admin.register(HealthCheck)
class HealthCheckAdmin(ReadOnlyAdmin):
    """The short history of health passes and probes."""

    list_display = (
        "checked_at",
        "llm_model",
        "kind",
        "ok",
        "status",
        "uptime",
        "latency_ms",
        "free_endpoints",
        "short_error",
    )
    list_filter = ("kind", "ok")
    search_fields = ("llm_model__model_id",)
    ordering = ("-checked_at", "-pk")
    date_hierarchy = "checked_at"
    list_select_related = ("llm_model",)

    @admin.display(description=_("error"))
    def short_error(self, check: HealthCheck) -> str:
        return _shorten(check.error)


# The admin index links to the panel. An app template cannot shadow admin/index.html (the admin
# app comes first in INSTALLED_APPS), so the default site gets an index template that extends it,
# unless the project already chose its own.
if admin.site.index_template is None:
    admin.site.index_template = "admin/models_sync/index.html"
