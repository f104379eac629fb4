from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

UNSTABLE_BELOW = 0.5


class RecordText(str):
    """An upstream record's JSON text exactly as received (the text ``content_hash`` covers).

    Assigned to ``LLMModel.raw``, it is stored as it is: the sync does not decode it to encode
    it again, which was a fifth of the cost of writing a row. Read back, ``raw`` is a dict."""


class RecordEncoder(json.JSONEncoder):
    def encode(self, o: Any) -> str:
        return str.__str__(o) if isinstance(o, RecordText) else super().encode(o)


class LLMModelQuerySet(models.QuerySet["LLMModel"]):
    """The query API other Django apps use; every method chains."""

    def free(self) -> LLMModelQuerySet:
        return self.filter(is_free=True)

    def available(self) -> LLMModelQuerySet:
        return self.filter(is_available=True)

    def with_vision(self) -> LLMModelQuerySet:
        return self.filter(has_vision=True)

    def from_source(self, source: str) -> LLMModelQuerySet:
        return self.filter(source=source)

    def by_author(self, author: str) -> LLMModelQuerySet:
        return self.filter(author=author.strip().lstrip("~").lower())

    def min_context(self, tokens: int) -> LLMModelQuerySet:
        return self.filter(context_length__gte=tokens)

    def search(self, text: str) -> LLMModelQuerySet:
        text = text.strip()
        if not text:
            return self
        return self.filter(
            Q(model_id__icontains=text) | Q(name__icontains=text) | Q(description__icontains=text)
        )

    def supporting(self, parameter: str) -> LLMModelQuerySet:
        # A delimited copy of supported_parameters: JSON "contains" is not available on SQLite.
        return self.filter(parameters_text__contains=f"|{parameter.strip()}|")

    def by_quality(self) -> LLMModelQuerySet:
        return self.order_by("quality_rank", "model_id")

    def by_availability(self) -> LLMModelQuerySet:
        return self.order_by("-availability", "quality_rank", "model_id")

    def unstable(self) -> LLMModelQuerySet:
        """Free models seen free in under half of the recent syncs (the roadmap's prediction)."""
        return self.filter(is_free=True, availability__lt=UNSTABLE_BELOW)

    def filter_models(
        self,
        *,
        provider: str | None = None,
        has_vision: bool | None = None,
        min_context_length: int | None = None,
        search: str | None = None,
        source: str | None = None,
        user: Any = None,
    ) -> LLMModelQuerySet:
        """The seed hook's ``filterModels``: every given criterion must hold.

        With ``user``, that user's favourites come first (then the seed's order).
        """
        qs = self
        if user is not None and getattr(user, "is_authenticated", False):
            qs = qs.annotate(
                is_favorite=Exists(Favorite.objects.filter(user=user, llm_model=OuterRef("pk")))
            ).order_by("-is_favorite", "quality_rank", "model_id")
        if source:
            qs = qs.from_source(source)
        if provider:
            qs = qs.by_author(provider)
        if has_vision is not None:
            qs = qs.filter(has_vision=has_vision)
        if min_context_length:
            qs = qs.min_context(min_context_length)
        if search:
            qs = qs.search(search)
        return qs

    def providers(self) -> list[tuple[str, int]]:
        """Each author with its number of free models, most first."""
        rows = (
            self.free()
            .values("author")
            .annotate(count=Count("pk"))
            .order_by("-count", "author")
            .values_list("author", "count")
        )
        return list(rows)


class LLMModel(models.Model):
    """Every model the syncs have seen, free or not. Rows are never deleted by a sync."""

    source = models.CharField(_("catalogue"), max_length=50, default="openrouter", db_index=True)
    model_id = models.CharField(_("OpenRouter id"), max_length=200)
    canonical_slug = models.CharField(_("canonical slug"), max_length=200, blank=True)
    name = models.CharField(_("name"), max_length=300)
    author = models.CharField(_("author"), max_length=100, db_index=True)
    description = models.TextField(_("description"), blank=True)
    context_length = models.PositiveIntegerField(_("context length"), default=0)
    input_modalities = models.JSONField(_("input modalities"), default=list)
    output_modalities = models.JSONField(_("output modalities"), default=list)
    has_vision = models.BooleanField(_("vision"), default=False)
    supported_parameters = models.JSONField(_("supported parameters"), default=list)
    parameters_text = models.TextField(editable=False, default="")
    pricing = models.JSONField(_("pricing"), default=dict)
    is_free = models.BooleanField(_("free"), default=False)
    non_free_reason = models.CharField(_("why not free"), max_length=200, blank=True)
    category = models.CharField(_("category"), max_length=20, default="general")
    quality_rank = models.PositiveIntegerField(_("rank"), default=0)
    created_upstream = models.DateTimeField(_("created upstream"), null=True, blank=True)
    first_seen_at = models.DateTimeField(_("first seen"))
    last_seen_at = models.DateTimeField(_("last seen"))
    is_available = models.BooleanField(_("available"), default=True)
    availability = models.FloatField(
        _("availability"),
        default=0.0,
        help_text=_("Share of the recent successful syncs in which the model was listed free."),
    )
    metadata = models.JSONField(_("metadata"), default=dict)
    health = models.JSONField(_("health"), default=dict, blank=True)
    raw = models.JSONField(_("upstream record"), default=dict, encoder=RecordEncoder)
    # sha1 of the rules version and the record's text as received: equal means nothing to redo.
    content_hash = models.CharField(max_length=40, editable=False, default="")

    objects = LLMModelQuerySet.as_manager()

    class Meta:
        verbose_name = _("LLM model")
        verbose_name_plural = _("LLM models")
        ordering = ["quality_rank", "model_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "model_id"], name="llmmodel_source_model_uniq"
            )
        ]
        indexes = [
            models.Index(
                fields=["is_available", "is_free", "quality_rank"], name="llmmodel_serving_idx"
            ),
        ]
        permissions = [("sync_models", _("Can synchronise models from OpenRouter"))]

    def __str__(self) -> str:
        return self.model_id


class SyncRun(models.Model):
    class Trigger(models.TextChoices):
        CLI = "cli", _("command line")
        ADMIN = "admin", _("admin")
        API = "api", _("API")
        SCHEDULE = "schedule", _("schedule")

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCESS = "success", _("success")
        FAILED = "failed", _("failed")
        REFUSED = "refused", _("refused")

    started_at = models.DateTimeField(_("started"), db_index=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.RUNNING
    )
    source = models.CharField(_("source"), max_length=500, blank=True)
    catalogue = models.CharField(_("catalogue"), max_length=50, default="openrouter")
    forced = models.BooleanField(_("forced"), default=False)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    upstream_latency_ms = models.PositiveIntegerField(
        _("upstream latency (ms)"), null=True, blank=True
    )
    fetched_count = models.PositiveIntegerField(_("fetched"), default=0)
    free_count = models.PositiveIntegerField(_("free"), default=0)
    added_count = models.PositiveIntegerField(_("added"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    unavailable_count = models.PositiveIntegerField(_("marked unavailable"), default=0)
    restored_count = models.PositiveIntegerField(_("returned"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped as malformed"), default=0)
    changes_count = models.PositiveIntegerField(_("changes"), default=0)
    error = models.TextField(_("error"), blank=True)
    # The free models this run saw: the availability history is computed from these.
    free_ids = models.JSONField(_("free models seen"), default=list, blank=True, editable=False)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["status", "-started_at"], name="syncrun_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class SyncLock(models.Model):
    """A lease: one sync at a time across processes and machines, freed if its holder dies."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("sync lock")

    def __str__(self) -> str:
        return self.name


class ModelChange(models.Model):
    """One change a sync saw in one model: the changelog of the catalogue."""

    class Kind(models.TextChoices):
        ADDED = "added", _("added")
        REMOVED = "removed", _("removed")
        RETURNED = "returned", _("returned")
        BECAME_FREE = "became_free", _("became free")
        BECAME_PAID = "became_paid", _("became paid")
        RENAMED = "renamed", _("renamed")
        CONTEXT_CHANGED = "context_changed", _("context changed")
        PRICING_CHANGED = "pricing_changed", _("pricing changed")

    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="changes", verbose_name=_("sync run")
    )
    llm_model = models.ForeignKey(
        LLMModel, on_delete=models.CASCADE, related_name="changes", verbose_name=_("model")
    )
    model_id = models.CharField(_("OpenRouter id"), max_length=200)
    author = models.CharField(_("author"), max_length=100, db_index=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    timestamp = models.DateTimeField(_("time"), db_index=True)

    class Meta:
        verbose_name = _("model change")
        verbose_name_plural = _("model changes")
        ordering = ["-timestamp", "-pk"]
        indexes = [models.Index(fields=["kind", "-timestamp"], name="modelchange_kind_idx")]

    def __str__(self) -> str:
        return f"{self.model_id} {self.kind}"


class WebhookDelivery(models.Model):
    """What happened to one webhook POST: a failing receiver is recorded, never fatal."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.URLField(max_length=500)
    delivered = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.url} {'ok' if self.delivered else 'failed'}"


class Favorite(models.Model):
    """A user's favourite model; kept when the model stops being free or available (flagged)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="llm_favorites"
    )
    llm_model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="favorites")
    created_at = models.DateTimeField(_("added"), auto_now_add=True)

    class Meta:
        verbose_name = _("favourite")
        verbose_name_plural = _("favourites")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "llm_model"], name="favorite_user_model_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user} ★ {self.llm_model}"

    @property
    def problem(self) -> str:
        """Why this favourite needs its owner's attention, or empty."""
        if not self.llm_model.is_available:
            return "no longer available"
        if not self.llm_model.is_free:
            return "no longer free"
        return ""


class HealthCheck(models.Model):
    """One look at a free model's live health: its endpoints' figures, or a one-token probe."""

    class Kind(models.TextChoices):
        ENDPOINTS = "endpoints", _("endpoints")
        PROBE = "probe", _("probe")

    llm_model = models.ForeignKey(LLMModel, on_delete=models.CASCADE, related_name="health_checks")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    checked_at = models.DateTimeField(_("checked"), db_index=True)
    ok = models.BooleanField(_("ok"), default=False)
    status = models.CharField(_("status"), max_length=20, blank=True)
    uptime = models.FloatField(_("uptime (%)"), null=True, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    free_endpoints = models.PositiveSmallIntegerField(_("free endpoints"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("health check")
        verbose_name_plural = _("health checks")
        ordering = ["-checked_at", "-pk"]
        indexes = [
            models.Index(fields=["llm_model", "kind", "-checked_at"], name="health_model_idx")
        ]

    def __str__(self) -> str:
        return f"{self.llm_model} {self.kind} {self.status}"
