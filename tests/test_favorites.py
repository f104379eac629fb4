from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from models_sync.models import Favorite, LLMModel
from models_sync.services import sync_models

from .conftest import fixture_records

pytestmark = pytest.mark.django_db
URL = "/api/models/favorites"
GEMMA = "google/gemma-4-31b-it:free"


@pytest.fixture
def synced(serve):
    serve(2026)
    sync_models(trigger="cli")


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="pw")


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


def test_anonymous_is_401_json(client):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "authentication required: a session or the API token",
    }


def test_add_list_delete(alice_client, synced):
    added = alice_client.post(URL, {"modelId": GEMMA}, content_type="application/json")
    assert (added.status_code, added.json()["created"]) == (201, True)
    again = alice_client.post(URL, {"modelId": GEMMA}, content_type="application/json")
    assert (again.status_code, again.json()["created"]) == (200, False)
    listed = alice_client.get(URL).json()
    assert listed["count"] == 1
    assert listed["favorites"][0]["modelId"] == GEMMA
    assert listed["favorites"][0]["flagged"] is False
    deleted = alice_client.delete(f"{URL}?modelId={GEMMA}")
    assert deleted.json() == {"success": True, "modelId": GEMMA, "deleted": True}
    assert alice_client.get(URL).json()["count"] == 0


def test_unknown_model_is_404(alice_client, synced):
    response = alice_client.post(URL, {"modelId": "no/such"}, content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "unknown model 'no/such'"}


def test_missing_model_id_is_400(alice_client, synced):
    response = alice_client.post(URL, {}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "parameter 'modelId' is required (a model id)"


def test_session_post_needs_csrf(alice, synced):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(URL, {"modelId": GEMMA}, content_type="application/json")
    assert response.status_code == 403


def test_token_acts_for_the_named_user(client, alice, synced, settings):
    settings.MODELS_SYNC_API_TOKEN = "t0k"
    response = client.post(
        URL,
        {"modelId": GEMMA},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer t0k",
        HTTP_X_TETIKA_USER="alice",
    )
    assert response.status_code == 201
    assert Favorite.objects.get().user == alice


def test_token_without_user_is_400(client, synced, settings):
    settings.MODELS_SYNC_API_TOKEN = "t0k"
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer t0k")
    assert response.status_code == 400


def test_favourite_that_stops_being_free_is_flagged_not_dropped(alice_client, synced, serve):
    alice_client.post(URL, {"modelId": GEMMA}, content_type="application/json")
    records = fixture_records(2026)
    paid = [
        {**r, "pricing": {"prompt": "0.000001", "completion": "0.000002"}}
        if r["id"] == GEMMA
        else r
        for r in records
    ]
    serve(records=paid)
    sync_models(trigger="cli")
    favorite = alice_client.get(URL).json()["favorites"][0]
    assert (favorite["flagged"], favorite["reason"], favorite["isFree"]) == (
        True,
        "no longer free",
        False,
    )


def test_favourite_that_disappears_is_flagged(alice_client, synced, serve):
    alice_client.post(URL, {"modelId": GEMMA}, content_type="application/json")
    serve(records=[r for r in fixture_records(2026) if r["id"] != GEMMA])
    sync_models(trigger="cli")
    favorite = alice_client.get(URL).json()["favorites"][0]
    assert (favorite["flagged"], favorite["reason"]) == (True, "no longer available")


def test_filter_models_puts_favourites_first(alice, synced):
    last = LLMModel.objects.free().by_quality().last()
    Favorite.objects.create(user=alice, llm_model=last)
    ordered = list(LLMModel.objects.free().filter_models(user=alice))
    assert ordered[0] == last
    assert ordered[1:] == [m for m in LLMModel.objects.free().by_quality() if m != last]


def test_favourites_are_per_user(alice, synced):
    bob = get_user_model().objects.create_user("bob", password="pw")
    Favorite.objects.create(user=alice, llm_model=LLMModel.objects.get(model_id=GEMMA))
    first = LLMModel.objects.free().filter_models(user=bob).first()
    assert first == LLMModel.objects.free().by_quality().first()
