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

from models_sync import admin as models_admin
from models_sync import conf, services
from models_sync.models import (
    Favorite,
    HealthCheck,
    LLMModel,
    ModelChange,
    SyncLock,
    SyncRun,
    WebhookDelivery,
)

pytestmark = pytest.mark.django_db

PANEL_URL = "/admin/models_sync/llmmodel/panel/"
SYNC_URL = "/admin/models_sync/llmmodel/panel/sync/"
FAVORITE_URL = "/admin/models_sync/llmmodel/favorite/"
MODELS_URL = "/admin/models_sync/llmmodel/"
CHANGES_URL = "/admin/models_sync/modelchange/"
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
        "availability": 1.0,
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


def make_change(run: SyncRun, model: LLMModel, kind: str, before=None, after=None) -> ModelChange:
    return ModelChange.objects.create(
        run=run,
        llm_model=model,
        model_id=model.model_id,
        author=model.author,
        kind=kind,
        before=before,
        after=after,
        timestamp=run.started_at,
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


class _Cells(HTMLParser):
    """Collects the text of the changelist cells of one column (``field-<name>``), in order."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.css, self.depth, self.cells = f"field-{name}", 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag not in VOID
        elif tag in ("td", "th") and self.css in (dict(attrs).get("class") or "").split():
            self.depth = 1
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.cells[-1] += data


def cells(html: str, name: str) -> list[str]:
    parser = _Cells(name)
    parser.feed(html)
    return [" ".join(cell.split()) for cell in parser.cells]


def listed_ids(html: str) -> list[str]:
    """The model ids of the model list's rows, in order (shown under each name)."""
    return [unescape(i) for i in re.findall(r'<span class="models-sync-id">([^<]*)</span>', html)]


def attribute_values(html: str, testid_block: str, attribute: str) -> list[str]:
    """The values of ``attribute`` on the elements inside the ``data-testid`` block."""
    start = html.index(f'data-testid="{testid_block}"')
    end = html.index("</section>", start)
    return [unescape(v) for v in re.findall(rf'<li {attribute}="([^"]*)"', html[start:end])]


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
    assert text_of(html, "top-models").startswith(f"☆ {best.name} ")


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


# --- The changelog (ModelChange admin) -------------------------------------------------------


@pytest.fixture
def changelog() -> dict[str, Any]:
    """Two runs: an older one that added gemma, a newer one that renamed qwen and changed llama."""
    now = timezone.now()
    gemma = make_model("google/gemma", name="Gemma")
    qwen = make_model("qwen/qwen3", name="Qwen 3")
    llama = make_model("meta-llama/llama", name="Llama")
    old = make_run(started_at=now - timedelta(hours=6), changes_count=1)
    new = make_run(started_at=now - timedelta(hours=1), changes_count=2)
    snapshot = {"name": "Gemma", "isFree": True, "contextLength": 8192, "pricing": {}}
    return {
        "old": old,
        "new": new,
        "added": make_change(old, gemma, "added", None, snapshot),
        "renamed": make_change(new, qwen, "renamed", "Qwen 2", "Qwen 3"),
        "context": make_change(new, llama, "context_changed", 8192, 131072),
    }


def test_changes_are_listed_newest_first(admin_client, changelog):
    html = admin_client.get(CHANGES_URL).content.decode()
    assert cells(html, "model_id") == ["meta-llama/llama", "qwen/qwen3", "google/gemma"]


def test_changes_show_kind_and_before_after(admin_client, changelog):
    html = admin_client.get(CHANGES_URL).content.decode()
    assert list(zip(cells(html, "kind_label"), cells(html, "before_after"), strict=True)) == [
        ("contexte modifié", "8 192 → 131 072"),
        ("renommé", "Qwen 2 → Qwen 3"),
        ("ajouté", "— → Gemma · gratuit · 8 192 jetons"),
    ]


def test_changes_link_their_run(admin_client, changelog):
    html = admin_client.get(CHANGES_URL).content.decode()
    run = changelog["new"]
    run_url = reverse("admin:models_sync_syncrun_change", args=[run.pk])
    assert (f'<a href="{run_url}" title="' in html, cells(html, "run_link")[0]) == (
        True,
        f"#{run.pk}",
    )


def test_changes_filter_by_kind(admin_client, changelog):
    html = admin_client.get(CHANGES_URL, {"kind": "renamed"}).content.decode()
    assert cells(html, "model_id") == ["qwen/qwen3"]


def test_changes_filter_by_author(admin_client, changelog):
    html = admin_client.get(CHANGES_URL, {"author": "google"}).content.decode()
    assert cells(html, "model_id") == ["google/gemma"]


def test_changes_author_filter_is_offered(admin_client, changelog):
    html = admin_client.get(CHANGES_URL).content.decode()
    assert ("?author=google" in html, "?kind=renamed" in html) == (True, True)


def test_changes_search_on_model_id(admin_client, changelog):
    html = admin_client.get(CHANGES_URL, {"q": "llama"}).content.decode()
    assert cells(html, "model_id") == ["meta-llama/llama"]


def test_changes_filter_by_run(admin_client, changelog):
    html = admin_client.get(CHANGES_URL, {"run": changelog["new"].pk}).content.decode()
    assert cells(html, "model_id") == ["meta-llama/llama", "qwen/qwen3"]


def test_changes_are_read_only(admin_client, changelog):
    change = changelog["renamed"]
    url = reverse("admin:models_sync_modelchange_change", args=[change.pk])
    delete = reverse("admin:models_sync_modelchange_delete", args=[change.pk])
    statuses = (
        admin_client.get(reverse("admin:models_sync_modelchange_add")).status_code,
        admin_client.post(url, {"kind": "added"}).status_code,
        admin_client.post(delete, {"post": "yes"}).status_code,
        admin_client.get(url).status_code,
    )
    change.refresh_from_db()
    assert (statuses, change.kind, ModelChange.objects.count()) == (
        (403, 403, 403, 200),
        "renamed",
        3,
    )


def test_changes_escape_upstream_names(admin_client):
    run = make_run()
    make_change(run, make_model("evil/model"), "renamed", "old", XSS)
    html = admin_client.get(CHANGES_URL).content.decode()
    assert (XSS in html, "old → &lt;script&gt;alert(1)&lt;/script&gt;" in html) == (False, True)


def test_sync_run_changes_link_to_the_changelog(admin_client, changelog):
    html = admin_client.get(reverse("admin:models_sync_syncrun_changelist")).content.decode()
    assert f'<a href="{CHANGES_URL}?run={changelog["new"].pk}">2</a>' in html


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("became_paid", {"isFree": True}, "gratuit"),
        ("became_paid", {"isFree": False}, "payant"),
        ("pricing_changed", {}, "gratuit"),
        ("pricing_changed", {"completion": "0.000002", "prompt": "0.000001"}, None),
        ("context_changed", 1048576, "1\xa0048\xa0576"),
        ("renamed", "x" * 100, "x" * 79 + "…"),
        ("removed", None, "—"),
        ("added", {"name": "M", "isFree": False, "contextLength": 0, "pricing": {}}, "M · payant"),
        ("renamed", ["odd"], '["odd"]'),
    ],
)
def test_change_values_are_described_briefly(kind, value, shown):
    expected = shown if shown is not None else "completion 0.000002, prompt 0.000001"
    assert models_admin.describe_change_value(kind, value) == expected


def test_returned_change_has_no_values(admin_client):
    run = make_run()
    make_change(run, make_model("google/gemma"), "returned")
    html = admin_client.get(CHANGES_URL).content.decode()
    assert cells(html, "before_after") == ["—"]


# --- The last successful run's changes on the panel -----------------------------------------


def test_panel_lists_the_last_successful_runs_changes(admin_client, changelog):
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "changes").split("Avant → après", 1)[1].strip() == (
        "contexte modifié meta-llama/llama 8 192 → 131 072 renommé qwen/qwen3 Qwen 2 → Qwen 3"
    )


def test_panel_changes_ignore_a_later_failed_run(admin_client, changelog):
    failed = make_run(status=SyncRun.Status.FAILED, error="boom")
    make_change(failed, make_model("evil/failed"), "added")
    html = admin_client.get(PANEL_URL).content.decode()
    rows = re.findall(r'<tr data-kind="([^"]+)" data-model="([^"]+)"', html)
    assert rows == [("context_changed", "meta-llama/llama"), ("renamed", "qwen/qwen3")]


def test_panel_changes_link_to_the_runs_changelog(admin_client, changelog):
    html = admin_client.get(PANEL_URL).content.decode()
    assert (
        re.search(r'data-testid="changes-link"', html) is not None,
        f'href="{CHANGES_URL}?run={changelog["new"].pk}"' in html,
        text_of(html, "changes-link"),
    ) == (True, True, "Les 2 modifications de cette synchronisation dans le journal")


def test_panel_shows_at_most_twenty_changes(admin_client):
    run = make_run(changes_count=25)
    for i in range(25):
        make_change(run, make_model(f"author/model-{i:02d}"), "added")
    html = admin_client.get(PANEL_URL).content.decode()
    assert (html.count("<tr data-kind="), text_of(html, "changes-link")) == (
        20,
        "Les 25 modifications de cette synchronisation dans le journal",
    )


def test_panel_says_the_last_successful_run_changed_nothing(admin_client):
    make_run(changes_count=0)
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "changes") == "Elle n'a rien modifié."


def test_panel_without_successful_run_has_no_changes(admin_client):
    make_run(status=SyncRun.Status.FAILED)
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "changes") == "Aucune synchronisation réussie pour l'instant."


def test_panel_changes_link_hidden_without_changelog_permission(viewer_client, changelog):
    html = viewer_client.get(PANEL_URL).content.decode()
    assert ('data-testid="changes-link"' in html, "renommé" in html) == (False, True)


def test_panel_changes_after_real_syncs(admin_client, serve):
    serve(2024)
    services.sync_models(trigger=SyncRun.Trigger.CLI)
    serve(2025)
    run = services.sync_models(trigger=SyncRun.Trigger.CLI, force=True)
    html = admin_client.get(PANEL_URL).content.decode()
    shown = re.findall(r'<tr data-kind="([^"]+)" data-model="([^"]+)"', html)
    expected = list(run.changes.order_by("kind", "model_id", "pk").values_list("kind", "model_id"))
    assert (shown, text_of(html, "changes-link")) == (
        [tuple(row) for row in expected[:20]],
        f"Les {run.changes_count} modifications de cette synchronisation dans le journal",
    )


def test_panel_escapes_change_values(admin_client):
    run = make_run(changes_count=1)
    make_change(run, make_model("evil/model"), "renamed", "old", XSS)
    assert XSS not in admin_client.get(PANEL_URL).content.decode()


# --- Availability, stability ------------------------------------------------------------------


def test_changelist_shows_availability_as_a_percentage(admin_client):
    make_model("google/gemma", availability=0.9667)
    html = admin_client.get(MODELS_URL).content.decode()
    assert cells(html, "availability_percent") == ["97 %"]


def test_changelist_marks_unstable_free_models(admin_client):
    make_model("a/stable", quality_rank=1, availability=0.5)
    make_model("b/unstable", quality_rank=2, availability=0.25)
    make_model("c/paid", quality_rank=3, availability=0.1, is_free=False)
    html = admin_client.get(MODELS_URL).content.decode()
    assert cells(html, "availability_percent") == ["50 %", "25 % instable", "10 %"]


def test_changelist_sorts_by_availability(admin_client):
    make_model("a/high", quality_rank=1, availability=0.9)
    make_model("b/low", quality_rank=2, availability=0.2)
    make_model("c/mid", quality_rank=3, availability=0.5)
    column = models_admin.LLMModelAdmin.list_display.index("availability_percent")
    up = admin_client.get(MODELS_URL, {"o": str(column)}).content.decode()
    down = admin_client.get(MODELS_URL, {"o": f"-{column}"}).content.decode()
    assert (cells(up, "availability_percent"), cells(down, "availability_percent")) == (
        ["20 % instable", "50 %", "90 %"],
        ["90 %", "50 %", "20 % instable"],
    )


def test_changelist_filters_unstable_models(admin_client):
    make_model("a/stable", availability=0.8)
    make_model("b/unstable", name="Shaky", availability=0.3)
    make_model("c/paid", availability=0.1, is_free=False)
    html = admin_client.get(MODELS_URL, {"stability": "unstable"}).content.decode()
    unstable = [m.model_id for m in LLMModel.objects.unstable()]
    assert listed_ids(html) == unstable == ["b/unstable"]


def test_changelist_says_when_a_gone_model_was_last_seen(admin_client):
    make_model("a/here", quality_rank=1)
    make_model(
        "b/gone",
        quality_rank=2,
        is_available=False,
        last_seen_at=timezone.now() - timedelta(days=3, minutes=1),
    )
    html = admin_client.get(MODELS_URL).content.decode()
    icons = re.findall(r'<td class="field-available_since"><img src="([^"]+)" alt="(\w+)">', html)
    assert (cells(html, "available_since"), icons) == (
        ["", "vu pour la dernière fois il y a 3 jours"],
        [("/static/admin/img/icon-yes.svg", "True"), ("/static/admin/img/icon-no.svg", "False")],
    )


def test_change_page_shows_availability(admin_client):
    model = make_model("google/gemma", availability=0.4)
    url = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    assert "40 % <span" in admin_client.get(url).content.decode()


# --- Metrics --------------------------------------------------------------------------------


def test_panel_shows_sync_metrics(admin_client):
    now = timezone.now()
    for minutes, latency in ((10, 100), (20, 200), (30, 300)):
        make_run(
            started_at=now - timedelta(minutes=minutes),
            finished_at=now - timedelta(minutes=minutes),
            upstream_latency_ms=latency,
        )
    make_run(started_at=now - timedelta(minutes=5), status=SyncRun.Status.FAILED)
    html = admin_client.get(PANEL_URL).content.decode()
    assert (
        text_of(html, "success-rate"),
        text_of(html, "mean-latency"),
        text_of(html, "last-success"),
    ) == ("75 % sur 4 synchronisations", "200 ms", "il y a 10 minutes")


def test_panel_metrics_follow_sync_metrics(admin_client):
    now = timezone.now()
    make_run(started_at=now - timedelta(days=2), finished_at=now, upstream_latency_ms=1500)
    make_run(started_at=now - timedelta(days=1), status=SyncRun.Status.REFUSED)
    metrics = services.sync_metrics()
    html = admin_client.get(PANEL_URL).content.decode()
    assert (text_of(html, "success-rate"), text_of(html, "mean-latency")) == (
        f"{round(metrics['successRate'] * 100)} % sur 2 synchronisations",
        "1,5 s",
    )


def test_panel_metrics_with_models_come_with_the_catalogue(admin_client):
    now = timezone.now()
    make_model("google/gemma")
    make_run(started_at=now - timedelta(hours=3), finished_at=now, upstream_latency_ms=800)
    make_run(started_at=now - timedelta(hours=2), status=SyncRun.Status.FAILED)
    html = admin_client.get(PANEL_URL).content.decode()
    assert (
        services.load_catalogue_from_db().metrics["successRate"],
        text_of(html, "success-rate"),
        text_of(html, "mean-latency"),
        text_of(html, "last-success"),
    ) == (0.5, "50 % sur 2 synchronisations", "800 ms", "maintenant")


def test_panel_metrics_without_runs(admin_client):
    html = admin_client.get(PANEL_URL).content.decode()
    assert (
        text_of(html, "success-rate"),
        text_of(html, "mean-latency"),
        text_of(html, "last-success"),
    ) == ("— sur 0 synchronisation", "—", "—")


# --- Webhook deliveries -----------------------------------------------------------------------


def test_webhook_deliveries_are_listed(admin_client):
    run = make_run()
    WebhookDelivery.objects.create(
        run=run, url="https://hooks.example/a", delivered=True, status_code=200
    )
    WebhookDelivery.objects.create(
        run=run, url="https://hooks.example/b", status_code=500, error="HTTP 500 " + XSS
    )
    html = admin_client.get(reverse("admin:models_sync_webhookdelivery_changelist")).content
    html = html.decode()
    assert (
        cells(html, "target"),
        cells(html, "http_status"),
        cells(html, "short_error"),
        html.count('alt="True"'),
        XSS in html,
    ) == (
        ["https://hooks.example/b", "https://hooks.example/a"],
        ["500", "200"],
        ["HTTP 500 " + XSS, "-"],
        1,
        False,
    )


def test_webhook_delivery_links_its_run(admin_client):
    run = make_run()
    WebhookDelivery.objects.create(run=run, url="https://hooks.example/a")
    html = admin_client.get(reverse("admin:models_sync_webhookdelivery_changelist")).content
    assert f'href="{reverse("admin:models_sync_syncrun_change", args=[run.pk])}"' in html.decode()


def test_webhook_deliveries_filter_on_delivered(admin_client):
    run = make_run()
    WebhookDelivery.objects.create(run=run, url="https://hooks.example/ok", delivered=True)
    WebhookDelivery.objects.create(run=run, url="https://hooks.example/ko")
    url = reverse("admin:models_sync_webhookdelivery_changelist")
    html = admin_client.get(url, {"delivered__exact": "0"}).content.decode()
    assert cells(html, "target") == ["https://hooks.example/ko"]


def test_webhook_delivery_is_read_only(admin_client):
    delivery = WebhookDelivery.objects.create(run=make_run(), url="https://hooks.example/a")
    change = reverse("admin:models_sync_webhookdelivery_change", args=[delivery.pk])
    delete = reverse("admin:models_sync_webhookdelivery_delete", args=[delivery.pk])
    assert (
        admin_client.get(reverse("admin:models_sync_webhookdelivery_add")).status_code,
        admin_client.post(change, {"url": "https://evil.example"}).status_code,
        admin_client.post(delete, {"post": "yes"}).status_code,
        admin_client.get(change).status_code,
        WebhookDelivery.objects.get().url,
    ) == (403, 403, 403, 200, "https://hooks.example/a")


# --- Favourites: the star in the model list ---------------------------------------------------


@pytest.fixture
def two_models() -> tuple[LLMModel, LLMModel]:
    return (
        make_model("google/gemma", name="Gemma", quality_rank=1),
        make_model("qwen/qwen3", name="Qwen", quality_rank=2),
    )


def star(client: Client, model: LLMModel, action: str = "add", **extra: str):
    data = {"action": action, "model_id": model.model_id, "source": model.source, **extra}
    return client.post(FAVORITE_URL, data)


def test_favorite_url_name():
    assert reverse("admin:models_sync_llmmodel_favorite") == FAVORITE_URL


def test_changelist_stars_the_current_users_favourites(admin_client, admin_user, two_models):
    gemma, qwen = two_models
    other = User.objects.create_user("other", password="pw", is_staff=True)
    Favorite.objects.create(user=admin_user, llm_model=gemma)
    Favorite.objects.create(user=other, llm_model=qwen)
    html = admin_client.get(MODELS_URL).content.decode()
    assert cells(html, "favorite_star") == ["★", "☆"]


def test_changelist_star_buttons_name_their_row_forms(admin_client, two_models):
    html = admin_client.get(MODELS_URL).content.decode()
    buttons = re.findall(r'<button type="submit" form="([^"]+)" name="action" value="(\w+)"', html)
    forms = re.findall(r'<form id="(models-sync-favorite-\d+)" method="post"', html)
    assert (buttons, forms) == (
        [(f"models-sync-favorite-{m.pk}", "add") for m in two_models],
        [f"models-sync-favorite-{m.pk}" for m in two_models],
    )


def test_changelist_row_forms_are_outside_the_changelist_form(admin_client, two_models):
    html = admin_client.get(MODELS_URL).content.decode()
    changelist_form_end = html.index("</form>", html.index('id="changelist-form"'))
    assert html.index('id="models-sync-favorite-') > changelist_form_end


def test_changelist_row_forms_carry_the_model_and_the_way_back(admin_client, two_models):
    html = admin_client.get(MODELS_URL, {"author": "google"}).content.decode()
    form = html[html.index('<form id="models-sync-favorite-') :]
    form = form[: form.index("</form>")]
    assert (
        f'action="{FAVORITE_URL}"' in form,
        'name="csrfmiddlewaretoken"' in form,
        '<input type="hidden" name="model_id" value="google/gemma">' in form,
        '<input type="hidden" name="source" value="openrouter">' in form,
        f'<input type="hidden" name="next" value="{MODELS_URL}?author=google">' in form,
    ) == (True, True, True, True, True)


def test_star_adds_a_favourite(admin_client, admin_user, two_models):
    gemma, _qwen = two_models
    response = star(admin_client, gemma, next=f"{MODELS_URL}?author=google")
    assert (
        response.status_code,
        response["Location"],
        list(Favorite.objects.values_list("user__username", "llm_model__model_id")),
        messages_of(response),
    ) == (
        302,
        f"{MODELS_URL}?author=google",
        [("admin", "google/gemma")],
        [("success", "Ajouté à vos favoris : google/gemma")],
    )


def test_star_again_says_it_is_already_a_favourite(admin_client, two_models):
    star(admin_client, two_models[0])
    response = star(admin_client, two_models[0])
    assert (messages_of(response)[-1], Favorite.objects.count()) == (
        ("info", "Déjà dans vos favoris : google/gemma"),
        1,
    )


def test_unstar_removes_the_favourite(admin_client, admin_user, two_models):
    gemma, qwen = two_models
    Favorite.objects.create(user=admin_user, llm_model=gemma)
    Favorite.objects.create(user=admin_user, llm_model=qwen)
    response = star(admin_client, gemma, "remove")
    assert (
        list(Favorite.objects.values_list("llm_model__model_id", flat=True)),
        messages_of(response),
    ) == (["qwen/qwen3"], [("success", "Retiré de vos favoris : google/gemma")])


def test_unstar_leaves_other_users_favourites(admin_client, two_models):
    other = User.objects.create_user("other", password="pw", is_staff=True)
    Favorite.objects.create(user=other, llm_model=two_models[0])
    response = star(admin_client, two_models[0], "remove")
    assert (Favorite.objects.count(), messages_of(response)) == (
        1,
        [("info", "Pas dans vos favoris : google/gemma")],
    )


def test_star_then_changelist_shows_it(admin_client, two_models):
    star(admin_client, two_models[1])
    html = admin_client.get(MODELS_URL).content.decode()
    assert cells(html, "favorite_star") == ["☆", "★"]


def test_star_unknown_model_says_so(admin_client):
    response = admin_client.post(
        FAVORITE_URL, {"action": "add", "model_id": "nobody/" + XSS, "source": "openrouter"}
    )
    assert (messages_of(response), Favorite.objects.count()) == (
        [("error", f"Modèle inconnu : nobody/{XSS}")],
        0,
    )


def test_star_unknown_model_message_is_escaped(admin_client):
    response = admin_client.post(
        FAVORITE_URL,
        {"action": "add", "model_id": XSS, "source": "openrouter", "next": MODELS_URL},
        follow=True,
    )
    assert XSS not in response.content.decode()


def test_star_distinguishes_sources(admin_client, admin_user):
    make_model("llama3", source="local-vllm", author="local")
    make_model("llama3", source="openrouter", author="meta")
    admin_client.post(FAVORITE_URL, {"action": "add", "model_id": "llama3", "source": "local-vllm"})
    assert list(Favorite.objects.values_list("llm_model__source", flat=True)) == ["local-vllm"]


@pytest.mark.parametrize(
    "data",
    [
        {"action": "toggle", "model_id": "google/gemma", "source": "openrouter"},
        {"action": "add", "model_id": "", "source": "openrouter"},
        {"action": "add", "model_id": "google/gemma"},
    ],
)
def test_star_bad_request_is_400(admin_client, two_models, data):
    response = admin_client.post(FAVORITE_URL, data)
    assert (response.status_code, Favorite.objects.count()) == (400, 0)


def test_star_refuses_get(admin_client):
    assert admin_client.get(FAVORITE_URL).status_code == 405


def test_star_needs_login(client, two_models):
    response = star(client, two_models[0])
    assert (response.status_code, Favorite.objects.count()) == (302, 0)


def test_star_needs_csrf_token(admin_user, two_models):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = star(client, two_models[0])
    assert (response.status_code, Favorite.objects.count()) == (403, 0)


def test_star_with_the_changelists_csrf_token(admin_user, two_models):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    html = client.get(MODELS_URL).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = star(client, two_models[0], csrfmiddlewaretoken=token)
    assert (response.status_code, Favorite.objects.count()) == (302, 1)


def test_any_staff_who_sees_the_models_may_star(viewer_client, staff_without_sync, two_models):
    response = star(viewer_client, two_models[0])
    assert (response.status_code, Favorite.objects.get().user) == (302, staff_without_sync)


def test_staff_who_cannot_see_the_models_cannot_star(client, two_models):
    user = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert (star(client, two_models[0]).status_code, Favorite.objects.count()) == (403, 0)


def test_star_ignores_a_foreign_next(admin_client, two_models):
    response = star(admin_client, two_models[0], next="https://evil.example/")
    assert response["Location"] == MODELS_URL


def test_changelist_filters_my_favourites(admin_client, admin_user, two_models):
    Favorite.objects.create(user=admin_user, llm_model=two_models[1])
    mine = admin_client.get(MODELS_URL, {"favorite": "yes"}).content.decode()
    others = admin_client.get(MODELS_URL, {"favorite": "no"}).content.decode()
    assert (listed_ids(mine), listed_ids(others)) == (["qwen/qwen3"], ["google/gemma"])


def test_changelist_sorts_favourites_first(admin_client, admin_user, two_models):
    Favorite.objects.create(user=admin_user, llm_model=two_models[1])
    html = admin_client.get(MODELS_URL, {"o": "0"}).content.decode()
    assert listed_ids(html) == ["qwen/qwen3", "google/gemma"]


# --- Favourites on the panel ------------------------------------------------------------------


def test_panel_lists_my_favourites_with_their_problem(admin_client, admin_user):
    ok = make_model("google/gemma", name="Gemma")
    paid = make_model("qwen/qwen3", name="Qwen", is_free=False)
    gone = make_model("meta/llama", name="Llama", is_available=False)
    other = User.objects.create_user("other", password="pw", is_staff=True)
    for model in (ok, paid, gone):
        Favorite.objects.create(user=admin_user, llm_model=model)
    Favorite.objects.create(user=other, llm_model=make_model("other/model", name="Not mine"))
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "favorites") == (
        "★ Llama n'est plus disponible meta/llama "
        "★ Qwen n'est plus gratuit qwen/qwen3 "
        "★ Gemma google/gemma"
    )


def test_panel_favourites_carry_the_services_problem(admin_client, admin_user):
    Favorite.objects.create(user=admin_user, llm_model=make_model("q/paid", is_free=False))
    html = admin_client.get(PANEL_URL).content.decode()
    problems = [f.problem for f in services.list_favorites(user=admin_user)]
    assert re.findall(r'data-problem="([^"]*)"', html) == problems == ["no longer free"]


def test_panel_without_favourites_says_how_to_add_some(admin_client):
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "favorites") == (
        "Aucun favori pour l'instant : marquez des modèles d'une étoile ici ou dans la liste "
        "des modèles."
    )


def test_panel_favourites_are_in_english_when_asked(admin_client, admin_user):
    Favorite.objects.create(user=admin_user, llm_model=make_model("q/gone", is_available=False))
    admin_client.cookies["django_language"] = "en"
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "favorite-problem") == "no longer available"


def test_panel_stars_top_models_that_are_favourites(admin_client, admin_user, two_models):
    Favorite.objects.create(user=admin_user, llm_model=two_models[1])
    html = admin_client.get(PANEL_URL).content.decode()
    assert text_of(html, "top-models") == ("☆ Gemma google · 8 192 ★ Qwen qwen · 8 192")


def test_panel_star_comes_back_to_the_panel(admin_client, two_models):
    html = admin_client.get(PANEL_URL, {"source": "openrouter"}).content.decode()
    assert f'<input type="hidden" name="next" value="{PANEL_URL}?source=openrouter">' in html
    response = star(admin_client, two_models[0], next=f"{PANEL_URL}?source=openrouter")
    assert (response["Location"], Favorite.objects.count()) == (
        f"{PANEL_URL}?source=openrouter",
        1,
    )


def test_panel_escapes_favourite_names(admin_client, admin_user):
    Favorite.objects.create(user=admin_user, llm_model=make_model("evil/model", name=XSS))
    assert XSS not in admin_client.get(PANEL_URL).content.decode()


# --- The Favorite admin -----------------------------------------------------------------------


def test_favorite_admin_lists_every_users_favourites(admin_client, admin_user, two_models):
    other = User.objects.create_user("other", password="pw", is_staff=True)
    gemma, qwen = two_models
    Favorite.objects.create(user=admin_user, llm_model=gemma)
    Favorite.objects.create(user=other, llm_model=qwen)
    LLMModel.objects.filter(pk=qwen.pk).update(is_free=False)
    html = admin_client.get(reverse("admin:models_sync_favorite_changelist")).content.decode()
    assert list(
        zip(
            cells(html, "owner"), cells(html, "model_id"), cells(html, "problem_label"), strict=True
        )
    ) == [
        ("other", "qwen/qwen3", "n'est plus gratuit"),
        ("admin", "google/gemma", "—"),
    ]


def test_favorite_admin_filters_by_user(admin_client, admin_user, two_models):
    other = User.objects.create_user("other", password="pw", is_staff=True)
    Favorite.objects.create(user=admin_user, llm_model=two_models[0])
    Favorite.objects.create(user=other, llm_model=two_models[1])
    url = reverse("admin:models_sync_favorite_changelist")
    html = admin_client.get(url, {"user": str(other.pk)}).content.decode()
    assert (cells(html, "model_id"), f"?user={admin_user.pk}" in html) == (["qwen/qwen3"], True)


def test_favorite_admin_is_read_only(admin_client, admin_user, two_models):
    favorite = Favorite.objects.create(user=admin_user, llm_model=two_models[0])
    change = reverse("admin:models_sync_favorite_change", args=[favorite.pk])
    delete = reverse("admin:models_sync_favorite_delete", args=[favorite.pk])
    assert (
        admin_client.get(reverse("admin:models_sync_favorite_add")).status_code,
        admin_client.post(change, {}).status_code,
        admin_client.post(delete, {"post": "yes"}).status_code,
        admin_client.get(change).status_code,
        Favorite.objects.count(),
    ) == (403, 403, 403, 200, 1)


# --- Recommendations on the panel -------------------------------------------------------------


@pytest.fixture
def synced_2026(serve) -> SyncRun:
    serve(2026)
    return services.sync_models(trigger=SyncRun.Trigger.CLI)


def _recommended(html: str) -> dict[str, list[str]]:
    start = html.index('data-testid="recommended"')
    block = html[start : html.index("</section>", start)]
    tasks = re.split(r'<div class="sync-panel__task" data-task="', block)[1:]
    return {
        chunk.split('"', 1)[0]: [
            unescape(m) for m in re.findall(r'<li data-model="([^"]+)"', chunk)
        ]
        for chunk in tasks
    }


def test_panel_recommends_the_top_three_of_each_task(admin_client, synced_2026):
    html = admin_client.get(PANEL_URL).content.decode()
    models = services.load_catalogue_from_db().models
    assert _recommended(html) == {
        task: [r["model"]["id"] for r in services.recommend(task, limit=3, models=models)]
        for task in services.TASKS
    }


def test_panel_recommendations_on_the_2026_fixture(admin_client, synced_2026):
    html = admin_client.get(PANEL_URL).content.decode()
    assert _recommended(html)["code"] == [
        "cohere/north-mini-code:free",
        "google/gemma-4-26b-a4b-it:free",
        "google/gemma-4-31b-it:free",
    ]


def test_panel_shows_the_reasons_of_a_recommendation(admin_client, synced_2026):
    html = admin_client.get(PANEL_URL).content.decode()
    start = html.index('data-task="code"')
    item = html[start : html.index("</li>", start)]
    reasons = re.search(r'<span class="sync-panel__reasons">([^<]*)</span>', item).group(1)
    assert (unescape(reasons), re.search(r'data-score="([^"]+)"', item).group(1)) == (
        "coding model · supports tools · 256k context · seen free in 100% of syncs",
        "7.0",
    )


def test_panel_recommendation_task_titles(admin_client, synced_2026):
    html = admin_client.get(PANEL_URL).content.decode()
    titles = re.findall(
        r'<div class="sync-panel__task" data-task="[^"]+">\s*<h3>([^<]+)</h3>', html
    )
    assert titles == ["Conversation", "Code", "Raisonnement", "Vision", "Long contexte", "Agent"]


def test_panel_recommendations_use_health(admin_client):
    make_model("a/healthy", name="Healthy", quality_rank=2, health={"status": "up", "uptime": 99.5})
    make_model("b/down", name="Down", quality_rank=1, health={"status": "down", "uptime": 2})
    html = admin_client.get(PANEL_URL).content.decode()
    assert (_recommended(html)["chat"], "up (99.5 % uptime)" in html) == (
        ["a/healthy", "b/down"],
        True,
    )


def test_panel_says_when_no_model_fits_a_task(admin_client):
    make_model("google/gemma")
    html = admin_client.get(PANEL_URL).content.decode()
    start = html.index('data-task="vision"')
    block = html[start : html.index("</div>", start)]
    assert "Aucun modèle gratuit ne convient." in block


def test_panel_recommendations_never_call_upstream(admin_client, upstream):
    response = admin_client.get(PANEL_URL)
    assert (response.status_code, len(upstream.calls), SyncRun.objects.count()) == (200, 0, 0)


def test_panel_recommendations_ignore_a_stale_cache(admin_client, upstream):
    make_model("google/gemma", last_seen_at=timezone.now() - timedelta(days=30))
    html = admin_client.get(PANEL_URL).content.decode()
    assert (_recommended(html)["chat"], len(upstream.calls)) == (["google/gemma"], 0)


def test_panel_escapes_recommended_names_and_reasons(admin_client, settings):
    settings.MODELS_SYNC_KNOWN_PROVIDERS = [XSS]
    make_model(f"{XSS}/model", name=XSS, author=XSS)
    html = admin_client.get(PANEL_URL).content.decode()
    assert (XSS in html, f"known provider {XSS}" in unescape(html)) == (False, True)


# --- Health -----------------------------------------------------------------------------------

HEALTH = {
    "status": "up",
    "uptime": 99.5,
    "latencyMs": 420,
    "freeEndpoints": 1,
    "providers": ["Chutes"],
    "checkedAt": "2026-11-24T10:00:00.000Z",
    "error": None,
    "probe": {"ok": False, "latencyMs": 3000, "at": "2026-11-24T09:00:00.000Z"},
}


def test_changelist_shows_health(admin_client):
    make_model("a/up", quality_rank=1, health=HEALTH)
    make_model("b/degraded", quality_rank=2, health={"status": "degraded", "uptime": 42.0})
    make_model("c/unchecked", quality_rank=3)
    make_model("d/odd", quality_rank=4, health={"status": "<b>weird</b>"})
    html = admin_client.get(MODELS_URL).content.decode()
    assert cells(html, "health_badge") == [
        "en ligne 99,5 %",
        "dégradé 42 %",
        "—",
        "inconnu",
    ]


@pytest.mark.parametrize(
    "health",
    [
        {"status": ["up"], "uptime": "99"},
        {"status": "up", "uptime": None, "latencyMs": "fast", "providers": [1, None]},
        {"status": "down", "providers": "Chutes", "checkedAt": "not a date", "probe": {}},
    ],
)
def test_odd_health_json_still_renders(admin_client, health):
    model = make_model("a/odd", health=health)
    change = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    assert (
        admin_client.get(MODELS_URL).status_code,
        admin_client.get(change).status_code,
        admin_client.get(PANEL_URL).status_code,
    ) == (200, 200, 200)


def test_changelist_filters_on_health(admin_client):
    make_model("a/up", name="Up", health={"status": "up"})
    make_model("b/down", name="Down", health={"status": "down"})
    make_model("c/unchecked", name="Unchecked")
    html = admin_client.get(MODELS_URL, {"health": "down"}).content.decode()
    assert listed_ids(html) == ["b/down"]


def test_change_page_shows_health(admin_client, settings):
    settings.TIME_ZONE = "UTC"
    model = make_model("a/up", health=HEALTH)
    url = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    html = admin_client.get(url).content.decode()
    start = html.index('<dl class="models-sync-health">')
    shown = " ".join(re.sub(r"<[^>]+>", " ", html[start : html.index("</dl>", start)]).split())
    assert unescape(shown) == (
        "Statut en ligne Temps de fonctionnement 99,5 % Latence 420 ms "
        "Points d'accès gratuits 1 Fournisseurs Chutes Vérifié le 24 novembre 2026 10:00 "
        "Sonde (un jeton) échec, 3,0 s, 24 novembre 2026 09:00"
    )


def test_change_page_without_health(admin_client):
    model = make_model("a/unchecked")
    url = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    assert "Pas encore vérifié." in admin_client.get(url).content.decode()


def test_change_page_escapes_health(admin_client):
    health = {"status": "down", "providers": [XSS], "error": XSS}
    model = make_model("a/down", health=health)
    url = reverse("admin:models_sync_llmmodel_change", args=[model.pk])
    assert XSS not in admin_client.get(url).content.decode()


@pytest.fixture
def health_checks() -> list[HealthCheck]:
    now = timezone.now()
    up = make_model("a/up")
    down = make_model("b/down")
    return [
        HealthCheck.objects.create(
            llm_model=up, kind="endpoints", checked_at=now, ok=True, status="up", uptime=99.0
        ),
        HealthCheck.objects.create(
            llm_model=down,
            kind="endpoints",
            checked_at=now - timedelta(minutes=1),
            status="down",
            error=XSS,
        ),
        HealthCheck.objects.create(
            llm_model=up, kind="probe", checked_at=now - timedelta(minutes=2), ok=True
        ),
    ]


def test_health_checks_are_listed_newest_first(admin_client, health_checks):
    html = admin_client.get(reverse("admin:models_sync_healthcheck_changelist")).content.decode()
    assert (cells(html, "llm_model"), cells(html, "kind"), XSS in html) == (
        ["a/up", "b/down", "a/up"],
        ["points d'accès", "points d'accès", "sonde"],
        False,
    )


def test_health_checks_filter_by_kind_and_ok(admin_client, health_checks):
    url = reverse("admin:models_sync_healthcheck_changelist")
    probes = admin_client.get(url, {"kind__exact": "probe"}).content.decode()
    failed = admin_client.get(url, {"ok__exact": "0"}).content.decode()
    assert (cells(probes, "llm_model"), cells(failed, "llm_model")) == (["a/up"], ["b/down"])


def test_health_checks_are_read_only(admin_client, health_checks):
    check = health_checks[0]
    change = reverse("admin:models_sync_healthcheck_change", args=[check.pk])
    delete = reverse("admin:models_sync_healthcheck_delete", args=[check.pk])
    assert (
        admin_client.get(reverse("admin:models_sync_healthcheck_add")).status_code,
        admin_client.post(change, {"ok": ""}).status_code,
        admin_client.post(delete, {"post": "yes"}).status_code,
        HealthCheck.objects.count(),
    ) == (403, 403, 403, 3)


# --- Catalogues (source) ----------------------------------------------------------------------


@pytest.fixture
def two_catalogues() -> None:
    make_model("google/gemma", name="Gemma", quality_rank=1, has_vision=True, context_length=8192)
    make_model("qwen/qwen3", name="Qwen", quality_rank=2, context_length=32768)
    make_model("qwen/paid", name="Paid", quality_rank=3, is_free=False)
    make_model("llama3", source="local-vllm", author="local", quality_rank=1, context_length=4096)
    make_model("mistral", source="local-vllm", author="local", quality_rank=2, is_available=False)


def test_panel_counts_every_catalogue_by_default(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL).content.decode()
    assert (
        data_value(html, "free-count"),
        data_value(html, "total-available"),
        data_value(html, "author-count"),
    ) == (3, 4, 3)


def test_panel_restricts_counts_to_a_source(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL, {"source": "openrouter"}).content.decode()
    assert (
        data_value(html, "free-count"),
        data_value(html, "total-available"),
        data_value(html, "with-vision"),
        data_value(html, "average-context"),
        data_value(html, "author-count"),
    ) == (2, 3, 1, 20480, 2)


def test_panel_restricts_chart_and_lists_to_a_source(admin_client, admin_user, two_catalogues):
    Favorite.objects.create(user=admin_user, llm_model=LLMModel.objects.get(model_id="qwen/qwen3"))
    html = admin_client.get(PANEL_URL, {"source": "local-vllm"}).content.decode()
    assert (
        re.findall(r'data-author="([^"]+)" data-count="(\d+)"', html),
        text_of(html, "authors"),
        attribute_values(html, "top-models", "data-model"),
        _recommended(html)["chat"],
        'data-testid="favorites"' in html and "qwen/qwen3" not in text_of(html, "favorites"),
    ) == ([("local", "1")], "local", ["llama3"], ["llama3"], True)


def test_panel_links_every_source(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL, {"source": "local-vllm"}).content.decode()
    assert (
        re.findall(r'<a href="([^"]+)" data-source="([^"]*)"', html),
        text_of(html, "sources"),
        'data-source="local-vllm" class="is-current" aria-current="page"' in html,
    ) == (
        [
            (PANEL_URL, ""),
            (f"{PANEL_URL}?source=local-vllm", "local-vllm"),
            (f"{PANEL_URL}?source=openrouter", "openrouter"),
        ],
        "Catalogue : Tous local-vllm 1 openrouter 3",
        True,
    )


def test_panel_says_what_a_source_restricts(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL, {"source": "local-vllm"}).content.decode()
    assert unescape(text_of(html, "source-note")) == (
        "Seuls les modèles du catalogue « local-vllm » sont comptés et listés ; l'historique et "
        "les mesures des synchronisations couvrent tous les catalogues."
    )


def test_panel_hides_source_links_with_one_source(admin_client):
    make_model("google/gemma")
    assert 'data-testid="sources"' not in admin_client.get(PANEL_URL).content.decode()


def test_panel_links_to_the_model_list_keep_the_source(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL, {"source": "local-vllm"}).content.decode()
    assert (
        f'href="{MODELS_URL}?author=local&amp;is_free__exact=1&amp;source__exact=local-vllm"'
        in html
    )


def test_panel_changes_follow_the_source(admin_client, two_catalogues):
    vllm = make_run(catalogue="local-vllm", changes_count=1)
    make_change(vllm, LLMModel.objects.get(model_id="llama3"), "added")
    openrouter_run = make_run(started_at=timezone.now() - timedelta(hours=1), changes_count=1)
    make_change(openrouter_run, LLMModel.objects.get(model_id="qwen/qwen3"), "renamed", "a", "b")
    everything = admin_client.get(PANEL_URL).content.decode()
    openrouter = admin_client.get(PANEL_URL, {"source": "openrouter"}).content.decode()
    assert (
        re.findall(r'<tr data-kind="[^"]+" data-model="([^"]+)"', everything),
        re.findall(r'<tr data-kind="[^"]+" data-model="([^"]+)"', openrouter),
    ) == (["llama3"], ["qwen/qwen3"])


def test_panel_unknown_source_shows_nothing(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL, {"source": "nope"}).content.decode()
    assert (data_value(html, "free-count"), data_value(html, "total-available")) == (0, 0)


def test_panel_escapes_the_source(admin_client, two_catalogues):
    html = admin_client.get(PANEL_URL, {"source": XSS}).content.decode()
    assert XSS not in html


def test_changelist_filters_by_source(admin_client, two_catalogues):
    html = admin_client.get(MODELS_URL, {"source__exact": "local-vllm"}).content.decode()
    assert listed_ids(html) == ["llama3", "mistral"]


# --- Query count ----------------------------------------------------------------------------

PANEL_MAX_QUERIES = 10
AVAILABILITY_COLUMN = models_admin.LLMModelAdmin.list_display.index("availability_percent")


def _everything(count: int, *, user: User, start: int = 0) -> None:
    """Rows of every kind the panel shows, growing with ``count``."""
    bulk_models(count, start=start)
    models = list(LLMModel.objects.filter(quality_rank__gte=start))
    LLMModel.objects.filter(pk__in=[m.pk for m in models[::2]]).update(
        health={"status": "up", "uptime": 99.0}, availability=0.3
    )
    run = make_run(changes_count=len(models))
    ModelChange.objects.bulk_create(
        ModelChange(
            run=run,
            llm_model=m,
            model_id=m.model_id,
            author=m.author,
            kind="added",
            after={"name": m.name, "isFree": True, "contextLength": 1, "pricing": {}},
            timestamp=run.started_at,
        )
        for m in models
    )
    Favorite.objects.bulk_create(Favorite(user=user, llm_model=m) for m in models[::3])


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_panel_query_count_does_not_grow_with_models(admin_client, admin_user):
    _everything(20, user=admin_user)
    few = _queries(admin_client, PANEL_URL)
    _everything(380, user=admin_user, start=20)
    assert _queries(admin_client, PANEL_URL) == few


def test_panel_query_count_with_a_source_does_not_grow(admin_client, admin_user):
    _everything(20, user=admin_user)
    url = f"{PANEL_URL}?source=openrouter"
    few = _queries(admin_client, url)
    _everything(380, user=admin_user, start=20)
    assert _queries(admin_client, url) == few


@pytest.mark.parametrize("count", [20, 400])
def test_panel_query_count_is_bounded(
    admin_client, admin_user, django_assert_max_num_queries, count
):
    _everything(count, user=admin_user)
    with django_assert_max_num_queries(PANEL_MAX_QUERIES):
        admin_client.get(PANEL_URL)


@pytest.mark.parametrize(
    "url",
    [
        MODELS_URL,
        f"{MODELS_URL}?favorite=yes&stability=unstable&o=-{AVAILABILITY_COLUMN}",
        CHANGES_URL,
        "/admin/models_sync/favorite/",
        "/admin/models_sync/healthcheck/",
        "/admin/models_sync/webhookdelivery/",
        "/admin/models_sync/syncrun/",
    ],
)
def test_changelist_query_count_does_not_grow(admin_client, admin_user, url):
    _everything(20, user=admin_user)
    WebhookDelivery.objects.create(run=SyncRun.objects.first(), url="https://hooks.example/")
    HealthCheck.objects.bulk_create(
        HealthCheck(llm_model=m, kind="endpoints", checked_at=timezone.now())
        for m in LLMModel.objects.all()
    )
    few = _queries(admin_client, url)
    _everything(380, user=admin_user, start=20)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(run=run, url=f"https://hooks.example/{run.pk}")
        for run in SyncRun.objects.all()
    )
    HealthCheck.objects.bulk_create(
        HealthCheck(llm_model=m, kind="probe", checked_at=timezone.now())
        for m in LLMModel.objects.all()
    )
    assert _queries(admin_client, url) == few


def _records(year: int) -> list[dict[str, Any]]:
    from .conftest import fixture_records

    return fixture_records(year)
