from __future__ import annotations

import json
from datetime import timedelta

import jsonschema
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from models_sync.models import LLMModel, SyncRun
from models_sync.services import sync_models
from models_sync.views import OPENAPI_PATH

pytestmark = pytest.mark.django_db
URL = "/api/models/sync"
OPENAPI = json.loads(OPENAPI_PATH.read_text())


def conforms(body: dict, schema_name: str) -> None:
    jsonschema.Draft202012Validator(
        {**OPENAPI, "$ref": f"#/components/schemas/{schema_name}"}
    ).validate(body)


@pytest.fixture
def synced(serve):
    serve(2026)
    sync_models(trigger="cli")


@pytest.fixture
def staff_client(db):
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf(client: Client) -> str:
    client.get("/admin/")
    return client.cookies["csrftoken"].value


def test_url_name():
    assert reverse("models_sync:sync") == URL


def test_get_returns_seed_shape(client, synced):
    body = client.get(URL).json()
    assert {"success", "models", "count", "timestamp", "source", "stale", "lastSync"} <= set(body)
    assert body["success"] is True
    assert body["count"] == len(body["models"]) == 18
    assert body["timestamp"].endswith("Z")
    conforms(body, "ModelList")


def test_get_first_model_in_app_format(client, synced):
    first = client.get(URL).json()["models"][0]
    assert first["id"] == "google/gemma-4-26b-a4b-it:free"
    assert first["provider"] == "openrouter"
    assert first["features"] == {"rag": True, "vision": True, "streaming": True}
    assert first["pricing"] == {"prompt": "0", "completion": "0"}
    assert set(first["metadata"]) == {"architecture", "topProvider", "perRequestLimits"}


def test_sources_database_then_memory(client, synced):
    assert client.get(URL).json()["source"] == "database"
    assert client.get(URL).json()["source"] == "memory"


def test_memory_tier_get_runs_no_sql(client, synced, django_assert_num_queries):
    client.get(URL)
    with django_assert_num_queries(0):
        assert client.get(URL + "?includeStats=true&search=nemotron").status_code == 200


def test_include_stats(client, synced):
    body = client.get(URL + "?includeStats=true").json()
    assert body["stats"]["total"] == 18
    assert body["stats"]["totalAvailable"] == 414
    assert "stats" not in client.get(URL).json()
    conforms(body, "ModelList")


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("provider=nvidia", 8),
        ("hasVision=true", 7),
        ("hasVision=false&provider=google", 0),
        ("minContextLength=500000", 3),
        ("search=GEMMA", 3),
    ],
)
def test_filters(client, synced, query, count):
    assert client.get(f"{URL}?{query}").json()["count"] == count


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("refresh=maybe", "parameter 'refresh' must be true or false"),
        ("includeStats=2", "parameter 'includeStats' must be true or false"),
        ("hasVision=", "parameter 'hasVision' must be true or false"),
        (
            "minContextLength=-3",
            "parameter 'minContextLength' must be a whole number from 0 to 1000000000",
        ),
        (
            "minContextLength=1e3",
            "parameter 'minContextLength' must be a whole number from 0 to 1000000000",
        ),
        ("search=" + "x" * 201, "parameter 'search' must be at most 200 printable characters"),
        ("provider=a&provider=b", "parameter 'provider' is given more than once"),
    ],
)
def test_bad_parameter_is_400_json(client, synced, query, message):
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": message}
    conforms(response.json(), "Error")


def test_unknown_parameters_are_ignored(client, synced):
    assert client.get(URL + "?foo=bar").status_code == 200


def test_wrong_method_is_405_json(client):
    response = client.put(URL)
    assert response.status_code == 405
    assert response.json() == {"success": False, "error": "method PUT not allowed; use GET or POST"}


def test_no_rows_and_upstream_down_is_503(client, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    response = client.get(URL)
    assert response.status_code == 503
    assert response.json()["success"] is False


def test_stale_rows_are_served_with_stale_flag(client, synced, serve, settings):
    LLMModel.objects.update(last_seen_at=timezone.now() - timedelta(days=2))
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    body = client.get(URL).json()
    assert (body["stale"], body["count"]) == (True, 18)
    assert body["warning"] == (
        "refresh failed, serving stored models: "
        "openrouter.ai answered HTTP 500 Internal Server Error"
    )


def test_anonymous_refresh_is_served_from_cache_and_says_so(client, synced, upstream):
    calls = len(upstream.calls)
    body = client.get(URL + "?refresh=true").json()
    assert body["refreshAllowed"] is False
    assert len(upstream.calls) == calls


def test_staff_refresh_forces_a_sync(staff_client, synced, serve):
    serve(2026)
    body = staff_client.get(URL + "?refresh=true").json()
    assert body["source"] == "openrouter"
    assert SyncRun.objects.first().trigger == "api"


def test_post_requires_authentication(client):
    response = client.post(URL)
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "authentication required: a staff session or an API token",
    }


def test_post_by_non_staff_is_403(client, db):
    client.force_login(get_user_model().objects.create_user("u", password="pw"))
    response = client.post(URL)
    assert response.status_code == 403
    assert response.json() == {"success": False, "error": "only staff may force a sync"}


def test_staff_post_without_csrf_is_403_json(staff_client):
    response = staff_client.post(URL)
    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "error": "CSRF verification failed: send the csrftoken cookie and X-CSRFToken",
    }


def test_staff_post_with_csrf_syncs(staff_client, serve):
    serve(2026)
    response = staff_client.post(URL, HTTP_X_CSRFTOKEN=_csrf(staff_client))
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["message"], body["count"]) == (
        True,
        "Models synchronized successfully",
        18,
    )
    conforms(body, "SyncResult")


def test_token_post_needs_no_csrf(client, serve, settings):
    settings.MODELS_SYNC_API_TOKEN = "s3cret-token"
    serve(2026)
    response = client.post(URL, HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200


def test_wrong_token_is_401(client, settings):
    settings.MODELS_SYNC_API_TOKEN = "s3cret-token"
    response = client.post(URL, HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "invalid API token"}


def test_token_unset_rejects_any_bearer(client, settings):
    settings.MODELS_SYNC_API_TOKEN = ""
    assert client.post(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_post_upstream_failure_is_502(client, serve, settings):
    settings.MODELS_SYNC_API_TOKEN = "t"
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    response = client.post(URL, HTTP_AUTHORIZATION="Bearer t")
    assert response.status_code == 502
    assert response.json() == {
        "success": False,
        "error": "openrouter.ai answered HTTP 500 Internal Server Error",
    }


def test_post_while_running_is_409(client, serve, settings):
    from models_sync.models import SyncLock

    settings.MODELS_SYNC_API_TOKEN = "t"
    SyncLock.objects.update(holder="x", expires_at=timezone.now() + timedelta(minutes=1))
    response = client.post(URL, HTTP_AUTHORIZATION="Bearer t")
    assert response.status_code == 409
    assert response.json() == {"success": False, "error": "another sync is already running"}


def test_forced_syncs_are_rate_limited(client, serve, settings):
    settings.MODELS_SYNC_API_TOKEN = "t"
    serve(2026)
    assert client.post(URL, HTTP_AUTHORIZATION="Bearer t").status_code == 200
    response = client.post(URL, HTTP_AUTHORIZATION="Bearer t")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["error"].startswith("a sync was forced less than 60 s ago; retry in ")
    assert SyncRun.objects.count() == 1


def test_require_login_setting(client, synced, settings):
    settings.MODELS_SYNC_REQUIRE_LOGIN = True
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "authentication required"}


def test_etag_and_304(client, synced):
    first = client.get(URL)
    assert first["ETag"]
    again = client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304


def test_last_modified_and_304(client, synced):
    first = client.get(URL)
    again = client.get(URL, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert again.status_code == 304


def test_if_match_with_another_etag_is_412(client, synced):
    assert client.get(URL, HTTP_IF_MATCH='"another"').status_code == 412


def test_etag_changes_after_a_sync(client, synced, serve):
    etag = client.get(URL)["ETag"]
    serve(2025)
    sync_models(trigger="cli", force=True)
    response = client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["count"] == 67


def test_etag_differs_by_query(client, synced):
    assert client.get(URL)["ETag"] != client.get(URL + "?provider=google")["ETag"]


def test_openapi_document_is_served(client):
    response = client.get("/api/models/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert "/api/models/sync" in document["paths"]
    jsonschema.Draft202012Validator.check_schema(
        {**document, "$ref": "#/components/schemas/ModelList"}
    )


def test_changes_recommend_and_favorites_conform_to_openapi(client, synced, db):
    conforms(client.get("/api/models/changes?limit=3").json(), "ChangeList")
    conforms(client.get("/api/models/recommend?task=agent").json(), "RecommendationList")
    user = get_user_model().objects.create_user("fan", password="pw")
    client.force_login(user)
    client.post(
        "/api/models/favorites",
        {"modelId": "openai/gpt-oss-20b:free"},
        content_type="application/json",
    )
    conforms(client.get("/api/models/favorites").json(), "FavoriteList")
    assert set(OPENAPI["paths"]) == {
        "/api/models/sync",
        "/api/models/changes",
        "/api/models/changes.atom",
        "/api/models/recommend",
        "/api/models/favorites",
    }
