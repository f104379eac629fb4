from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.utils import timezone

from models_sync import services
from models_sync.apps import ensure_schedule
from models_sync.models import LLMModel, SyncRun, WebhookDelivery
from models_sync.services import sync_models
from models_sync.signals import models_changed

from .conftest import fixture_records

pytestmark = pytest.mark.django_db
HOOK = "https://hooks.example.test/models"


def _free(record: dict) -> bool:
    prices = [Decimal(v) for v in record["pricing"].values() if isinstance(v, str)]
    outputs = (record.get("architecture") or {}).get("output_modalities") or ["text"]
    return all(p == 0 for p in prices) and (outputs == ["text"] or record["id"].endswith(":free"))


def _signature(record: dict) -> dict:
    prices = {}
    for key, value in sorted(record["pricing"].items()):
        if isinstance(value, str) and Decimal(value) != 0:
            prices[key] = format(Decimal(value).normalize(), "f")
    return prices


def _expected_changes(old: list[dict], new: list[dict], gone_before: dict[str, dict]) -> set:
    """The changelog derived independently from two snapshots (and models seen earlier)."""
    before = {r["id"]: r for r in old}
    after = {r["id"]: r for r in new}
    expected = set()
    for model_id, record in after.items():
        previous = before.get(model_id) or gone_before.get(model_id)
        if previous is None:
            expected.add(("added", model_id))
            continue
        if model_id not in before:
            expected.add(("returned", model_id))
        if _free(previous) != _free(record):
            expected.add(("became_free" if _free(record) else "became_paid", model_id))
        if (previous["name"] or model_id) != (record["name"] or model_id):
            expected.add(("renamed", model_id))
        if (previous.get("context_length") or 0) != (record.get("context_length") or 0):
            expected.add(("context_changed", model_id))
        if _signature(previous) != _signature(record):
            expected.add(("pricing_changed", model_id))
    for model_id in before.keys() - after.keys():
        expected.add(("removed", model_id))
    return expected


def _recorded(run: SyncRun) -> set:
    return set(run.changes.values_list("kind", "model_id"))


def test_changelog_across_the_three_fixtures_matches_an_independent_diff(serve):
    years = [fixture_records(2024), fixture_records(2025), fixture_records(2026)]
    seen: dict[str, dict] = {}
    previous: list[dict] = []
    for records in years:
        serve(records=records)
        run = sync_models(trigger="cli", force=True)
        gone = {k: v for k, v in seen.items() if k not in {r["id"] for r in previous}}
        assert _recorded(run) == _expected_changes(previous, records, gone)
        assert run.changes_count == run.changes.count()
        seen.update({r["id"]: r for r in records})
        previous = records


def test_returned_model_is_returned_not_added(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    serve(records=records[1:])
    sync_models(trigger="cli")
    serve(records=records)
    run = sync_models(trigger="cli")
    assert _recorded(run) == {("returned", records[0]["id"])}


def test_returned_with_other_free_status_records_became_free(serve):
    records = fixture_records(2026)
    paid = next(r for r in records if not _free(r) and r["id"] != "openrouter/auto")
    serve(records=records)
    sync_models(trigger="cli")
    serve(records=[r for r in records if r is not paid])
    sync_models(trigger="cli")
    now_free = {**paid, "pricing": {"prompt": "0", "completion": "0"}}
    serve(records=[now_free if r is paid else r for r in records])
    run = sync_models(trigger="cli")
    assert _recorded(run) == {
        ("returned", paid["id"]),
        ("became_free", paid["id"]),
        ("pricing_changed", paid["id"]),
    }


def test_daily_churn_is_not_refused(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    churned = [
        *records[5:],
        {**records[0], "id": "new/model-a"},
        {**records[1], "id": "new/model-b"},
    ]
    serve(records=churned)
    assert sync_models(trigger="schedule").status == "success"


def test_change_before_and_after_values(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    serve(records=[{**records[0], "context_length": 4096}, *records[1:]])
    run = sync_models(trigger="cli")
    change = run.changes.get()
    assert (change.kind, change.before, change.after) == (
        "context_changed",
        records[0]["context_length"],
        4096,
    )


# --- API and feed


@pytest.fixture
def churned(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    serve(records=[{**records[0], "name": "Renamed"}, *records[2:]])
    return sync_models(trigger="cli")


def test_changes_api_shape_newest_first(client, churned):
    body = client.get("/api/models/changes").json()
    assert body["success"] is True
    assert body["count"] == 414 + 2
    first = body["changes"][0]
    assert set(first) == {"runId", "timestamp", "kind", "modelId", "before", "after"}
    assert first["runId"] == churned.pk
    stamps = [c["timestamp"] for c in body["changes"]]
    assert stamps == sorted(stamps, reverse=True)


def test_changes_api_filters(client, churned):
    body = client.get("/api/models/changes?kind=renamed,removed").json()
    assert {c["kind"] for c in body["changes"]} == {"renamed", "removed"}
    assert body["count"] == 2
    since = services.iso(churned.started_at)
    assert client.get(f"/api/models/changes?since={since}").json()["count"] == 2
    assert client.get("/api/models/changes?limit=5").json()["count"] == 5


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "parameter 'since' must be an ISO 8601 date-time"),
        (
            "kind=exploded",
            "parameter 'kind' has unknown value 'exploded'; use added, removed, "
            "returned, became_free, became_paid, renamed, context_changed, pricing_changed",
        ),
        ("limit=0", "parameter 'limit' must be from 1 to 5000"),
        ("limit=5001", "parameter 'limit' must be from 1 to 5000"),
        ("limit=x", "parameter 'limit' must be a whole number from 0 to 1000000000"),
    ],
)
def test_changes_api_bad_parameters(client, query, message):
    response = client.get(f"/api/models/changes?{query}")
    assert response.status_code == 400
    assert response.json() == {"success": False, "error": message}


def test_changes_api_follows_require_login(client, settings):
    settings.MODELS_SYNC_REQUIRE_LOGIN = True
    assert client.get("/api/models/changes").status_code == 401


def test_atom_feed(client, churned):
    response = client.get("/api/models/changes.atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    text = response.content.decode()
    assert "<title>OpenRouter free models: changes</title>" in text
    assert f"{fixture_records(2026)[0]['id']}: renommé" in text


def test_diff_flag_prints_changes(churned, serve):
    from io import StringIO

    from django.core.management import call_command

    records = fixture_records(2026)
    serve(records=records)
    out = StringIO()
    call_command("sync_openrouter", "--diff", stdout=out)
    text = out.getvalue()
    assert "📝 MODIFICATIONS (2)" in text
    assert f"  returned         {records[1]['id']}" in text


# --- availability and metrics


def test_availability_share_of_recent_syncs(serve):
    records = fixture_records(2026)
    flaky = next(r for r in records if _free(r))
    for listed in (True, False, True, False):
        serve(records=records if listed else [r for r in records if r is not flaky])
        sync_models(trigger="cli")
    row = LLMModel.objects.get(model_id=flaky["id"])
    assert row.availability == 0.5
    steady = LLMModel.objects.free().exclude(pk=row.pk).first()
    assert steady.availability == 1.0


def test_unstable_models_are_flagged(serve):
    records = fixture_records(2026)
    flaky = next(r for r in records if _free(r))
    for listed in (True, False, False, False, True):
        serve(records=records if listed else [r for r in records if r is not flaky])
        sync_models(trigger="cli")
    assert list(LLMModel.objects.unstable().values_list("model_id", flat=True)) == [flaky["id"]]
    model = next(m for m in services.load_catalogue_from_db().models if m["id"] == flaky["id"])
    assert (model["availability"], model["unstable"]) == (0.4, True)


def test_old_runs_leave_the_window(serve, settings):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    SyncRun.objects.update(started_at=timezone.now() - timedelta(days=40))
    flaky = next(r for r in records if _free(r))
    serve(records=[r for r in records if r is not flaky])
    sync_models(trigger="cli")
    assert LLMModel.objects.get(model_id=flaky["id"]).availability == 0.0


def test_sync_metrics(serve, settings):
    serve(2026)
    sync_models(trigger="cli")
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    with pytest.raises(services.SyncFailed):
        sync_models(trigger="cli")
    metrics = services.sync_metrics()
    assert (metrics["syncs"], metrics["successRate"]) == (2, 0.5)
    assert metrics["secondsSinceLastSuccess"] >= 0
    assert metrics["meanLatencyMs"] >= 0


# --- signal and webhooks


def test_signal_sent_with_changes(serve):
    received = []

    def receiver(sender, run, changes, **kwargs):
        received.append((run.pk, len(changes)))

    models_changed.connect(receiver)
    try:
        serve(2024)
        run = sync_models(trigger="cli")
        serve(2024)
        sync_models(trigger="cli")
    finally:
        models_changed.disconnect(receiver)
    assert received == [(run.pk, 100)]


def test_failing_receiver_does_not_fail_the_sync(serve):
    def broken(**kwargs):
        raise RuntimeError("boom")

    models_changed.connect(broken)
    try:
        serve(2024)
        assert sync_models(trigger="cli").status == "success"
    finally:
        models_changed.disconnect(broken)


def test_webhook_posts_signed_payload(serve, upstream, settings):
    settings.MODELS_SYNC_WEBHOOKS = [HOOK]
    settings.MODELS_SYNC_WEBHOOK_SECRET = "hook-secret"
    upstream.add(responses.POST, HOOK, status=204)
    serve(2024)
    run = sync_models(trigger="cli")
    call = next(c for c in upstream.calls if c.request.url == HOOK)
    body = call.request.body
    expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert call.request.headers["X-Tetika-Signature"] == expected
    payload = json.loads(body)
    assert (payload["runId"], payload["counts"]["added"], len(payload["changes"])) == (
        run.pk,
        100,
        100,
    )
    assert WebhookDelivery.objects.get().delivered


def test_failing_webhook_is_recorded_and_sync_succeeds(serve, upstream, settings):
    settings.MODELS_SYNC_WEBHOOKS = [HOOK]
    settings.MODELS_SYNC_WEBHOOK_ATTEMPTS = 2
    upstream.add(responses.POST, HOOK, status=500)
    serve(2024)
    assert sync_models(trigger="cli").status == "success"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.delivered, delivery.status_code, delivery.error) == (False, 500, "HTTP 500")
    assert len([c for c in upstream.calls if c.request.url == HOOK]) == 2


# --- schedule


def test_migrate_created_exactly_one_schedule():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="openrouter-sync")
    assert (schedule.func, schedule.minutes, schedule.repeats) == (
        "models_sync.tasks.run_scheduled_sync",
        360,
        -1,
    )


def test_ensure_schedule_is_idempotent_and_follows_the_setting(settings):
    from django_q.models import Schedule

    ensure_schedule()
    ensure_schedule()
    assert Schedule.objects.filter(name="openrouter-sync").count() == 1
    settings.MODELS_SYNC_INTERVAL_MINUTES = 60
    ensure_schedule()
    assert Schedule.objects.get(name="openrouter-sync").minutes == 60


def test_scheduler_runs_the_due_sync(serve, monkeypatch):
    import django_q.conf
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    monkeypatch.setattr(django_q.conf.Conf, "SYNC", True)
    Schedule.objects.filter(name="openrouter-sync").update(
        next_run=timezone.now() - timedelta(seconds=1)
    )
    serve(2026)
    scheduler()
    run = SyncRun.objects.get()
    assert (run.trigger, run.status, run.free_count) == ("schedule", "success", 18)
