from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from models_sync import catalogues, openrouter, services
from models_sync.models import LLMModel, SyncLock, SyncRun
from models_sync.services import (
    SyncAlreadyRunning,
    SyncFailed,
    SyncRefused,
    sort_key,
    sync_models,
)

from .conftest import fixture_bytes, fixture_path, fixture_records, table_dump

pytestmark = pytest.mark.django_db
KNOWN = ("google", "meta-llama", "microsoft", "mistralai", "qwen")


def _expected_top_ten(year: int) -> list[str]:
    """The seed's order computed independently from the file."""
    free = LLMModel.objects.filter(is_free=True).values_list("model_id", flat=True)
    records = [r for r in fixture_records(year) if r["id"] in set(free)]
    records.sort(
        key=lambda r: (
            r["id"].lstrip("~").split("/")[0] not in KNOWN,
            -(r.get("context_length") or 0),
            r["name"].casefold(),
        )
    )
    return [r["id"] for r in records[:10]]


@pytest.mark.parametrize(
    ("year", "total", "free"), [(2024, 100, 10), (2025, 321, 67), (2026, 414, 18)]
)
def test_sync_stores_every_model_and_counts_free(serve, year, total, free):
    serve(year)
    run = sync_models(trigger="cli")
    assert (run.status, run.fetched_count, run.free_count, run.added_count) == (
        "success",
        total,
        free,
        total,
    )
    assert LLMModel.objects.count() == total
    assert LLMModel.objects.free().count() == free
    assert run.http_status == 200
    assert run.upstream_latency_ms is not None


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_free_models_sorted_as_the_seed(serve, year):
    serve(year)
    sync_models(trigger="cli")
    top = list(LLMModel.objects.free().by_quality().values_list("model_id", flat=True)[:10])
    assert top == _expected_top_ten(year)


def test_first_ten_of_2026_exactly(serve):
    serve(2026)
    sync_models(trigger="cli")
    top = list(LLMModel.objects.free().by_quality().values_list("model_id", flat=True)[:10])
    assert top == [
        "google/gemma-4-26b-a4b-it:free",
        "google/gemma-4-31b-it:free",
        "nvidia/nemotron-3-ultra-550b-a55b:free",
        "nvidia/nemotron-3.5-lightning:free",
        "dots-studio/dots-3-note-preview:free",
        "nvidia/nemotron-3-super-120b-a12b:free",
        "poolside/laguna-s-2.1:free",
        "poolside/laguna-xs-2.1:free",
        "cohere/north-mini-code:free",
        "nvidia/nemotron-3-nano-30b-a3b:free",
    ]


def test_sort_key_known_providers_form_one_group():
    assert sort_key("qwen", 10, "b", "q/b") < sort_key("google", 5, "a", "g/a")
    assert sort_key("google", 5, "a", "g/a") < sort_key("nvidia", 10**6, "a", "n/a")
    assert sort_key("google", 5, "a", "g/a") < sort_key("google", 5, "b", "g/b")


def test_instance_sets_the_given_values_and_defaults_the_others():
    now = timezone.now()
    obj = services._instance(
        LLMModel, {"id": 7, "model_id": "a/b", "first_seen_at": now, "pricing": {"prompt": "0"}}
    )
    assert (obj.pk, obj.model_id, obj.first_seen_at, obj.pricing) == (
        7,
        "a/b",
        now,
        {"prompt": "0"},
    )
    assert (obj.source, obj.input_modalities, obj.health, obj.is_available) == (
        "openrouter",
        [],
        {},
        True,
    )


def test_instance_refuses_a_name_that_is_not_a_field():
    with pytest.raises(TypeError) as excinfo:
        services._instance(LLMModel, {"model_id": "a/b", "pk": 3, "bogus": 1})
    assert str(excinfo.value) == "LLMModel has no field bogus, pk"


def test_instance_defaults_are_not_shared_between_rows():
    first, second = (services._instance(LLMModel, {}) for _ in range(2))
    first.health["checked"] = True
    assert second.health == {}


def test_sort_key_takes_the_known_providers_given():
    known = {"nvidia"}
    assert sort_key("nvidia", 5, "a", "n/a", known=known) < sort_key(
        "google", 9, "a", "g/a", known=known
    )


def test_iso_is_utc_with_milliseconds_and_z():
    paris = datetime(2026, 8, 19, 14, 5, 6, 123999, tzinfo=ZoneInfo("Europe/Paris"))
    assert services.iso(paris) == "2026-08-19T12:05:06.123Z"


def test_raw_is_the_record_as_received(serve):
    serve(2026)
    sync_models(trigger="cli")
    *_offsets, record = next(openrouter.read_document(fixture_bytes(2026)).records())
    assert LLMModel.objects.get(model_id=record["id"]).raw == record


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL's jsonb reformats it")
def test_raw_text_is_stored_verbatim_and_matches_its_hash(serve):
    serve(2026)
    sync_models(trigger="cli")
    start, end, record = next(openrouter.read_document(fixture_bytes(2026)).records())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT raw, content_hash FROM models_sync_llmmodel WHERE model_id = %s", [record["id"]]
        )
        stored, digest = cursor.fetchone()
    assert stored == fixture_bytes(2026).decode()[start:end]
    assert hashlib.sha1(f"{openrouter.RULES_VERSION}\n{stored}".encode()).hexdigest() == digest


@pytest.fixture
def success_unsaveable(monkeypatch):
    """Saving a run's success fails, as a full disk would, inside the write transaction."""
    save = SyncRun.save

    def save_but_not_success(run, *args, **kwargs):
        if run.status == SyncRun.Status.SUCCESS:
            raise DatabaseError("disk full")
        return save(run, *args, **kwargs)

    monkeypatch.setattr(SyncRun, "save", save_but_not_success)


def test_a_run_that_cannot_record_its_success_stores_no_model(serve, success_unsaveable):
    serve(2026)
    with pytest.raises(SyncFailed) as excinfo:
        sync_models(trigger="cli")
    assert excinfo.value.message == "writing the models failed: DatabaseError: disk full"
    assert LLMModel.objects.count() == 0
    assert SyncRun.objects.get().status == "failed"
    assert not services.sync_is_running()


def test_a_run_whose_write_was_rolled_back_counts_nothing(serve, success_unsaveable):
    serve(2026)
    with pytest.raises(SyncFailed):
        sync_models(trigger="cli")
    run = SyncRun.objects.get()
    assert (run.added_count, run.changes_count, run.free_ids) == (0, 0, [])


@pytest.mark.parametrize(
    ("number", "stored"), [("1e-16384", 0.0), ("0e20000", 0.0), ("1E+999", None)]
)
def test_a_number_no_database_takes_as_written_is_stored_decoded(serve, number, stored):
    record = json.dumps({**fixture_records(2026)[0], "future": 1})
    body = '{"data": [' + record.replace('"future": 1', f'"future": {number}') + "]}"
    serve(body=body.encode())
    sync_models(trigger="cli")
    serve(body=body.replace('"name": "', '"name": "New ').encode())  # and again, as an update
    assert sync_models(trigger="cli").status == "success"
    assert LLMModel.objects.get().raw["future"] == stored


def test_sync_stores_fields(serve):
    serve(2026)
    sync_models(trigger="cli")
    model = LLMModel.objects.get(model_id="google/gemma-4-31b-it:free")
    assert model.author == "google"
    assert model.canonical_slug.startswith("google/gemma-4-31b-it")
    assert model.has_vision
    assert "tools" in model.supported_parameters
    assert LLMModel.objects.supporting("tools").filter(pk=model.pk).exists()
    assert model.pricing["prompt"] == "0"
    assert model.raw["id"] == model.model_id
    assert model.is_available
    assert model.created_upstream is not None


def test_upstream_500_leaves_rows_untouched_and_records_failure(serve, settings):
    serve(2026)
    sync_models(trigger="cli")
    before = table_dump()
    settings.MODELS_SYNC_RETRIES = 0
    serve(body=b"oops", status=500)
    with pytest.raises(SyncFailed) as excinfo:
        sync_models(trigger="cli")
    assert excinfo.value.message == "openrouter.ai answered HTTP 500 Internal Server Error"
    assert table_dump() == before
    run = SyncRun.objects.first()
    assert (run.status, run.http_status, run.error) == ("failed", 500, excinfo.value.message)


def test_timeout_leaves_rows_untouched(serve):
    serve(2026)
    sync_models(trigger="cli")
    before = table_dump()
    serve(body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(SyncFailed):
        sync_models(trigger="schedule")
    assert table_dump() == before
    assert SyncRun.objects.first().status == "failed"


def test_malformed_json_fails_the_run(serve):
    serve(body=b'{"data": [{"id": "a/b"')
    with pytest.raises(SyncFailed) as excinfo:
        sync_models(trigger="cli")
    assert excinfo.value.message.startswith("response is not valid JSON")
    assert LLMModel.objects.count() == 0


def test_empty_list_is_refused(serve):
    serve(2026)
    sync_models(trigger="cli")
    before = table_dump()
    serve(records=[])
    with pytest.raises(SyncRefused) as excinfo:
        sync_models(trigger="cli")
    assert excinfo.value.message == (
        "upstream returned no models; nothing was changed (use force to accept)"
    )
    assert table_dump() == before
    assert SyncRun.objects.first().status == "refused"


def test_empty_list_accepted_with_force(serve):
    serve(2026)
    sync_models(trigger="cli")
    serve(records=[])
    run = sync_models(trigger="cli", force=True)
    assert run.unavailable_count == 414
    assert LLMModel.objects.available().count() == 0
    assert LLMModel.objects.count() == 414


def test_losing_more_than_half_is_refused(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    before = table_dump()
    serve(records=records[:130])
    with pytest.raises(SyncRefused) as excinfo:
        sync_models(trigger="cli")
    assert excinfo.value.message == (
        "the answer would mark 284 of 414 available models unavailable (more than 50%); "
        "nothing was changed (use force to accept)"
    )
    assert table_dump() == before


def test_second_identical_sync_changes_nothing_visible(serve):
    serve(2026)
    sync_models(trigger="cli")
    before = [row[:3] + row[4:] for row in table_dump()]
    serve(2026)
    run = sync_models(trigger="cli")
    assert (run.added_count, run.updated_count, run.unavailable_count, run.restored_count) == (
        0,
        0,
        0,
        0,
    )
    assert [row[:3] + row[4:] for row in table_dump()] == before


def test_second_sync_moves_last_seen_only(serve):
    serve(2026)
    first = sync_models(trigger="cli")
    serve(2026)
    second = sync_models(trigger="cli")
    model = LLMModel.objects.first()
    assert model.first_seen_at == first.started_at
    assert model.last_seen_at == second.started_at


def test_disappeared_model_is_marked_unavailable_not_deleted(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    gone = records[0]["id"]
    serve(records=records[1:])
    run = sync_models(trigger="cli")
    assert run.unavailable_count == 1
    row = LLMModel.objects.get(model_id=gone)
    assert not row.is_available
    assert LLMModel.objects.count() == 414


def test_reappearing_model_is_restored(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    serve(records=records[1:])
    sync_models(trigger="cli")
    serve(records=records)
    run = sync_models(trigger="cli")
    assert (run.restored_count, run.added_count) == (1, 0)
    assert LLMModel.objects.get(model_id=records[0]["id"]).is_available


def test_changed_record_is_updated(serve):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    changed = [{**records[0], "name": "Renamed"}, *records[1:]]
    serve(records=changed)
    run = sync_models(trigger="cli")
    assert run.updated_count == 1
    assert LLMModel.objects.get(model_id=records[0]["id"]).name == "Renamed"


def test_malformed_records_are_skipped_and_counted(serve):
    records = fixture_records(2026)
    serve(records=[*records, {"id": None}, {"id": "x/y", "pricing": "free"}])
    run = sync_models(trigger="cli")
    assert (run.status, run.skipped_count, run.fetched_count) == ("success", 2, 416)
    assert LLMModel.objects.count() == 414


def _synthetic(n: int) -> list[dict]:
    base = fixture_records(2026)
    return [{**base[i % len(base)], "id": f"synth/model-{i}"} for i in range(n)]


@pytest.mark.parametrize("phase", ["first", "second"])
def test_query_count_is_constant_in_catalogue_size(serve, phase):
    counts = []
    for n in (100, 400):
        LLMModel.objects.all().delete()
        SyncRun.objects.all().delete()
        records = _synthetic(n)
        if phase == "second":
            serve(records=records)
            sync_models(trigger="cli")
        serve(records=records)
        with CaptureQueriesContext(connection) as ctx:
            sync_models(trigger="cli")
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_sync_under_a_fixed_query_budget(serve, django_assert_max_num_queries):
    serve(records=_synthetic(400))
    with django_assert_max_num_queries(16):
        sync_models(trigger="cli")


def test_second_sync_while_locked_reports_already_running(serve):
    SyncLock.objects.filter(name=services.LOCK_NAME).update(
        holder="other", expires_at=timezone.now() + timedelta(minutes=5)
    )
    serve(2026)
    with pytest.raises(SyncAlreadyRunning) as excinfo:
        sync_models(trigger="admin")
    assert excinfo.value.message == "another sync is already running"
    assert SyncRun.objects.first().status == "refused"
    assert LLMModel.objects.count() == 0


def test_expired_lock_is_taken_over(serve):
    SyncLock.objects.filter(name=services.LOCK_NAME).update(
        holder="dead", expires_at=timezone.now() - timedelta(seconds=1)
    )
    serve(2026)
    assert sync_models(trigger="cli").status == "success"
    assert SyncLock.objects.get().holder == ""


def test_lock_released_after_failure(serve):
    serve(body=b"nope")
    with pytest.raises(SyncFailed):
        sync_models(trigger="cli")
    assert not services.sync_is_running()


def test_sync_logs_with_seed_prefix(serve, caplog):
    serve(2026)
    with caplog.at_level("INFO", logger="models_sync"):
        sync_models(trigger="cli")
    assert "[OpenRouter Sync] Found 18 free models" in caplog.messages


def test_source_file_snapshot(upstream):
    from .conftest import fixture_path

    run = sync_models(trigger="cli", source=str(fixture_path(2024)))
    assert run.free_count == 10
    assert run.source.endswith("models-2024-02-18.json")
    assert len(upstream.calls) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_do_not_duplicate_or_lose_rows(serve):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises the whole file)")
    records = fixture_records(2026)
    for _ in range(4):
        serve(records=records)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def worker():
        from django.db import connections

        barrier.wait()
        try:
            outcomes.append(sync_models(trigger="cli").status)
        except SyncAlreadyRunning:
            outcomes.append("already running")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "success" in outcomes
    assert set(outcomes) <= {"success", "already running"}
    assert LLMModel.objects.count() == 414
    assert SyncRun.objects.count() == 4
    assert SyncRun.objects.filter(status="running").count() == 0


def _counting_parser(monkeypatch) -> list[str]:
    parsed: list[str] = []
    real = openrouter.parse_record

    def counting(record):
        parsed.append(record.get("id") if isinstance(record, dict) else record)
        return real(record)

    monkeypatch.setattr(openrouter, "parse_record", counting)
    return parsed


def test_unchanged_records_are_not_parsed_again(serve, monkeypatch):
    records = fixture_records(2026)
    serve(records=records)
    sync_models(trigger="cli")
    parsed = _counting_parser(monkeypatch)
    serve(records=[{**records[7], "name": "Renamed"}, *records[:7], *records[8:]])
    run = sync_models(trigger="cli")
    assert parsed == [records[7]["id"]]
    assert (run.updated_count, run.changes_count) == (1, 1)


def test_reformatted_answer_is_no_update(serve, monkeypatch):
    serve(2026)  # pretty-printed, as OpenRouter's file
    sync_models(trigger="cli")
    before = {row[1]: row[4:-4] for row in table_dump()}
    serve(records=fixture_records(2026))  # the same records, compact
    run = sync_models(trigger="cli")
    assert (run.updated_count, run.changes_count) == (0, 0)
    assert {row[1]: row[4:-4] for row in table_dump()} == before
    parsed = _counting_parser(monkeypatch)
    serve(records=fixture_records(2026))
    sync_models(trigger="cli")
    assert parsed == []


def test_rules_version_bump_reclassifies_every_model(serve, monkeypatch):
    serve(2026)
    sync_models(trigger="cli")
    monkeypatch.setattr(openrouter, "RULES_VERSION", "2")
    parsed = _counting_parser(monkeypatch)
    serve(2026)
    run = sync_models(trigger="cli")
    assert len(parsed) == 414
    assert run.updated_count == 0


def _synced(years: list[int]) -> tuple[list[tuple], list[tuple]]:
    from models_sync.models import ModelChange

    for year in years:
        sync_models(trigger="cli", force=True, source=str(fixture_path(year)))
    dump = [row[:2] + row[4:] for row in table_dump()]  # timestamps differ between runs
    changes = ModelChange.objects.values_list("model_id", "kind", "before", "after")
    return dump, sorted(changes, key=repr)


@pytest.mark.parametrize("kept", [0, 150])
def test_models_parsed_again_past_the_kept_ones_store_the_same(monkeypatch, kept):
    """A huge catalogue keeps only KEEP_PARSED parsed models; the others are parsed again when
    written. Both paths must store the same rows and the same changelog."""
    years = [2024, 2025, 2026]
    expected = _synced(years)
    LLMModel.objects.all().delete()
    SyncRun.objects.all().delete()
    monkeypatch.setattr(services, "KEEP_PARSED", kept)
    assert _synced(years) == expected


def test_read_entries_keeps_at_most_keep_parsed_models(monkeypatch):
    monkeypatch.setattr(services, "KEEP_PARSED", 100)
    document = openrouter.read_document(fixture_bytes(2026))
    entries, scan = services._read_entries(
        document, reader=catalogues.get("openrouter"), existing={}
    )
    assert (len(entries), scan.fetched) == (414, 414)
    assert sum(entry.model is not None for entry in entries) == 100


def test_past_the_kept_models_each_record_is_parsed_once(serve, monkeypatch):
    monkeypatch.setattr(services, "KEEP_PARSED", 100)
    serve(2026)
    parsed = _counting_parser(monkeypatch)

    sync_models(trigger="cli")

    assert sorted(parsed) == sorted(record["id"] for record in fixture_records(2026))


def test_signal_changes_are_the_runs_rows_in_order(serve):
    from models_sync.signals import models_changed

    received = []

    def receiver(sender, run, changes, **kwargs):
        received.append(list(changes.values_list("run_id", "kind", "model_id")))

    models_changed.connect(receiver)
    try:
        serve(2024)
        run = sync_models(trigger="cli")
    finally:
        models_changed.disconnect(receiver)
    first = fixture_records(2024)[0]["id"]
    assert received[0][:1] == [(run.pk, "added", first)]
    assert len(received[0]) == 100
