from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import responses
from django.core.cache import cache

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + Playwright sync API

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("OPENROUTER_FIXTURES", ROOT.parent / "shared/fixtures/openrouter"))
FIXTURE_FILES = {
    2024: "models-2024-02-18.json",
    2025: "models-2025-06-17.json",
    2026: "models-2026-08-19.json",
}
API_URL = "https://openrouter.ai/api/v1/models"


def fixture_path(year: int) -> Path:
    path = FIXTURES / FIXTURE_FILES[year]
    if not path.is_file():
        pytest.fail(f"OpenRouter fixture missing: {path} (set OPENROUTER_FIXTURES)")
    return path


def fixture_bytes(year: int) -> bytes:
    return fixture_path(year).read_bytes()


def fixture_records(year: int) -> list[dict[str, Any]]:
    return json.loads(fixture_bytes(year))["data"]


def body_of(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"data": records}).encode()


def table_dump() -> list[tuple]:
    """Every stored model, every synced column: equal dumps mean nothing changed."""
    from models_sync.models import LLMModel
    from models_sync.services import SYNCED_FIELDS

    return list(
        LLMModel.objects.order_by("source", "model_id").values_list(
            "source", "model_id", "first_seen_at", "last_seen_at", *SYNCED_FIELDS
        )
    )


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings):
    settings.MODELS_SYNC_API_URL = API_URL
    settings.MODELS_SYNC_API_KEY = ""
    settings.MODELS_SYNC_BACKOFF_FACTOR = 0
    settings.MODELS_SYNC_MAX_RETRY_AFTER = 0
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def upstream():
    """OpenRouter mocked at the HTTP boundary; no request leaves the machine."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def serve(upstream):
    """serve(2026) or serve(records=[...]) or serve(status=500): what OpenRouter answers next."""

    def _serve(year: int | None = None, *, records=None, body=None, status=200, **kwargs):
        if year is not None:
            body = fixture_bytes(year)
        elif records is not None:
            body = body_of(records)
        upstream.add(responses.GET, API_URL, body=body, status=status, **kwargs)
        return upstream

    return _serve


# --- Browser tests: pytest-playwright on Debian's Chromium (never `playwright install`).
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM_PATH, "args": CHROMIUM_ARGS}
