from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from models_sync.models import LLMModel
from models_sync.services import UnknownTask, recommend, sync_models

pytestmark = pytest.mark.django_db


@pytest.fixture
def synced(serve):
    serve(2026)
    sync_models(trigger="cli")


def _top(task: str, **kwargs) -> list[str]:
    return [r["model"]["id"] for r in recommend(task, limit=3, **kwargs)]


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "chat",
            [
                "google/gemma-4-26b-a4b-it:free",
                "google/gemma-4-31b-it:free",
                "nvidia/nemotron-3-ultra-550b-a55b:free",
            ],
        ),
        (
            "code",
            [
                "cohere/north-mini-code:free",
                "google/gemma-4-26b-a4b-it:free",
                "google/gemma-4-31b-it:free",
            ],
        ),
        (
            "reasoning",
            [
                "nvidia/nemotron-3-ultra-550b-a55b:free",
                "nvidia/nemotron-3.5-lightning:free",
                "nvidia/nemotron-3-super-120b-a12b:free",
            ],
        ),
        (
            "vision",
            [
                "google/gemma-4-26b-a4b-it:free",
                "google/gemma-4-31b-it:free",
                "dots-studio/dots-3-note-preview:free",
            ],
        ),
        (
            "long-context",
            [
                "nvidia/nemotron-3-ultra-550b-a55b:free",
                "nvidia/nemotron-3.5-lightning:free",
                "dots-studio/dots-3-note-preview:free",
            ],
        ),
        (
            "agent",
            [
                "google/gemma-4-26b-a4b-it:free",
                "google/gemma-4-31b-it:free",
                "dots-studio/dots-3-note-preview:free",
            ],
        ),
    ],
)
def test_ranking_pinned_on_2026_fixture(synced, task, expected):
    assert _top(task) == expected


def test_every_result_carries_its_reasons(synced):
    best = recommend("code", limit=1)[0]
    assert best["score"] == 7.0
    assert best["reasons"] == [
        "coding model",
        "supports tools",
        "256k context",
        "seen free in 100% of syncs",
    ]


def test_vision_task_only_returns_vision_models(synced):
    assert all(r["model"]["features"]["vision"] for r in recommend("vision", limit=50))


def test_agent_needs_tools(synced):
    assert all("tools" in r["model"]["supportedParameters"] for r in recommend("agent", limit=50))


def test_needs_vision_and_min_context_filter(synced):
    results = recommend("chat", needs_vision=True, min_context=300_000, limit=50)
    assert [r["model"]["id"] for r in results] == ["dots-studio/dots-3-note-preview:free"]


def test_unhealthy_model_drops(synced):
    LLMModel.objects.filter(model_id="cohere/north-mini-code:free").update(
        health={"status": "down", "uptime": 0}
    )
    from models_sync.services import invalidate_model_cache

    invalidate_model_cache()
    best = recommend("code", limit=5)
    north = next(r for r in best if r["model"]["id"] == "cohere/north-mini-code:free")
    assert "endpoints down" in north["reasons"]
    assert north["score"] == 5.0


def test_unknown_task():
    with pytest.raises(UnknownTask) as excinfo:
        recommend("poetry")
    assert str(excinfo.value) == (
        "unknown task 'poetry'; use chat, code, reasoning, vision, long-context, agent"
    )


def test_api(client, synced):
    body = client.get("/api/models/recommend?task=code&limit=3").json()
    assert body["success"] is True
    assert body["count"] == 3
    assert body["recommendations"][0]["model"]["id"] == "cohere/north-mini-code:free"
    assert body["recommendations"][0]["reasons"][0] == "coding model"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "task=poetry",
            "unknown task 'poetry'; use chat, code, reasoning, vision, long-context, agent",
        ),
        ("", "parameter 'task' is required: chat, code, reasoning, vision, long-context, agent"),
        ("task=code&limit=0", "parameter 'limit' must be from 1 to 50"),
    ],
)
def test_api_bad_input(client, synced, query, message):
    response = client.get(f"/api/models/recommend?{query}")
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": message}


def test_command(synced):
    out = StringIO()
    call_command("recommend_models", "--task", "code", "--limit", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1].startswith(
        " 1. Cohere: North Mini Code (free)  [cohere/north-mini-code:free]  7"
    )
    assert lines[2] == "    coding model; supports tools; 256k context; seen free in 100% of syncs"


def test_malformed_health_does_not_break_the_score(synced):
    LLMModel.objects.update(health={"status": "up", "uptime": "high", "probe": "x"})
    from models_sync.services import invalidate_model_cache

    invalidate_model_cache()
    assert len(recommend("chat", limit=50)) == 18
