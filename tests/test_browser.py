"""The sync panel in a real Chromium, against live_server, with OpenRouter mocked by responses.

live_server runs in a thread of this process, so the ``serve`` mock also answers the sync that a
click starts; the browser's own requests go to live_server over the network, untouched.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from django_q.models import Schedule

from models_sync import conf, services
from models_sync.models import Favorite, LLMModel, ModelChange, SyncRun

from .conftest import CHROMIUM_PATH, ROOT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM_PATH).exists(), reason=f"no Chromium at {CHROMIUM_PATH}"),
]

PANEL = "/admin/models_sync/llmmodel/panel/"
MODELS = "/admin/models_sync/llmmodel/"
PASSWORD = "a-long-test-password-42"
XSS = "<script>alert(1)</script>"
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR", ROOT / "artifacts")) / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """A French browser: the admin speaks French first (LocaleMiddleware reads Accept-Language)."""
    return {**browser_context_args, "locale": "fr-FR"}


@pytest.fixture
def superuser(transactional_db) -> User:
    return User.objects.create_superuser("boss", "boss@example.com", PASSWORD)


@pytest.fixture
def viewer(transactional_db) -> User:
    user = User.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_llmmodel"),
        Permission.objects.get(codename="view_syncrun"),
    )
    return user


@pytest.fixture
def synced_2025(serve) -> SyncRun:
    serve(2025)
    return services.sync_models(trigger=SyncRun.Trigger.CLI)


@pytest.fixture
def dialogs(page) -> list[str]:
    """Every JavaScript dialog the page opens (an executed XSS payload would open one)."""
    seen: list[str] = []

    def record(dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return seen


def log_in(page, live_server, user: User, next_path: str = PANEL) -> None:
    page.goto(f"{live_server.url}/admin/login/?next={next_path}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}{next_path}")


def shown_value(page, testid: str) -> int:
    return int(page.get_attribute(f"[data-testid={testid}]", "data-value"))


def test_panel_numbers_match_the_database(page, live_server, superuser, synced_2025):
    log_in(page, live_server, superuser)
    free = LLMModel.objects.available().free()
    assert (
        shown_value(page, "free-count"),
        page.inner_text("[data-testid=free-count]"),
        shown_value(page, "total-available"),
        shown_value(page, "with-vision"),
        shown_value(page, "author-count"),
    ) == (
        free.count(),
        str(free.count()),
        LLMModel.objects.available().count(),
        free.with_vision().count(),
        len(free.providers()),
    )


def test_panel_chart_matches_the_database(page, live_server, superuser, synced_2025):
    log_in(page, live_server, superuser)
    rows = page.query_selector_all("[data-testid=by-author] li")
    shown = [
        (row.get_attribute("data-author"), int(row.get_attribute("data-count"))) for row in rows
    ]
    assert shown == LLMModel.objects.available().providers()


def test_click_synchronise_shows_success(page, live_server, superuser, synced_2025, serve):
    serve(2025)
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_url(f"{live_server.url}{PANEL}")
    assert page.inner_text("ul.messagelist li.success") == "67 modèles synchronisés"


def test_click_synchronise_adds_the_run_to_history(
    page, live_server, superuser, synced_2025, serve
):
    serve(2025)
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_selector("ul.messagelist")
    run = SyncRun.objects.order_by("-pk").first()
    first_row = page.query_selector("[data-testid=history] tbody tr")
    assert (
        run.trigger,
        first_row.get_attribute("data-run"),
        first_row.get_attribute("data-status"),
        first_row.get_attribute("data-trigger"),
    ) == ("admin", str(run.pk), "success", "admin")


def test_click_synchronise_with_upstream_down_shows_the_error(
    page, live_server, superuser, synced_2025, serve, settings
):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_selector("ul.messagelist")
    assert page.inner_text("ul.messagelist li.error") == (
        "Échec de la synchronisation : openrouter.ai answered HTTP 500 Internal Server Error"
    )


def test_upstream_down_panel_still_shows_the_database(
    page, live_server, superuser, synced_2025, serve, settings
):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=500, body=b"x")
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_selector("ul.messagelist")
    assert (
        shown_value(page, "free-count"),
        page.get_attribute("[data-testid=history] tbody tr", "data-status"),
        page.inner_text("[data-testid=last-run] strong"),
    ) == (67, "failed", "OpenRouter a des difficultés (HTTP 500) ; rien n'a été modifié.")


def test_staff_without_permission_sees_no_button(page, live_server, viewer, synced_2025):
    log_in(page, live_server, viewer)
    assert (
        shown_value(page, "free-count"),
        page.locator("[data-testid=sync-button]").count(),
    ) == (67, 0)


def test_staff_without_permission_cannot_post_a_sync(
    page, live_server, viewer, synced_2025, upstream
):
    log_in(page, live_server, viewer)
    status = page.evaluate(
        """async (url) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const answer = await fetch(url, {method: "POST", headers: {"X-CSRFToken": token}});
            return answer.status;
        }""",
        f"{PANEL}sync/",
    )
    assert (status, SyncRun.objects.count(), len(upstream.calls)) == (403, 1, 1)


def test_hostile_model_name_runs_no_script(page, live_server, superuser, dialogs):
    now = timezone.now()
    LLMModel.objects.create(
        model_id="evil/model",
        name=XSS,
        author="evil",
        description=XSS,
        is_free=True,
        first_seen_at=now,
        last_seen_at=now,
    )
    log_in(page, live_server, superuser)
    panel_text = page.inner_text("[data-testid=top-models]")
    page.goto(f"{live_server.url}/admin/models_sync/llmmodel/")
    page.click(f"text={XSS}")
    page.wait_for_selector(".readonly")
    assert (XSS in panel_text, dialogs) == (True, [])


# --- Favourites, catalogues, changelog ------------------------------------------------------


def _star(page, model_id: str):
    return page.locator(f"[data-testid=star][data-model='{model_id}']").first


def test_click_star_in_the_model_list_adds_then_removes_a_favourite(
    page, live_server, superuser, synced_2025
):
    model = LLMModel.objects.available().free().by_quality().first()
    log_in(page, live_server, superuser, MODELS)
    _star(page, model.model_id).click()
    page.wait_for_selector("ul.messagelist li.success")
    added = (
        page.inner_text("ul.messagelist li.success"),
        _star(page, model.model_id).inner_text(),
        list(Favorite.objects.values_list("user__username", "llm_model__model_id")),
        page.url,
    )
    _star(page, model.model_id).click()
    page.wait_for_selector(f"text=Retiré de vos favoris : {model.model_id}")
    assert (added, _star(page, model.model_id).inner_text(), Favorite.objects.count()) == (
        (
            f"Ajouté à vos favoris : {model.model_id}",
            "★",
            [("boss", model.model_id)],
            f"{live_server.url}{MODELS}",
        ),
        "☆",
        0,
    )


def test_star_keeps_the_model_list_filters(page, live_server, viewer, synced_2025):
    log_in(page, live_server, viewer, f"{MODELS}?author=google")
    first = page.get_attribute("[data-testid=star]", "data-model")
    _star(page, first).click()
    page.wait_for_selector("ul.messagelist li.success")
    assert (page.url, Favorite.objects.get().llm_model.author) == (
        f"{live_server.url}{MODELS}?author=google",
        "google",
    )


def test_star_on_the_panel_then_unstar_from_my_favourites(
    page, live_server, superuser, synced_2025
):
    best = LLMModel.objects.available().free().by_quality().first()
    log_in(page, live_server, superuser)
    page.click(f"[data-testid=top-models] [data-testid=star][data-model='{best.model_id}']")
    page.wait_for_selector("ul.messagelist li.success")
    listed = page.inner_text("[data-testid=favorites]")
    page.click(f"[data-testid=favorites] [data-testid=star][data-model='{best.model_id}']")
    page.wait_for_selector(f"text=Retiré de vos favoris : {best.model_id}")
    assert (
        page.url,
        best.name in listed,
        page.inner_text("[data-testid=favorites]").startswith("Aucun favori"),
    ) == (f"{live_server.url}{PANEL}", True, True)


def test_panel_flags_a_favourite_that_became_paid(page, live_server, superuser, synced_2025):
    model = LLMModel.objects.available().free().by_quality().first()
    Favorite.objects.create(user=superuser, llm_model=model)
    LLMModel.objects.filter(pk=model.pk).update(is_free=False)
    log_in(page, live_server, superuser)
    assert page.inner_text("[data-testid=favorite-problem]") == "n'est plus gratuit"


def test_source_link_restricts_the_panel(page, live_server, superuser, synced_2025):
    _local_catalogue()
    log_in(page, live_server, superuser)
    everything = shown_value(page, "free-count")
    page.click("[data-testid=sources] [data-source=local-vllm]")
    page.wait_for_url(f"{live_server.url}{PANEL}?source=local-vllm")
    restricted = (shown_value(page, "free-count"), shown_value(page, "total-available"))
    page.click("[data-testid=sources] [data-source='']")
    page.wait_for_url(f"{live_server.url}{PANEL}")
    assert (everything, restricted, shown_value(page, "free-count")) == (70, (3, 3), 70)


def test_changes_link_opens_the_runs_changelog(page, live_server, superuser, serve):
    serve(2024)
    services.sync_models(trigger=SyncRun.Trigger.CLI)
    serve(2025)
    run = services.sync_models(trigger=SyncRun.Trigger.CLI, force=True)
    log_in(page, live_server, superuser)
    shown = page.locator("[data-testid=changes] tbody tr").count()
    page.click("[data-testid=changes-link]")
    page.wait_for_url(f"{live_server.url}/admin/models_sync/modelchange/?run={run.pk}")
    rows = page.locator("#result_list tbody tr").count()
    assert (shown, rows) == (20, min(100, ModelChange.objects.filter(run=run).count()))


def test_hostile_upstream_text_in_the_new_blocks_runs_no_script(
    page, live_server, superuser, dialogs
):
    now = timezone.now()
    model = LLMModel.objects.create(
        model_id=f"evil/{XSS}",
        name=XSS,
        author=XSS,
        description=XSS,
        is_free=True,
        availability=0.2,
        health={"status": "down", "providers": [XSS], "error": XSS},
        first_seen_at=now,
        last_seen_at=now,
    )
    run = SyncRun.objects.create(started_at=now, trigger="cli", status="success", changes_count=1)
    ModelChange.objects.create(
        run=run,
        llm_model=model,
        model_id=model.model_id,
        author=XSS,
        kind="renamed",
        before=XSS,
        after=XSS,
        timestamp=now,
    )
    Favorite.objects.create(user=superuser, llm_model=model)
    log_in(page, live_server, superuser)
    texts = [
        page.inner_text(f"[data-testid={name}]") for name in ("favorites", "recommended", "changes")
    ]
    page.goto(f"{live_server.url}{MODELS}")
    page.click(f"text={XSS}")
    page.wait_for_selector(".models-sync-health")
    page.goto(f"{live_server.url}/admin/models_sync/modelchange/")
    assert ([XSS in text for text in texts], dialogs) == ([True, True, True], [])


def _local_catalogue() -> None:
    """A second catalogue (a self-hosted vLLM): three free models, one gone."""
    now = timezone.now()
    LLMModel.objects.bulk_create(
        LLMModel(
            source="local-vllm",
            model_id=model_id,
            name=model_id,
            author="local",
            is_free=True,
            is_available=available,
            availability=1.0,
            context_length=32768,
            supported_parameters=["tools"],
            first_seen_at=now,
            last_seen_at=now,
            quality_rank=rank,
        )
        for rank, (model_id, available) in enumerate(
            [("qwen3-32b", True), ("llama-3.3-70b", True), ("gemma-3", True), ("old", False)]
        )
    )


def _save_screenshots(page, name: str, *, full_page: bool = True) -> None:
    """Artefacts to look at; UPDATE_SCREENSHOTS=1 also refreshes the ones in docs/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    targets = [ARTIFACTS]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        targets.append(DOCS_SCREENSHOTS)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        shot = page.screenshot(full_page=full_page, animations="disabled")
        for target in targets:
            (target / f"{name}-{scheme}.png").write_bytes(shot)


def _plan_next_sync(hours: int) -> None:
    Schedule.objects.filter(name=conf.schedule_name()).update(
        next_run=timezone.now() + timedelta(hours=hours, minutes=1)
    )


def _lived_in(user: User) -> None:
    """What a catalogue looks like after some weeks: changes to come, health, favourites."""
    free = list(LLMModel.objects.available().free().by_quality())
    # The next sync will see these as added, renamed and with a new context length.
    LLMModel.objects.filter(pk__in=[m.pk for m in free[-3:]]).delete()
    LLMModel.objects.filter(pk=free[4].pk).update(name="Old name", content_hash="")
    LLMModel.objects.filter(pk=free[5].pk).update(context_length=32768, content_hash="")
    for model, health in zip(
        free[:6],
        [
            {"status": "up", "uptime": 99.6, "latencyMs": 380},
            {"status": "up", "uptime": 98.1, "latencyMs": 910},
            {"status": "degraded", "uptime": 71.0, "latencyMs": 2400},
            {"status": "up", "uptime": 100.0, "latencyMs": 250},
            {"status": "down", "uptime": 3.0},
            {"status": "up", "uptime": 97.4, "latencyMs": 640},
        ],
        strict=True,
    ):
        LLMModel.objects.filter(pk=model.pk).update(health=health)
    LLMModel.objects.filter(pk__in=[m.pk for m in free[10:14]]).update(availability=0.4)
    paid = LLMModel.objects.filter(is_free=False, is_available=True).order_by("quality_rank")[0]
    for model in (free[0], free[2], free[7], paid):
        Favorite.objects.create(user=user, llm_model=model)
    _local_catalogue()


def test_screenshots_light_and_dark(page, live_server, superuser, synced_2025, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=503, body=b"down")
    with pytest.raises(services.SyncFailed):
        services.sync_models(trigger=SyncRun.Trigger.SCHEDULE)
    serve(2025)
    _plan_next_sync(6)
    _lived_in(superuser)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_selector("ul.messagelist li.success")
    changes = page.locator("[data-testid=changes] tbody tr").count()
    _save_screenshots(page, "panel")
    # Seen free in under half of the recent syncs: flagged unstable in the model list.
    shaky = LLMModel.objects.available().free().from_source("openrouter").by_quality()[1:3]
    LLMModel.objects.filter(pk__in=[m.pk for m in shaky]).update(availability=0.4)
    page.goto(f"{live_server.url}{MODELS}?is_free__exact=1")
    _save_screenshots(page, "models", full_page=False)
    page.goto(f"{live_server.url}/admin/")
    page.emulate_media(color_scheme="light")
    page.screenshot(path=ARTIFACTS / "admin-index-light.png", animations="disabled")
    assert (changes, (ARTIFACTS / "panel-dark.png").stat().st_size > 0) == (5, True)


def test_screenshots_upstream_down(page, live_server, superuser, synced_2025, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    LLMModel.objects.update(last_seen_at=timezone.now() - timedelta(days=3, hours=2))
    serve(status=500, body=b"x")
    _plan_next_sync(2)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_selector("ul.messagelist li.error")
    stale = " ".join(page.inner_text("[data-testid=stale]").split())
    _save_screenshots(page, "panel-upstream-down")
    assert stale == (
        "Données vieilles de 3 jours, 2 heures. Les chiffres ci-dessous viennent de la base de "
        "données."
    )
