from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from models_sync import services
from models_sync.models import LLMModel
from models_sync.services import (
    ModelsUnavailable,
    get_cached_free_models,
    get_free_models_stats,
    invalidate_model_cache,
    sync_models,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(serve):
    serve(2026)
    sync_models(trigger="cli")


def test_empty_table_goes_to_openrouter(serve):
    serve(2026)
    catalogue = get_cached_free_models()
    assert catalogue.source == "openrouter"
    assert len(catalogue.models) == 18


def test_fresh_rows_are_served_from_the_database_in_one_query(synced, django_assert_num_queries):
    with django_assert_num_queries(1):
        catalogue = get_cached_free_models()
    assert catalogue.source == "database"
    assert len(catalogue.models) == 18


def test_database_tier_query_count_does_not_grow(serve, django_assert_num_queries):
    records = [
        {**r, "id": f"{r['id']}-copy{i}"}
        for i in range(5)
        for r in __import__("tests.conftest", fromlist=["x"]).fixture_records(2026)
    ]
    serve(records=records)
    sync_models(trigger="cli")
    with django_assert_num_queries(1):
        catalogue = get_cached_free_models()
    assert len(catalogue.models) == 90


def test_second_read_comes_from_memory_without_sql(synced, django_assert_num_queries):
    get_cached_free_models()
    with django_assert_num_queries(0):
        catalogue = get_cached_free_models()
    assert catalogue.source == "memory"


def test_stats_from_memory_without_sql(synced, django_assert_num_queries):
    get_cached_free_models()
    with django_assert_num_queries(0):
        stats = get_free_models_stats()
    assert stats["total"] == 18


def test_rows_older_than_fresh_window_trigger_a_sync(synced, serve, upstream):
    LLMModel.objects.update(last_seen_at=timezone.now() - timedelta(hours=25))
    serve(2026)
    calls = len(upstream.calls)
    catalogue = get_cached_free_models()
    assert catalogue.source == "openrouter"
    assert len(upstream.calls) == calls + 1


def test_upstream_down_serves_stale_rows(synced, serve, settings):
    LLMModel.objects.update(last_seen_at=timezone.now() - timedelta(days=3))
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=503, body=b"down")
    catalogue = get_cached_free_models()
    assert catalogue.stale
    assert catalogue.source == "database"
    assert len(catalogue.models) == 18
    assert catalogue.last_sync < timezone.now() - timedelta(days=2)
    assert catalogue.error == "openrouter.ai answered HTTP 503 Service Unavailable"


def test_upstream_down_and_no_rows_is_a_clear_error(serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=503, body=b"down")
    with pytest.raises(ModelsUnavailable) as excinfo:
        get_cached_free_models()
    assert str(excinfo.value) == (
        "no models available: the sync failed (openrouter.ai answered HTTP 503 Service "
        "Unavailable) and the table is empty"
    )


def test_force_refresh_skips_the_cache(synced, serve, upstream):
    get_cached_free_models()
    serve(2026)
    calls = len(upstream.calls)
    assert get_cached_free_models(force_refresh=True).source == "openrouter"
    assert len(upstream.calls) == calls + 1


def test_successful_sync_invalidates_the_cache(synced, serve):
    get_cached_free_models()
    serve(2025)
    sync_models(trigger="cli", force=True)
    catalogue = get_cached_free_models()
    assert catalogue.source == "database"
    assert len(catalogue.models) == 67


def test_invalidate_model_cache_drops_tier_one(synced):
    get_cached_free_models()
    invalidate_model_cache()
    assert get_cached_free_models().source == "database"


def test_cache_duration_is_honoured(synced, monkeypatch):
    seen = {}
    cache = services._cache()
    real_set = cache.set
    monkeypatch.setattr(cache, "set", lambda k, v, t: seen.setdefault("t", t) and real_set(k, v, t))
    get_cached_free_models(cache_duration=120)
    assert seen["t"] == 120


def test_stats_shape_and_values(synced):
    stats = get_free_models_stats()
    assert stats["total"] == stats["free"] == 18
    assert stats["totalAvailable"] == 414
    assert stats["withVision"] == 7
    assert stats["averageContextLength"] == 316100
    assert stats["maxContextLength"] == 1_000_000
    assert stats["byProvider"]["nvidia"] == 8
    assert sum(stats["byCategory"].values()) == 18
    assert stats["new"] == 0


def test_stats_with_no_free_models_are_zeros(serve):
    serve(records=[{"id": "a/b", "name": "B", "pricing": {"prompt": "1", "completion": "1"}}])
    sync_models(trigger="cli")
    assert services.compute_stats([], total_available=1) == {
        "total": 0,
        "totalAvailable": 1,
        "free": 0,
        "byProvider": {},
        "withVision": 0,
        "averageContextLength": 0,
        "maxContextLength": 0,
        "minContextLength": 0,
        "new": 0,
        "byCategory": {},
    }


def test_is_new_from_created_within_window(synced, settings):
    settings.MODELS_SYNC_NEW_DAYS = 120
    cutoff = services.iso(timezone.now() - timedelta(days=120))
    models = services.load_catalogue_from_db().models
    assert [m["id"] for m in models if m["isNew"]] == [
        m["id"] for m in models if m["createdUpstream"] >= cutoff
    ]
    assert any(m["isNew"] for m in models)


def test_first_sync_does_not_make_everything_new(serve):
    serve(2024)  # the 2024 schema has no "created"
    sync_models(trigger="cli")
    assert not any(m["isNew"] for m in services.load_catalogue_from_db().models)


def test_model_first_seen_after_the_first_sync_is_new(serve):
    from .conftest import fixture_records

    records = fixture_records(2024)
    late = next(r for r in records if r["id"].endswith(":free"))
    serve(records=[r for r in records if r is not late])
    sync_models(trigger="cli")
    serve(records=records)
    sync_models(trigger="cli")
    new = [m["id"] for m in services.load_catalogue_from_db().models if m["isNew"]]
    assert new == [late["id"]]


def test_stats_carry_sync_metrics_in_the_same_query(synced, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    with pytest.raises(services.SyncFailed):
        sync_models(trigger="cli")
    catalogue = services.load_catalogue_from_db()
    assert catalogue.stats["sync"] == {
        **services.sync_metrics(),
        "secondsSinceLastSuccess": catalogue.stats["sync"]["secondsSinceLastSuccess"],
    }
    assert (catalogue.stats["sync"]["syncs"], catalogue.stats["sync"]["successRate"]) == (2, 0.5)


def test_a_reader_that_loaded_before_a_sync_cannot_put_the_old_list_back(serve, monkeypatch):
    """Reader: cache miss, reads the rows; a sync commits and drops the cache; the reader stores
    what it read. The old list must not be served after the sync (until the cache expires)."""
    serve(2025)
    sync_models(trigger="cli")
    invalidate_model_cache()
    load = services.load_catalogue_from_db
    state = {"raced": False}

    def load_then_a_sync_commits(**kwargs):
        catalogue = load(**kwargs)
        if not state["raced"]:
            state["raced"] = True
            serve(2026)
            sync_models(trigger="cli", force=True)  # commits, then invalidates
        return catalogue

    monkeypatch.setattr(services, "load_catalogue_from_db", load_then_a_sync_commits)
    assert len(get_cached_free_models().models) == 67  # the reader got the old rows
    monkeypatch.setattr(services, "load_catalogue_from_db", load)
    assert len(get_cached_free_models().models) == 18  # the next reader sees the sync
