from __future__ import annotations

import json

import pytest

from models_sync.models import LLMModel, RecordEncoder, RecordText
from models_sync.services import filter_app_models, load_catalogue_from_db, sync_models

from .conftest import fixture_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue_2025(serve):
    serve(2025)
    sync_models(trigger="cli")


def _ids(qs) -> list[str]:
    return list(qs.values_list("model_id", flat=True))


def test_record_text_is_encoded_as_it_is():
    assert json.dumps(RecordText('{ "id" :"a/b" }'), cls=RecordEncoder) == '{ "id" :"a/b" }'


def test_record_encoder_encodes_other_values_as_json():
    assert json.dumps({"id": "a/b", "n": [1]}, cls=RecordEncoder) == '{"id": "a/b", "n": [1]}'


def test_free(catalogue_2025):
    assert LLMModel.objects.free().count() == 67


def test_available(catalogue_2025):
    LLMModel.objects.filter(model_id="openrouter/auto").update(is_available=False)
    assert LLMModel.objects.available().count() == 320


def test_with_vision(catalogue_2025):
    assert all(m.has_vision for m in LLMModel.objects.with_vision())
    assert LLMModel.objects.free().with_vision().count() == 16


def test_by_author(catalogue_2025):
    assert set(LLMModel.objects.by_author("Google").values_list("author", flat=True)) == {"google"}


def test_min_context(catalogue_2025):
    assert (
        min(LLMModel.objects.min_context(100_000).values_list("context_length", flat=True))
        >= 100_000
    )


def test_search_is_case_insensitive_over_id_name_description(catalogue_2025):
    found = _ids(LLMModel.objects.free().search("LLAMA"))
    assert "meta-llama/llama-3.3-70b-instruct:free" in found
    assert all(
        "llama" in (m.model_id + m.name + m.description).lower()
        for m in LLMModel.objects.search("llama")
    )


def test_search_treats_metacharacters_as_text(catalogue_2025):
    assert LLMModel.objects.search("%' OR 1=1 --").count() == 0
    assert LLMModel.objects.search("(a|b)+[x]").count() == 0


def test_supporting(catalogue_2025):
    tools = LLMModel.objects.supporting("tools")
    assert tools.exists()
    assert all("tools" in m.supported_parameters for m in tools)
    assert not LLMModel.objects.supporting("tool").exists()


def test_by_quality_is_the_seed_order(catalogue_2025):
    ranks = list(LLMModel.objects.free().by_quality().values_list("quality_rank", flat=True))
    assert ranks == sorted(ranks)


def test_methods_chain(catalogue_2025):
    qs = LLMModel.objects.free().available().by_author("google").min_context(32_000).by_quality()
    assert _ids(qs)[0] == "google/gemini-2.0-flash-exp:free"


def test_filter_models_combines_like_the_seed_hook(catalogue_2025):
    qs = LLMModel.objects.free().filter_models(
        provider="meta-llama", has_vision=False, min_context_length=50_000, search="instruct"
    )
    expected = {
        r["id"]
        for r in fixture_records(2025)
        if r["id"].startswith("meta-llama/")
        and r["id"] in set(_ids(LLMModel.objects.free()))
        and "image" not in r["architecture"]["input_modalities"]
        and r["context_length"] >= 50_000
        and "instruct" in (r["id"] + r["name"] + r["description"]).lower()
    }
    assert set(_ids(qs)) == expected
    assert len(expected) >= 2


@pytest.mark.parametrize(
    "criteria",
    [
        {"provider": "google"},
        {"has_vision": True},
        {"has_vision": False, "min_context_length": 100_000},
        {"search": "qwen"},
        {"provider": "meta-llama", "search": "instruct", "min_context_length": 50_000},
    ],
)
def test_python_filter_matches_queryset_filter(catalogue_2025, criteria):
    served = [m["id"] for m in filter_app_models(load_catalogue_from_db().models, **criteria)]
    expected = _ids(LLMModel.objects.available().free().filter_models(**criteria).by_quality())
    assert served == expected


def test_providers_counts_free_models_per_author(catalogue_2025):
    providers = dict(LLMModel.objects.available().providers())
    assert sum(providers.values()) == 67
    assert providers["google"] == LLMModel.objects.free().by_author("google").count()
    assert list(providers.values()) == sorted(providers.values(), reverse=True)
