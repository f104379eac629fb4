from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from models_sync import openrouter, services
from models_sync.models import HealthCheck, LLMModel
from models_sync.services import check_health, probe_models, sync_models

pytestmark = pytest.mark.django_db
ENDPOINTS = re.compile(r"https://openrouter\.ai/api/v1/models/.+/endpoints")
CHAT = "https://openrouter.ai/api/v1/chat/completions"


def endpoints_body(uptime: float = 99.5, p50: float = 0.4, free: bool = True) -> bytes:
    price = "0" if free else "0.000001"
    return json.dumps(
        {
            "data": {
                "id": "x/y",
                "endpoints": [
                    {
                        "provider_name": "Chutes",
                        "tag": "chutes",
                        "pricing": {"prompt": price, "completion": price},
                        "status": 0,
                        "uptime_last_30m": uptime,
                        "latency_last_30m": {"p50": p50, "p99": 2.0},
                    },
                    {
                        "provider_name": "Paid Co",
                        "tag": "paid",
                        "pricing": {"prompt": "0.000002", "completion": "0.000004"},
                        "status": 0,
                        "uptime_last_30m": 100.0,
                        "latency_last_30m": {"p50": 0.1},
                    },
                ],
            }
        }
    ).encode()


@pytest.fixture
def synced(serve):
    serve(2026)
    sync_models(trigger="cli")


def test_endpoints_url_from_canonical_slug(synced):
    model = LLMModel.objects.get(model_id="cohere/north-mini-code:free")
    assert openrouter.endpoints_url(model.model_id, model.canonical_slug) == (
        "https://openrouter.ai/api/v1/models/" + model.raw["links"]["details"].split("/models/")[1]
    )


def test_endpoints_url_refuses_a_path_trick():
    with pytest.raises(openrouter.RecordError):
        openrouter.endpoints_url("a/b", "a/../../admin")


def test_parse_endpoints_prefers_free_endpoints():
    health = openrouter.parse_endpoints(endpoints_body(uptime=97.0, p50=0.4))
    assert (health.status, health.uptime, health.latency_ms, health.free_endpoints) == (
        "up",
        97.0,
        400,
        1,
    )
    assert health.providers == ["Chutes"]


def test_low_uptime_is_degraded():
    assert openrouter.parse_endpoints(endpoints_body(uptime=42.0)).status == "degraded"


def test_no_endpoint_is_down():
    assert openrouter.parse_endpoints(b'{"data": {"endpoints": []}}').status == "down"


def test_health_pass_checks_free_models_only(synced, upstream):
    upstream.add(responses.GET, ENDPOINTS, body=endpoints_body())
    summary = check_health()
    assert summary == {"checked": 18, "up": 18, "degraded": 0, "down": 0, "errors": 0}
    called = [c.request.url for c in upstream.calls if c.request.url.endswith("/endpoints")]
    assert len(called) == 18
    model = LLMModel.objects.get(model_id="cohere/north-mini-code:free")
    assert model.health["status"] == "up"
    assert model.health["latencyMs"] == 400
    assert HealthCheck.objects.filter(kind="endpoints").count() == 18


def test_health_failure_is_recorded_not_raised(synced, upstream, settings):
    settings.MODELS_SYNC_RETRIES = 0
    upstream.add(responses.GET, ENDPOINTS, status=503)
    summary = check_health()
    assert summary["errors"] == 18
    check = HealthCheck.objects.first()
    assert (check.ok, check.status, check.error) == (
        False,
        "unknown",
        "openrouter.ai answered HTTP 503 Service Unavailable",
    )


def test_health_is_served_in_the_api(client, synced, upstream):
    upstream.add(responses.GET, ENDPOINTS, body=endpoints_body())
    check_health()
    model = client.get("/api/models/sync?search=north-mini").json()["models"][0]
    assert model["health"]["status"] == "up"
    assert model["health"]["uptime"] == 99.5


def test_history_is_short(synced, upstream, settings):
    upstream.add(responses.GET, ENDPOINTS, body=endpoints_body())
    check_health()
    HealthCheck.objects.update(checked_at=timezone.now() - timedelta(hours=49))
    check_health()
    assert HealthCheck.objects.count() == 18


def test_one_pass_at_a_time(synced):
    services.SyncLock.objects.create(
        name=services.HEALTH_LOCK, holder="x", expires_at=timezone.now() + timedelta(minutes=5)
    )
    with pytest.raises(services.HealthAlreadyRunning):
        check_health()


def test_health_schedule_is_hourly():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="openrouter-health")
    assert (schedule.func, schedule.minutes) == ("models_sync.tasks.run_health_check", 60)


def test_probe_is_off_without_key(synced, upstream):
    assert probe_models() == {"probed": 0, "ok": 0, "skipped": 0, "disabled": 1}
    assert not [c for c in upstream.calls if c.request.url == CHAT]


def test_probe_with_key_is_paced_and_recorded(synced, upstream, settings):
    settings.MODELS_SYNC_API_KEY = "sk-or-test"
    upstream.add(responses.POST, CHAT, json={"choices": [{"message": {"content": "p"}}]})
    pauses = []
    summary = probe_models(sleep=pauses.append)
    assert summary == {"probed": 18, "ok": 18, "skipped": 0, "disabled": 0}
    assert pauses == [3.0] * 17
    sent = json.loads(upstream.calls[-1].request.body)
    assert sent["max_tokens"] == 1
    assert upstream.calls[-1].request.headers["Authorization"] == "Bearer sk-or-test"
    assert LLMModel.objects.get(model_id="cohere/north-mini-code:free").health["probe"]["ok"]


def test_probe_at_most_once_a_day(synced, upstream, settings):
    settings.MODELS_SYNC_API_KEY = "sk-or-test"
    upstream.add(responses.POST, CHAT, json={"choices": [{}]})
    probe_models(sleep=lambda s: None)
    assert probe_models(sleep=lambda s: None) == {
        "probed": 0,
        "ok": 0,
        "skipped": 18,
        "disabled": 0,
    }


def test_failed_probe_is_recorded(synced, upstream, settings):
    settings.MODELS_SYNC_API_KEY = "sk-or-test"
    upstream.add(responses.POST, CHAT, status=429, json={"error": {"message": "rate"}})
    summary = probe_models(sleep=lambda s: None)
    assert summary["ok"] == 0
    assert HealthCheck.objects.filter(kind="probe", ok=False, error="HTTP 429").count() == 18


def test_probe_schedule_exists_only_with_a_key(settings):
    from django_q.models import Schedule

    from models_sync.apps import ensure_schedule

    assert not Schedule.objects.filter(name="openrouter-probe").exists()
    settings.MODELS_SYNC_API_KEY = "sk-or-test"
    ensure_schedule()
    assert Schedule.objects.get(name="openrouter-probe").minutes == 1440
