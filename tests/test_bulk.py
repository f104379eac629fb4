from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, models
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.db.models.query_utils import DeferredAttribute
from django.test.utils import CaptureQueriesContext, isolate_apps
from django.utils import timezone

from models_sync import bulk, services
from models_sync.models import LLMModel, ModelChange, RecordText, SyncRun, WebhookDelivery
from models_sync.openrouter import parse_models

from .conftest import fixture_records

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 17, 30, 5, 123456, tzinfo=UTC)


def new_rows(year: int = 2026) -> list[dict[str, Any]]:
    """New rows' values as a first sync builds them, from a real OpenRouter answer."""
    records = {record["id"]: record for record in fixture_records(year)}
    return [
        {
            **services._row_values(model),
            "raw": RecordText(json.dumps(records[model.model_id])),
            "quality_rank": rank,
            "availability": 1.0 if model.is_free else 0.0,
            "source": "openrouter",
            "model_id": model.model_id,
            "first_seen_at": NOW,
            "last_seen_at": NOW,
        }
        for rank, model in enumerate(parse_models(list(records.values())).models, start=1)
    ]


def instances(model: type, rows: list[dict[str, Any]]) -> list:
    return [model(**row) for row in rows]


def stored(model: type) -> list[tuple]:
    """Every column but the key, as the database holds it (no field converts it back)."""
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    table, pk = model._meta.db_table, model._meta.pk.column
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} ORDER BY {quote(pk)}"
        )
        return cursor.fetchall()


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_insert_stores_what_bulk_create_stores(year):
    LLMModel.objects.bulk_create(instances(LLMModel, new_rows(year)))
    expected = stored(LLMModel)
    LLMModel.objects.all().delete()

    bulk.insert(LLMModel, new_rows(year))

    assert stored(LLMModel) == expected


def test_insert_stores_changelog_rows_as_bulk_create_does():
    rows = new_rows()
    keys = bulk.insert(LLMModel, rows)
    run = SyncRun.objects.create(started_at=NOW, trigger=SyncRun.Trigger.CLI)

    def changes() -> list[dict[str, Any]]:
        return [
            services._change(run, pk, row["model_id"], row["author"], kind, before, after)
            for pk, row in zip(keys, rows, strict=True)
            for kind, before, after in [
                (ModelChange.Kind.ADDED, None, {"name": row["name"], "isFree": row["is_free"]}),
                (ModelChange.Kind.PRICING_CHANGED, {"prompt": "0"}, {"prompt": "0.0001"}),
            ]
        ]

    ModelChange.objects.bulk_create(instances(ModelChange, changes()))
    expected = stored(ModelChange)
    ModelChange.objects.all().delete()

    bulk.insert(ModelChange, changes())

    assert stored(ModelChange) == expected


def test_insert_returns_the_keys_in_order():
    rows = new_rows()

    keys = bulk.insert(LLMModel, rows)

    assert keys == list(LLMModel.objects.order_by("pk").values_list("pk", flat=True))
    assert dict(zip((row["model_id"] for row in rows), keys, strict=True)) == dict(
        LLMModel.objects.values_list("model_id", "pk")
    )


def test_a_field_left_out_takes_its_default():
    row = new_rows()[0]
    del row["category"]  # and "health", which a sync never sets

    (key,) = bulk.insert(LLMModel, [row])

    stored_row = LLMModel.objects.get(pk=key)
    assert (stored_row.health, stored_row.category) == ({}, "general")


def test_an_unknown_field_is_refused():
    rows = new_rows()
    rows[3]["colour"] = "blue"

    with pytest.raises(TypeError) as refused:
        bulk.insert(LLMModel, rows)

    assert str(refused.value) == "LLMModel has no field colour"
    assert not LLMModel.objects.exists()


@pytest.mark.parametrize("batch", [7, None])  # small batches, and the backend's own size
def test_insert_sends_the_statements_bulk_create_sends(batch, monkeypatch):
    if batch:
        monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: batch)
    with CaptureQueriesContext(connection) as expected:
        LLMModel.objects.bulk_create(instances(LLMModel, new_rows()))
    rows = stored(LLMModel)
    LLMModel.objects.all().delete()

    with CaptureQueriesContext(connection) as sent:
        keys = bulk.insert(LLMModel, new_rows())

    assert [q["sql"] for q in sent] == [q["sql"] for q in expected]
    assert stored(LLMModel) == rows
    assert keys == list(LLMModel.objects.order_by("pk").values_list("pk", flat=True))


def test_insert_of_no_rows_sends_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert bulk.insert(LLMModel, []) == []


def test_the_sync_tables_take_the_short_path():
    rows = new_rows()
    with mock.patch.object(QuerySet, "bulk_create") as bulk_create:
        keys = bulk.insert(LLMModel, rows)
        run = SyncRun.objects.create(started_at=timezone.now(), trigger=SyncRun.Trigger.CLI)
        bulk.insert(
            ModelChange,
            [
                services._change(run, pk, row["model_id"], row["author"], "added", None)
                for pk, row in zip(keys, rows, strict=True)
            ],
        )

    assert bulk_create.call_count == 0
    assert LLMModel.objects.count() == len(rows)
    assert ModelChange.objects.count() == len(rows)


def test_an_expression_goes_through_bulk_create():
    (key,) = bulk.insert(SyncRun, [{"started_at": Now(), "trigger": SyncRun.Trigger.CLI}])

    run = SyncRun.objects.get(pk=key)
    assert abs(run.started_at - timezone.now()) < timedelta(minutes=1)


def test_a_field_with_its_own_pre_save_goes_through_bulk_create():
    run = SyncRun.objects.create(started_at=timezone.now(), trigger=SyncRun.Trigger.CLI)
    (key,) = bulk.insert(WebhookDelivery, [{"run_id": run.pk, "url": "https://example.com/hook"}])

    assert WebhookDelivery.objects.get(pk=key).created_at is not None


class StampField(models.DateTimeField):
    def pre_save(self, model_instance, add):
        return timezone.now()


class UpperDescriptor(DeferredAttribute):
    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = value.upper()


class UpperField(models.CharField):
    descriptor_class = UpperDescriptor


@isolate_apps("models_sync")
def test_fields_that_change_a_value_on_the_way_in_go_through_bulk_create():
    class Stamped(models.Model):  # noqa: DJ008 (never shown)
        stamp = StampField(null=True)

        class Meta:
            app_label = "models_sync"

    class Shouting(models.Model):  # noqa: DJ008 (never shown)
        word = UpperField(max_length=10)

        class Meta:
            app_label = "models_sync"

    class KeyOnly(models.Model):  # noqa: DJ008 (never shown)
        class Meta:
            app_label = "models_sync"

    class Plain(models.Model):  # noqa: DJ008 (never shown)
        when = models.DateTimeField()
        run = models.ForeignKey(SyncRun, on_delete=models.CASCADE)

        class Meta:
            app_label = "models_sync"

    assert [bulk._plain_fields(m) for m in (Stamped, Shouting, KeyOnly)] == [None, None, None]
    assert [f.name for f in bulk._plain_fields(Plain)] == ["when", "run"]


def test_a_row_with_a_key_goes_through_bulk_create():
    row = new_rows()[0] | {"id": 4242}

    assert bulk.insert(LLMModel, [row]) == [4242]

    assert LLMModel.objects.get(pk=4242).model_id == row["model_id"]


def sent(values: list[Any]) -> list[Any]:
    """The values as the database gets them: PostgreSQL's ``Jsonb`` wrappers as their text."""
    return [
        (value.dumps or json.dumps)(value.obj) if type(value).__name__ == "Jsonb" else value
        for value in values
    ]


def prepared(values: list[Any], field: models.Field) -> list[Any]:
    return sent(bulk._prepared(values, field, connection))


def prepared_naively(values: list[Any], field: models.Field) -> list[Any]:
    return sent([field.get_db_prep_save(value, connection) for value in values])


def test_equal_values_of_a_column_are_prepared_once():
    field = LLMModel._meta.get_field("supported_parameters")
    values = [["tools", "top_p"], ["seed"], ["tools", "top_p"], ["seed"], ["tools", "top_p"]]

    with mock.patch.object(field, "get_db_prep_save", wraps=field.get_db_prep_save) as prepare:
        result = prepared(values, field)

    assert prepare.call_count == 2
    assert result == prepared_naively(values, field)


def test_values_that_are_equal_but_stored_apart_are_prepared_apart():
    json_field = LLMModel._meta.get_field("pricing")
    float_field = LLMModel._meta.get_field("availability")
    objects = [{"free": True}, {"free": 1}, {"free": 1.0}, {"free": "1"}, {"free": True}]
    objects += [True, 1, "1", True, 1]
    numbers = [0.0, -0.0, 1, 1.0, True, 0.0]

    assert prepared(objects, json_field) == prepared_naively(objects, json_field)
    assert list(map(repr, prepared(numbers, float_field))) == list(
        map(repr, prepared_naively(numbers, float_field))
    )


def test_a_string_goes_through_a_text_column_unprepared():
    field = LLMModel._meta.get_field("description")
    values = ["Gemma 3", "Gemma 3", "Llama"]

    with mock.patch.object(field, "get_db_prep_save") as prepare:
        result = bulk._prepared(values, field, connection)

    assert prepare.call_count == 0
    assert [a is b for a, b in zip(result, values, strict=True)] == [True, True, True]


def test_a_record_text_goes_through_its_encoder():
    field = LLMModel._meta.get_field("raw")
    values = [RecordText('{"id": "a/b"}'), RecordText('{"id": "a/b"}'), {"id": "a/b"}]

    assert prepared(values, field) == ['{"id": "a/b"}'] * 3


class TaggedJSONField(models.JSONField):
    def get_prep_value(self, value):
        return {"tag": self.model.__name__, "value": value}


def on_a_model(field: models.Field) -> models.Field:
    """``field`` as a column of a throwaway model (under ``isolate_apps``)."""
    meta = type("Meta", (), {"app_label": "models_sync"})
    attrs = {"value": field, "Meta": meta, "__module__": __name__}
    return type("Throwaway", (models.Model,), attrs)._meta.get_field("value")


@isolate_apps("models_sync")
def test_a_field_that_prepares_values_its_own_way_prepares_every_one():
    field = on_a_model(TaggedJSONField())
    values = [["a"], ["a"], ["a"]]

    with mock.patch.object(field, "get_db_prep_save", wraps=field.get_db_prep_save) as prepare:
        result = prepared(values, field)

    assert prepare.call_count == 3
    assert result == prepared_naively(values, field)


class TextStoredJSONField(models.JSONField):
    def get_internal_type(self):
        return "TextField"


@isolate_apps("models_sync")
def test_a_string_in_a_json_column_stored_as_text_is_encoded():
    field = on_a_model(TextStoredJSONField())

    assert prepared(["a", "a"], field) == prepared_naively(["a", "a"], field) == ['"a"', '"a"']
