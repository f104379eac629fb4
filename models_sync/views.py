"""The JSON API: a thin face over ``services``; every answer, errors included, is JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC
from functools import cache as memoize
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.syndication.views import Feed
from django.core.cache import caches
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.dateparse import parse_datetime
from django.utils.feedgenerator import Atom1Feed
from django.utils.http import http_date
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import conf, services
from .models import ModelChange, SyncRun

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
RATE_KEY = "models_sync:forced-refresh"
MAX_SEARCH_LENGTH = 200
MAX_PROVIDER_LENGTH = 100
MAX_CONTEXT = 1_000_000_000
# A GET without these headers cannot be answered 304/412: no need to parse them.
_CONDITIONAL_HEADERS = frozenset(
    ["HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE"]
)
_ENCODER = json.JSONEncoder(ensure_ascii=False)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    response = JsonResponse({"success": False, "error": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


# --- query parameters


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _single(request: HttpRequest, name: str) -> str | None:
    values = request.GET.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"parameter '{name}' is given more than once")
    return values[0]


def _bool(request: HttpRequest, name: str) -> bool | None:
    value = _single(request, name)
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ApiError(400, f"parameter '{name}' must be true or false")


def _int(request: HttpRequest, name: str) -> int | None:
    value = _single(request, name)
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_CONTEXT:
        raise ApiError(400, f"parameter '{name}' must be a whole number from 0 to {MAX_CONTEXT}")
    return int(text)


def _text(request: HttpRequest, name: str, max_length: int) -> str | None:
    value = _single(request, name)
    if value is None:
        return None
    if len(value) > max_length or any(ord(c) < 32 for c in value):
        raise ApiError(400, f"parameter '{name}' must be at most {max_length} printable characters")
    return value.strip() or None


@dataclass(frozen=True, slots=True)
class ListQuery:
    refresh: bool
    include_stats: bool
    provider: str | None
    has_vision: bool | None
    min_context_length: int | None
    search: str | None
    source: str | None

    @classmethod
    def from_request(cls, request: HttpRequest) -> ListQuery:
        if not request.GET:
            return DEFAULT_QUERY
        return cls(
            refresh=bool(_bool(request, "refresh")),
            include_stats=bool(_bool(request, "includeStats")),
            provider=_text(request, "provider", MAX_PROVIDER_LENGTH),
            has_vision=_bool(request, "hasVision"),
            min_context_length=_int(request, "minContextLength"),
            search=_text(request, "search", MAX_SEARCH_LENGTH),
            source=_text(request, "source", MAX_PROVIDER_LENGTH),
        )


DEFAULT_QUERY = ListQuery(
    refresh=False,
    include_stats=False,
    provider=None,
    has_vision=None,
    min_context_length=None,
    search=None,
    source=None,
)


# --- who may do what


def _bearer_token_ok(request: HttpRequest) -> bool | None:
    """True/False for a request carrying a Bearer token, None when it carries none."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    expected = conf.api_token()
    if scheme.lower() != "bearer" or not expected:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def _check_csrf(request: HttpRequest) -> None:
    failure = CsrfViewMiddleware(lambda _request: HttpResponse()).process_view(
        request, None, (), {}
    )
    if failure is not None:
        raise ApiError(403, "CSRF verification failed: send the csrftoken cookie and X-CSRFToken")


def _may_read(request: HttpRequest) -> None:
    if not conf.require_login():
        return
    token = _bearer_token_ok(request)
    if token or (token is None and request.user.is_authenticated):
        return
    raise ApiError(401, "authentication required")


def _may_force(request: HttpRequest, *, raise_errors: bool) -> bool:
    """A forced sync needs the API token, or a staff session (with CSRF on unsafe methods)."""
    token = _bearer_token_ok(request)
    if token is True:
        return True
    if token is False:
        if raise_errors:
            raise ApiError(401, "invalid API token")
        return False
    if not request.user.is_authenticated:
        if raise_errors:
            raise ApiError(401, "authentication required: a staff session or an API token")
        return False
    if not request.user.is_staff:
        if raise_errors:
            raise ApiError(403, "only staff may force a sync")
        return False
    if request.method == "POST":
        _check_csrf(request)
    return True


def _claim_refresh_slot() -> None:
    """At most one forced sync per interval, for every process sharing the cache."""
    seconds = conf.min_refresh_seconds()
    if seconds <= 0:
        return
    cache = caches[conf.cache_alias()]
    until = time.time() + seconds
    if cache.add(RATE_KEY, until, seconds):
        return
    held_until = cache.get(RATE_KEY) or until
    wait = max(1, round(held_until - time.time()))
    raise ApiError(
        429,
        f"a sync was forced less than {seconds} s ago; retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )


# --- views


class JsonApiView(View):
    """Every answer is JSON, errors included: bad input, wrong method, hostile query strings."""

    # A view that checks CSRF itself (to answer in JSON) says so here: its view function is
    # exempted once, where ``method_decorator`` would build two wrappers on every request.
    csrf_exempt = False

    @classmethod
    def as_view(cls, **initkwargs: Any):
        view = super().as_view(**initkwargs)
        return csrf_exempt(view) if cls.csrf_exempt else view

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().dispatch(request, *args, **kwargs)
        except ApiError as exc:
            return error_response(exc.status, exc.message, exc.headers)
        except services.ModelsUnavailable as exc:
            return error_response(503, str(exc))
        except SuspiciousOperation as exc:  # e.g. more than DATA_UPLOAD_MAX_NUMBER_FIELDS
            return error_response(400, f"bad request: {exc}")

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any):
        allowed = [m for m in self._allowed_methods() if m not in ("HEAD", "OPTIONS")]
        response = error_response(
            405, f"method {request.method} not allowed; use {' or '.join(allowed)}"
        )
        response["Allow"] = ", ".join(m.upper() for m in self._allowed_methods())
        return response


class ModelsSyncView(JsonApiView):
    csrf_exempt = True  # checked in _may_force, to answer in JSON
    http_method_names = ["get", "post", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        _may_read(request)
        query = ListQuery.from_request(request)
        refresh_denied = False
        force = False
        if query.refresh:
            force = _may_force(request, raise_errors=False)
            refresh_denied = not force
            if force:
                _claim_refresh_slot()
        catalogue = services.get_cached_free_models(
            force_refresh=force, trigger=SyncRun.Trigger.API
        )
        last_sync, last_modified, version = _catalogue_figures(catalogue)
        etag = _etag(version, request)
        if not force and not _CONDITIONAL_HEADERS.isdisjoint(request.META):
            conditional = get_conditional_response(
                request, etag=etag, last_modified=_timestamp(catalogue.last_sync)
            )
            if conditional is not None:
                return conditional
        models = services.filter_app_models(
            catalogue.models,
            source=query.source,
            provider=query.provider,
            has_vision=query.has_vision,
            min_context_length=query.min_context_length,
            search=query.search,
        )
        body: dict[str, Any] = {
            "success": True,
            "models": models,
            "count": len(models),
            "timestamp": services.iso(timezone.now()),
            "source": catalogue.source,
            "stale": catalogue.stale,
            "lastSync": last_sync,
        }
        if query.include_stats:
            body["stats"] = (
                services.compute_stats(
                    services.filter_app_models(catalogue.models, source=query.source),
                    total_available=catalogue.total_available,
                )
                if query.source
                else catalogue.stats
            )
        if refresh_denied:
            body["refreshAllowed"] = False
        if catalogue.error:
            body["warning"] = f"refresh failed, serving stored models: {catalogue.error}"
        unfiltered = len(models) == len(catalogue.models)  # filters only ever remove models
        response = HttpResponse(
            _encode_list_body(body, catalogue.models_json() if unfiltered else None),
            content_type="application/json",
        )
        response["ETag"] = etag
        if last_modified:
            response["Last-Modified"] = last_modified
        response["Cache-Control"] = "no-cache" if conf.require_login() else "public, no-cache"
        response["Vary"] = "Authorization, Cookie"
        return response

    def post(self, request: HttpRequest) -> HttpResponse:
        _may_force(request, raise_errors=True)
        _claim_refresh_slot()
        try:
            services.sync_models(trigger=SyncRun.Trigger.API)
        except services.SyncAlreadyRunning as exc:
            return error_response(409, exc.message)
        except services.SyncError as exc:
            return error_response(502, exc.message)
        catalogue = services.get_cached_free_models()
        return JsonResponse(
            {
                "success": True,
                "message": "Models synchronized successfully",
                "count": len(catalogue.models),
                "timestamp": services.iso(timezone.now()),
            }
        )


def _encode_list_body(body: dict[str, Any], models_json: bytes | None) -> bytes:
    """The JSON body, reusing the catalogue's already-encoded models when nothing was filtered."""
    if models_json is None:
        return _ENCODER.encode(body).encode()
    rest = _ENCODER.encode({k: v for k, v in body.items() if k != "models"})
    return b'{"models": ' + models_json + b", " + rest[1:].encode()


def _timestamp(value) -> int | None:
    return int(value.timestamp()) if value else None


def _catalogue_figures(catalogue: services.Catalogue) -> tuple[str | None, str | None, str]:
    """lastSync, Last-Modified and the version the ETag hashes: formatted once per catalogue."""
    key = f"figures:{catalogue.stale}"
    figures = catalogue.encoded.get(key)
    if figures is None:
        last_sync = services.iso(catalogue.last_sync)
        timestamp = _timestamp(catalogue.last_sync)
        version = "|".join(
            [last_sync or "", str(len(catalogue.models)), str(catalogue.total_available), key]
        )
        figures = (last_sync, http_date(timestamp) if timestamp else None, version)
        catalogue.encoded[key] = figures
    return figures


def _etag(version: str, request: HttpRequest) -> str:
    text = f"{version}|{request.META.get('QUERY_STRING', '')}"
    return f'"{hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:32]}"'


@memoize
def _openapi_document() -> bytes:
    return json.dumps(json.loads(OPENAPI_PATH.read_text("utf-8"))).encode()


def openapi(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return error_response(405, f"method {request.method} not allowed; use GET")
    return HttpResponse(_openapi_document(), content_type="application/json")


CHANGES_DEFAULT_LIMIT = 1000
CHANGES_MAX_LIMIT = 5000


class ModelChangesView(JsonApiView):
    """``GET /api/models/changes?since=ISO-8601&kind=...&limit=N``, newest first."""

    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        _may_read(request)
        since = None
        raw_since = _single(request, "since")
        if raw_since is not None:
            since = parse_datetime(raw_since.strip().replace(" ", "+"))
            if since is None:
                raise ApiError(400, "parameter 'since' must be an ISO 8601 date-time")
            if timezone.is_naive(since):
                since = timezone.make_aware(since, UTC)
        kinds = [k for value in request.GET.getlist("kind") for k in value.split(",") if k]
        unknown = sorted(set(kinds) - set(ModelChange.Kind.values))
        if unknown:
            raise ApiError(
                400,
                f"parameter 'kind' has unknown value {unknown[0]!r}; "
                f"use {', '.join(ModelChange.Kind.values)}",
            )
        limit = _int(request, "limit")
        if limit is None:
            limit = CHANGES_DEFAULT_LIMIT
        if not 1 <= limit <= CHANGES_MAX_LIMIT:
            raise ApiError(400, f"parameter 'limit' must be from 1 to {CHANGES_MAX_LIMIT}")
        changes = [
            services.change_as_dict(c)
            for c in services.recent_changes(since=since, kinds=kinds, limit=limit)
        ]
        return JsonResponse({"success": True, "count": len(changes), "changes": changes})


class ModelChangesFeed(Feed):
    """An Atom feed of the catalogue's changes, for feed readers."""

    feed_type = Atom1Feed
    title = "OpenRouter free models: changes"
    subtitle = "Models added, removed, returned, made free or paid on OpenRouter"

    def link(self) -> str:
        return reverse("models_sync:changes")

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            _may_read(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        return super().__call__(request, *args, **kwargs)

    def items(self) -> list[ModelChange]:
        return services.recent_changes(limit=100)

    def item_title(self, item: ModelChange) -> str:
        return f"{item.model_id}: {item.get_kind_display()}"

    def item_description(self, item: ModelChange) -> str:
        before = json.dumps(item.before, ensure_ascii=False)
        after = json.dumps(item.after, ensure_ascii=False)
        return f"{item.kind} in sync run {item.run_id}: before {before}, after {after}"

    def item_link(self, item: ModelChange) -> str:
        return f"{reverse('models_sync:changes')}?kind={item.kind}#change-{item.pk}"

    def item_guid(self, item: ModelChange) -> str:
        return f"tetika-models-sync-change-{item.pk}"

    item_guid_is_permalink = False

    def item_pubdate(self, item: ModelChange):
        return item.timestamp

    def item_updateddate(self, item: ModelChange):
        return item.timestamp


def _acting_user(request: HttpRequest):
    """The session's user, or with the API token the user named by ``X-Tetika-User``."""
    token = _bearer_token_ok(request)
    if token is False:
        raise ApiError(401, "invalid API token")
    if token:
        username = request.headers.get("X-Tetika-User", "").strip()
        user = get_user_model().objects.filter(username=username).first() if username else None
        if user is None:
            raise ApiError(400, "with the API token, name the user in the X-Tetika-User header")
        return user
    if not request.user.is_authenticated:
        raise ApiError(401, "authentication required: a session or the API token")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        _check_csrf(request)
    return request.user


def _model_reference(request: HttpRequest) -> tuple[str, str]:
    if request.method == "DELETE":
        data = {k: request.GET.get(k) for k in ("modelId", "source")}
    else:
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, "body must be a JSON object") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
    model_id = data.get("modelId")
    if not isinstance(model_id, str) or not model_id.strip() or len(model_id) > 200:
        raise ApiError(400, "parameter 'modelId' is required (a model id)")
    source = data.get("source") or "openrouter"
    if not isinstance(source, str) or len(source) > MAX_PROVIDER_LENGTH:
        raise ApiError(400, "parameter 'source' must be a catalogue name")
    return model_id.strip(), source


class FavoritesView(JsonApiView):
    """``GET/POST/DELETE /api/models/favorites``: the acting user's favourite models."""

    csrf_exempt = True  # checked in _acting_user, to answer in JSON

    http_method_names = ["get", "post", "delete", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        user = _acting_user(request)
        favorites = [services.favorite_as_dict(f) for f in services.list_favorites(user=user)]
        return JsonResponse({"success": True, "count": len(favorites), "favorites": favorites})

    def post(self, request: HttpRequest) -> HttpResponse:
        user = _acting_user(request)
        model_id, source = _model_reference(request)
        try:
            created = services.add_favorite(user=user, model_id=model_id, source=source)
        except services.UnknownModel as exc:
            raise ApiError(404, str(exc)) from exc
        return JsonResponse(
            {"success": True, "modelId": model_id, "created": created},
            status=201 if created else 200,
        )

    def delete(self, request: HttpRequest) -> HttpResponse:
        user = _acting_user(request)
        model_id, source = _model_reference(request)
        if not services.remove_favorite(user=user, model_id=model_id, source=source):
            raise ApiError(404, f"{model_id!r} is not a favourite")
        return JsonResponse({"success": True, "modelId": model_id, "deleted": True})


class RecommendView(JsonApiView):
    """``GET /api/models/recommend?task=code&limit=3``: the best free models for a task."""

    http_method_names = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        _may_read(request)
        task = _single(request, "task")
        if task is None:
            raise ApiError(400, f"parameter 'task' is required: {', '.join(services.TASKS)}")
        limit = _int(request, "limit")
        limit = 5 if limit is None else limit
        if not 1 <= limit <= 50:
            raise ApiError(400, "parameter 'limit' must be from 1 to 50")
        try:
            results = services.recommend(
                task.strip(),
                needs_vision=bool(_bool(request, "needsVision")),
                min_context=_int(request, "minContext") or 0,
                limit=limit,
            )
        except services.UnknownTask as exc:
            raise ApiError(400, str(exc)) from exc
        return JsonResponse(
            {
                "success": True,
                "task": task.strip(),
                "count": len(results),
                "recommendations": results,
            }
        )
