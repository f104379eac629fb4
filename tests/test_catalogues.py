from __future__ import annotations

import json
from io import StringIO

import pytest
import responses
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from models_sync.models import LLMModel
from models_sync.services import load_catalogue_from_db, sync_models

pytestmark = pytest.mark.django_db
VLLM = "http://127.0.0.1:9/v1/models"
VLLM_BODY = {
    "object": "list",
    "data": [
        {
            "id": "meta-llama/Llama-3.1-8B-Instruct",
            "object": "model",
            "created": 1_720_000_000,
            "owned_by": "vllm",
            "max_model_len": 131072,
        },
        {
            "id": "qwen2.5-coder:7b",
            "object": "model",
            "created": 1_720_000_000,
            "owned_by": "library",
        },
        {"id": "", "object": "model"},
    ],
}


@pytest.fixture
def two_catalogues(serve, upstream, settings):
    settings.MODELS_SYNC_CATALOGUES = {"local-vllm": {"url": VLLM}}
    upstream.add(responses.GET, VLLM, json=VLLM_BODY)
    serve(2026)
    sync_models(trigger="cli")
    return sync_models(trigger="cli", catalogue="local-vllm")


def test_openai_compatible_models_are_free_and_tagged(two_catalogues):
    assert two_catalogues.skipped_count == 1
    rows = LLMModel.objects.from_source("local-vllm")
    assert sorted(rows.values_list("model_id", flat=True)) == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "qwen2.5-coder:7b",
    ]
    assert all(r.is_free for r in rows)
    assert rows.get(model_id="meta-llama/Llama-3.1-8B-Instruct").context_length == 131072


def test_syncing_one_catalogue_leaves_the_other_alone(two_catalogues):
    assert LLMModel.objects.from_source("openrouter").available().count() == 414


def test_the_same_id_may_exist_in_two_catalogues(two_catalogues, upstream):
    upstream.replace(
        responses.GET,
        VLLM,
        json={
            "data": [{"id": "openai/gpt-oss-20b:free", "object": "model"}, *VLLM_BODY["data"][:2]]
        },
    )
    sync_models(trigger="cli", catalogue="local-vllm")
    assert LLMModel.objects.filter(model_id="openai/gpt-oss-20b:free").count() == 2


def test_served_models_carry_their_source(two_catalogues):
    models = load_catalogue_from_db().models
    assert {m["source"] for m in models} == {"openrouter", "local-vllm"}
    assert len(models) == 20


def test_api_filters_by_source_and_stats_follow(client, two_catalogues):
    body = client.get("/api/models/sync?source=local-vllm&includeStats=true").json()
    assert body["count"] == 2
    assert body["stats"]["total"] == 2
    assert {m["provider"] for m in body["models"]} == {"local-vllm"}


def test_queryset_filter_by_source(two_catalogues):
    assert LLMModel.objects.free().filter_models(source="openrouter").count() == 18


def test_command_catalogue_flag(serve, upstream, settings):
    settings.MODELS_SYNC_CATALOGUES = {"local-vllm": {"url": VLLM}}
    upstream.add(responses.GET, VLLM, json=VLLM_BODY)
    out = StringIO()
    call_command("sync_openrouter", "--catalogue", "local-vllm", stdout=out)
    assert "✅ 2 modèles gratuits trouvés" in out.getvalue()


def test_command_unknown_catalogue(settings):
    with pytest.raises(CommandError) as excinfo:
        call_command("sync_openrouter", "--catalogue", "nope", stdout=StringIO())
    assert str(excinfo.value) == "Catalogue inconnu nope ; configurés : openrouter"


def test_scheduled_task_syncs_every_catalogue(two_catalogues, serve, upstream):
    from models_sync.tasks import run_scheduled_sync

    serve(2026)
    outcome = run_scheduled_sync()
    assert outcome.startswith("openrouter: success")
    assert "local-vllm: success" in outcome


@pytest.mark.django_db(transaction=True)
def test_migration_to_source_keeps_every_row():
    executor = MigrationExecutor(connection)
    executor.migrate([("models_sync", "0003_changelog")])
    old = executor.loader.project_state([("models_sync", "0003_changelog")]).apps
    Old = old.get_model("models_sync", "LLMModel")
    Old.objects.create(
        model_id="a/b",
        name="B",
        author="a",
        first_seen_at="2026-01-01T00:00:00Z",
        last_seen_at="2026-01-01T00:00:00Z",
        raw={"id": "a/b"},
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("models_sync"))
    row = LLMModel.objects.get(model_id="a/b")
    assert (row.source, row.name, row.raw) == ("openrouter", "B", {"id": "a/b"})
    LLMModel.objects.all().delete()
    assert json.dumps(row.raw)
