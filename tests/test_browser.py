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
from models_sync.models import LLMModel, SyncRun

from .conftest import CHROMIUM_PATH, ROOT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM_PATH).exists(), reason=f"no Chromium at {CHROMIUM_PATH}"),
]

PANEL = "/admin/models_sync/llmmodel/panel/"
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


def _save_screenshots(page, name: str) -> None:
    """Artefacts to look at; UPDATE_SCREENSHOTS=1 also refreshes the ones in docs/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    targets = [ARTIFACTS]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        targets.append(DOCS_SCREENSHOTS)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        shot = page.screenshot(full_page=True, animations="disabled")
        for target in targets:
            (target / f"{name}-{scheme}.png").write_bytes(shot)


def _plan_next_sync(hours: int) -> None:
    Schedule.objects.filter(name=conf.schedule_name()).update(
        next_run=timezone.now() + timedelta(hours=hours, minutes=1)
    )


def test_screenshots_light_and_dark(page, live_server, superuser, synced_2025, serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=503, body=b"down")
    with pytest.raises(services.SyncFailed):
        services.sync_models(trigger=SyncRun.Trigger.SCHEDULE)
    serve(2025)
    _plan_next_sync(6)
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_server, superuser)
    page.click("[data-testid=sync-button]")
    page.wait_for_selector("ul.messagelist li.success")
    _save_screenshots(page, "panel")
    page.goto(f"{live_server.url}/admin/")
    page.emulate_media(color_scheme="light")
    page.screenshot(path=ARTIFACTS / "admin-index-light.png", animations="disabled")
    assert (ARTIFACTS / "panel-dark.png").stat().st_size > 0


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
