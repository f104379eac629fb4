from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from models_sync import conf, services
from models_sync.models import LLMModel, SyncLock, SyncRun

pytestmark = pytest.mark.django_db

PANEL_URL = "/admin/models_sync/llmmodel/panel/"
SYNC_URL = "/admin/models_sync/llmmodel/panel/sync/"
XSS = "<script>alert(1)</script>"


def make_model(model_id: str, **fields: Any) -> LLMModel:
    now = timezone.now()
    values: dict[str, Any] = {
        "name": model_id,
        "author": model_id.split("/", 1)[0],
        "first_seen_at": now,
        "last_seen_at": now,
        "is_free": True,
        "is_available": True,
        "context_length": 8192,
    }
    values.update(fields)
    return LLMModel.objects.create(model_id=model_id, **values)


def bulk_models(count: int, *, start: int = 0) -> None:
    now = timezone.now()
    LLMModel.objects.bulk_create(
        LLMModel(
            model_id=f"author{i % 7}/model-{i}",
            name=f"Model {i}",
            author=f"author{i % 7}",
            first_seen_at=now,
            last_seen_at=now,
            is_free=i % 3 != 0,
            has_vision=i % 5 == 0,
            context_length=1000 * (i + 1),
            quality_rank=i,
        )
        for i in range(start, start + count)
    )


def make_run(**fields: Any) -> SyncRun:
    values: dict[str, Any] = {
        "started_at": timezone.now(),
        "trigger": SyncRun.Trigger.CLI,
        "status": SyncRun.Status.SUCCESS,
        "duration_ms": 1234,
    }
    values.update(fields)
    return SyncRun.objects.create(**values)


class _TextOf(HTMLParser):
    """Collects the text inside the element carrying a given ``data-testid``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.depth, self.found, self.parts = name, 0, False, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag not in VOID
        elif ("data-testid", self.name) in attrs:
            self.depth, self.found = 1, True

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


VOID = {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}


def text_of(html: str, name: str) -> str:
    """The text of the element carrying ``data-testid=name``, spaces collapsed."""
    parser = _TextOf(name)
    parser.feed(html)
    assert parser.found, f"no data-testid={name}"
    return " ".join(" ".join(parser.parts).split())


def data_value(html: str, name: str) -> int:
    match = re.search(rf'data-testid="{name}" data-value="(\d+)"', html)
    assert match, f"no data-value for {name}"
    return int(match.group(1))


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def staff_without_sync(db) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_llmmodel"),
        Permission.objects.get(codename="view_syncrun"),
    )
    return user


@pytest.fixture
def viewer_client(staff_without_sync) -> Client:
    client = Client()
    client.force_login(staff_without_sync)
    return client


@pytest.fixture
def synced(serve) -> SyncRun:
    serve(2025)
    return services.sync_models(trigger=SyncRun.Trigger.CLI)


# --- The model admin ------------------------------------------------------------------------


def test_model_changelist_lists_models(admin_client):
    make_model("google/gemma", name="Gemma Free")
    response = admin_client.get(reverse("admin:models_sync_llmmodel_changelist"))
    assert response.status_code == 200
    assert "Gemma Free" in response.content.decode()


def test_model_changelist_filters_on_author(admin_client):
    make_model("google/gemma", name="Gemma Free")
    make_model("qwen/qwen3", name="Qwen Three")
    response = admin_client.get(
        reverse("admin:models_sync_llmmodel_changelist"), {"author": "qwen"}
    )
    html = response.content.decode()
    assert "Qwen Three" in html
    assert "Gemma Free" not in html


def test_model_changelist_searches_description(admin_client):
    make_model("google/gemma", name="Gemma Free", description="a needle here")
    make_model("qwen/qwen3", name="Qwen Three")
    response = admin_client.get(reverse("admin:models_sync_llmmodel_changelist"), {"q": "needle"})
    html = response.content.decode()
    assert "Gemma Free" in html
    assert "Qwen Three" not in html


def test_model_cannot_be_added(admin_client):
    response = admin_client.get(reverse("admin:models_sync_llmmodel_add"))
    assert response.status_code == 403


def test_model_change_page_is_read_only(admin_client):
    model = make_model("google/gemma", name="Gemma Free")
    url = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    response = admin_client.post(url, {"name": "hand edit"})
    model.refresh_from_db()
    assert (response.status_code, model.name) == (403, "Gemma Free")


def test_model_cannot_be_deleted(admin_client):
    model = make_model("google/gemma")
    response = admin_client.post(
        reverse("admin:models_sync_llmmodel_delete", args=[model.pk]), {"post": "yes"}
    )
    assert (response.status_code, LLMModel.objects.count()) == (403, 1)


def test_sync_runs_are_listed_newest_first(admin_client):
    now = timezone.now()
    make_run(started_at=now - timedelta(hours=2), error="older-run")
    make_run(started_at=now, error="newer-run")
    html = admin_client.get(reverse("admin:models_sync_syncrun_changelist")).content.decode()
    assert html.index("newer-run") < html.index("older-run")


def test_sync_run_cannot_be_changed(admin_client):
    run = make_run()
    url = reverse("admin:models_sync_syncrun_change", args=[run.pk])
    response = admin_client.post(url, {"status": "failed"})
    run.refresh_from_db()
    assert (response.status_code, run.status) == (403, SyncRun.Status.SUCCESS)


def test_sync_run_cannot_be_added(admin_client):
    assert admin_client.get(reverse("admin:models_sync_syncrun_add")).status_code == 403


def test_sync_run_cannot_be_deleted(admin_client):
    run = make_run()
    url = reverse("admin:models_sync_syncrun_delete", args=[run.pk])
    response = admin_client.post(url, {"post": "yes"})
    assert (response.status_code, SyncRun.objects.count()) == (403, 1)


# --- Links to the panel ---------------------------------------------------------------------


def test_panel_url_name():
    assert reverse("admin:models_sync_llmmodel_panel") == PANEL_URL


def test_changelist_links_to_panel(admin_client):
    html = admin_client.get(reverse("admin:models_sync_llmmodel_changelist")).content.decode()
    assert f'href="{PANEL_URL}"' in html


def test_admin_index_links_to_panel(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{PANEL_URL}"' in html


def test_app_index_links_to_panel(admin_client):
    html = admin_client.get(reverse("admin:app_list", args=["models_sync"])).content.decode()
    assert f'href="{PANEL_URL}"' in html


def test_admin_index_hides_panel_link_without_view_permission(client):
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert PANEL_URL not in html


# --- The panel ------------------------------------------------------------------------------


def test_panel_needs_login(client):
    response = client.get(PANEL_URL)
    assert (response.status_code, response["Location"]) == (
        302,
        f"/admin/login/?next={PANEL_URL}",
    )


def test_panel_needs_view_permission(client):
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(PANEL_URL).status_code == 403


def test_panel_renders_on_empty_database(admin_client):
    response = admin_client.get(PANEL_URL)
    html = response.content.decode()
    assert (response.status_code, data_value(html, "free-count")) == (200, 0)


def test_panel_shows_free_count_from_db(admin_client, synced):
    html = admin_client.get(PANEL_URL).content.decode()
    expected = LLMModel.objects.available().free().count()
    assert (data_value(html, "free-count"), text_of(html, "free-count")) == (expected, "67")


def test_panel_shows_total_available_from_db(admin_client, synced):
    html = admin_client.get(PANEL_URL).content.decode()
    assert data_value(html, "total-available") == LLMModel.objects.available().count() == 321


def test_panel_shows_vision_and_context_stats_from_db(admin_client, synced):
    html = admin_client.get(PANEL_URL).content.decode()
    free = list(LLMModel.objects.available().free())
    contexts = [m.context_length for m in free]
    assert (
        data_value(html, "with-vision"),
        data_value(html, "average-context"),
        data_value(html, "max-context"),
    ) == (
        sum(m.has_vision for m in free),
        round(sum(contexts) / len(contexts)),
        max(contexts),
    )


def test_panel_chart_counts_free_models_by_author(admin_client, synced):
    html = admin_client.get(PANEL_URL).content.decode()
    shown = dict(
        (author, int(count))
        for author, count in re.findall(r'data-author="([^"]+)" data-count="(\d+)"', html)
    )
    assert shown == dict(LLMModel.objects.available().providers())


def test_panel_lists_authors(admin_client, synced):
    html = admin_client.get(PANEL_URL).content.decode()
    authors = sorted(a for a, _n in LLMModel.objects.available().providers())
    assert text_of(html, "authors").split() == authors


def test_panel_lists_best_free_models(admin_client, synced):
    html = admin_client.get(PANEL_URL).content.decode()
    best = LLMModel.objects.available().free().by_quality().first()
    assert text_of(html, "top-models").startswith(best.name)


def test_panel_shows_last_sync_as_natural_time_with_exact_title(admin_client):
    seen = timezone.now() - timedelta(minutes=5, seconds=10)
    make_model("google/gemma", last_seen_at=seen)
    html = admin_client.get(PANEL_URL).content.decode()
    local = timezone.localtime(seen)
    assert text_of(html, "last-sync") == "Dernière synchronisation réussie : il y a 5 minutes"
    assert f'title="{local.day} ' in html


def test_panel_says_how_stale_the_data_is(admin_client):
    make_model("google/gemma", last_seen_at=timezone.now() - timedelta(days=3, minutes=1))
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "stale") == (
        "Données vieilles de 3 jours. Les chiffres ci-dessous viennent de la base de données."
    )


def test_panel_fresh_data_is_not_called_stale(admin_client):
    make_model("google/gemma")
    assert 'data-testid="stale"' not in admin_client.get(PANEL_URL).content.decode()


def test_panel_staleness_follows_fresh_hours(admin_client, settings):
    settings.MODELS_SYNC_FRESH_HOURS = 1
    make_model("google/gemma", last_seen_at=timezone.now() - timedelta(hours=2))
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "stale").startswith("Données vieilles de 2 heures.")


def test_panel_never_calls_upstream(admin_client, upstream):
    make_model("google/gemma", last_seen_at=timezone.now() - timedelta(days=3))
    response = admin_client.get(PANEL_URL)
    assert (response.status_code, len(upstream.calls)) == (200, 0)


def test_panel_explains_a_failed_last_run(admin_client):
    make_run(
        status=SyncRun.Status.FAILED,
        http_status=500,
        error="openrouter.ai answered HTTP 500 Internal Server Error",
    )
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "last-run").startswith(
        "échec OpenRouter a des difficultés (HTTP 500) ; rien n'a été modifié."
    )


def test_panel_shows_the_failed_run_error(admin_client):
    make_run(status=SyncRun.Status.FAILED, error="could not reach openrouter.ai: refused")
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "last-run").endswith(
        "Détail technique : could not reach openrouter.ai: refused"
    )


def test_panel_explains_an_unreachable_upstream(admin_client):
    make_run(status=SyncRun.Status.FAILED, error="could not reach openrouter.ai: refused")
    html = admin_client.get(PANEL_URL).content.decode()
    assert "OpenRouter est injoignable (problème réseau) ; rien n'a été modifié." in unescape(html)


def test_panel_explains_a_refused_run(admin_client):
    make_run(status=SyncRun.Status.REFUSED, error="upstream returned no models")
    html = admin_client.get(PANEL_URL).content.decode()
    assert (
        "La réponse d'OpenRouter semblait fausse (vide, ou la plupart des modèles disparus) ; "
        "rien n'a été modifié." in unescape(html)
    )


def test_panel_history_shows_last_ten_runs_newest_first(admin_client):
    now = timezone.now()
    runs = [make_run(started_at=now - timedelta(minutes=i)) for i in range(12)]
    html = admin_client.get(PANEL_URL).content.decode()
    shown = [int(pk) for pk in re.findall(r'<tr data-run="(\d+)"', html)]
    assert shown == [run.pk for run in runs[:10]]


def test_panel_history_row_shows_trigger_duration_counts_status(admin_client):
    make_run(
        started_at=timezone.now() - timedelta(minutes=2, seconds=5),
        trigger=SyncRun.Trigger.ADMIN,
        duration_ms=1500,
        fetched_count=321,
        free_count=67,
        added_count=3,
        updated_count=4,
        unavailable_count=5,
        changes_count=6,
    )
    html = admin_client.get(PANEL_URL).content.decode()
    row = text_of(html, "history").split("Modifications", 1)[1].strip()
    assert row == "il y a 2 minutes admin succès 1,5 s 321 67 3 4 5 6"


def test_panel_shows_next_scheduled_run(admin_client):
    Schedule.objects.update_or_create(
        name=conf.schedule_name(),
        defaults={
            "func": "models_sync.tasks.run_scheduled_sync",
            "schedule_type": Schedule.MINUTES,
            "minutes": 360,
            "next_run": timezone.now() + timedelta(hours=3, minutes=1),
        },
    )
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "schedule") == (
        "Prochaine synchronisation planifiée : dans 3 heures (Minutes, toutes les 360 minutes)"
    )


def test_panel_without_schedule_shows_no_next_run(admin_client):
    Schedule.objects.filter(name=conf.schedule_name()).delete()
    html = admin_client.get(PANEL_URL).content.decode()
    assert 'data-testid="schedule"' not in html


def test_panel_is_in_english_when_asked(admin_client, synced):
    admin_client.cookies["django_language"] = "en"
    html = admin_client.get(PANEL_URL).content.decode()
    assert "Free models by author" in html


# --- The sync button ------------------------------------------------------------------------


def test_panel_shows_sync_button_to_superuser(admin_client):
    html = admin_client.get(PANEL_URL).content.decode()
    assert f'<form method="post" action="{SYNC_URL}"' in html


def test_panel_shows_sync_button_to_staff_with_permission(viewer_client, staff_without_sync):
    staff_without_sync.user_permissions.add(Permission.objects.get(codename="sync_models"))
    html = viewer_client.get(PANEL_URL).content.decode()
    assert 'data-testid="sync-button"' in html


def test_staff_without_permission_sees_panel_without_button(viewer_client):
    response = viewer_client.get(PANEL_URL)
    html = response.content.decode()
    assert (response.status_code, 'data-testid="sync-button"' in html, SYNC_URL in html) == (
        200,
        False,
        False,
    )


def test_staff_without_permission_forged_post_is_forbidden(viewer_client, upstream):
    response = viewer_client.post(SYNC_URL)
    assert (response.status_code, SyncRun.objects.count(), len(upstream.calls)) == (403, 0, 0)


def test_sync_url_refuses_get(admin_client):
    assert admin_client.get(SYNC_URL).status_code == 405


def test_sync_post_needs_csrf_token(admin_user, upstream):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(SYNC_URL)
    assert (response.status_code, SyncRun.objects.count()) == (403, 0)


def test_sync_post_with_csrf_token_is_accepted(admin_user, serve):
    serve(2026)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    client.get(PANEL_URL)
    token = client.cookies["csrftoken"].value
    response = client.post(SYNC_URL, {"csrfmiddlewaretoken": token})
    assert (response.status_code, response["Location"]) == (302, PANEL_URL)


def test_sync_success_redirects_to_panel(admin_client, serve):
    serve(2025)
    response = admin_client.post(SYNC_URL)
    assert (response.status_code, response["Location"]) == (302, PANEL_URL)


def test_sync_success_message_counts_free_models(admin_client, serve):
    serve(2025)
    response = admin_client.post(SYNC_URL, follow=True)
    assert messages_of(response) == [("success", "67 modèles synchronisés")]


def test_sync_success_message_is_singular_for_one(admin_client, serve):
    serve(records=[r for r in _records(2025) if r["id"].endswith(":free")][:1])
    response = admin_client.post(SYNC_URL, follow=True)
    assert messages_of(response) == [("success", "1 modèle synchronisé")]


def test_sync_success_records_an_admin_run(admin_client, serve):
    serve(2025)
    admin_client.post(SYNC_URL)
    run = SyncRun.objects.get()
    assert (run.trigger, run.status, run.free_count) == ("admin", "success", 67)


def test_sync_success_shows_the_new_run_in_history(admin_client, serve):
    serve(2025)
    response = admin_client.post(SYNC_URL, follow=True)
    run = SyncRun.objects.get()
    assert f'<tr data-run="{run.pk}" data-status="success" data-trigger="admin">' in (
        response.content.decode()
    )


def test_sync_upstream_failure_shows_the_error(admin_client, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    response = admin_client.post(SYNC_URL, follow=True)
    assert messages_of(response) == [
        (
            "error",
            "Échec de la synchronisation : openrouter.ai answered HTTP 500 Internal Server Error",
        )
    ]


def test_sync_upstream_failure_leaves_rows_untouched(admin_client, synced, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    before = list(LLMModel.objects.order_by("pk").values())
    serve(status=500, body=b"x")
    admin_client.post(SYNC_URL)
    assert list(LLMModel.objects.order_by("pk").values()) == before


def test_sync_upstream_failure_records_a_failed_admin_run(admin_client, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    admin_client.post(SYNC_URL)
    run = SyncRun.objects.get()
    assert (run.trigger, run.status, run.http_status) == ("admin", "failed", 500)


def test_sync_upstream_failure_panel_still_renders_from_db(admin_client, synced, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    html = admin_client.post(SYNC_URL, follow=True).content.decode()
    assert data_value(html, "free-count") == 67


def test_sync_refused_shows_a_warning(admin_client, serve):
    serve(records=[])
    response = admin_client.post(SYNC_URL, follow=True)
    assert messages_of(response) == [
        (
            "warning",
            "Synchronisation refusée : upstream returned no models; nothing was changed "
            "(use force to accept)",
        )
    ]


def test_sync_already_running_says_so(admin_client, upstream):
    SyncLock.objects.update_or_create(
        name=services.LOCK_NAME,
        defaults={"holder": "other", "expires_at": timezone.now() + timedelta(minutes=5)},
    )
    response = admin_client.post(SYNC_URL, follow=True)
    assert (messages_of(response), len(upstream.calls)) == (
        [("warning", "Une synchronisation est déjà en cours ; réessayez dans un instant.")],
        0,
    )


def test_panel_says_a_sync_is_in_progress(admin_client):
    SyncLock.objects.update_or_create(
        name=services.LOCK_NAME,
        defaults={"holder": "other", "expires_at": timezone.now() + timedelta(minutes=5)},
    )
    html = admin_client.get(PANEL_URL).content.decode()
    assert "Une synchronisation est en cours." in html


# --- Escaping -------------------------------------------------------------------------------


def test_panel_escapes_model_names(admin_client):
    make_model("evil/model", name=XSS)
    html = admin_client.get(PANEL_URL).content.decode()
    assert (XSS in html, "&lt;script&gt;alert(1)&lt;/script&gt;" in html) == (False, True)


def test_panel_escapes_authors(admin_client):
    make_model("evil/model", author='"><img src=x onerror=alert(1)>')
    html = admin_client.get(PANEL_URL).content.decode()
    assert "<img src=x" not in html


def test_panel_escapes_run_errors(admin_client):
    make_run(status=SyncRun.Status.FAILED, error=f"upstream returned an error: {XSS}")
    assert XSS not in admin_client.get(PANEL_URL).content.decode()


def test_changelist_escapes_model_names(admin_client):
    make_model("evil/model", name=XSS)
    html = admin_client.get(reverse("admin:models_sync_llmmodel_changelist")).content.decode()
    assert (XSS in html, "&lt;script&gt;alert(1)&lt;/script&gt;" in html) == (False, True)


def test_change_page_escapes_name_and_description(admin_client):
    model = make_model("evil/model", name=XSS, description=XSS)
    url = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    assert XSS not in admin_client.get(url).content.decode()


# --- Query count ----------------------------------------------------------------------------


def _panel_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(PANEL_URL).status_code == 200
    return len(queries)


def test_panel_query_count_does_not_grow_with_models(admin_client):
    make_run()
    bulk_models(20)
    few = _panel_queries(admin_client)
    bulk_models(380, start=20)
    assert _panel_queries(admin_client) == few


@pytest.mark.parametrize("count", [20, 400])
def test_panel_query_count_is_bounded(admin_client, django_assert_max_num_queries, count):
    make_run()
    bulk_models(count)
    with django_assert_max_num_queries(8):
        admin_client.get(PANEL_URL)


def _records(year: int) -> list[dict[str, Any]]:
    from .conftest import fixture_records

    return fixture_records(year)
