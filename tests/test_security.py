from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from models_sync.services import sync_models

from .conftest import ROOT

URL = "/api/models/sync"


@pytest.mark.django_db
def test_api_token_is_never_logged(client, serve, settings, caplog):
    settings.MODELS_SYNC_API_TOKEN = "tok-3f9a1c77e2"
    serve(2026)
    with caplog.at_level(logging.DEBUG):
        client.post(URL, HTTP_AUTHORIZATION="Bearer tok-3f9a1c77e2")
        client.post(URL, HTTP_AUTHORIZATION="Bearer wrong-tok-123")
    assert "tok-3f9a1c77e2" not in caplog.text
    assert "wrong-tok-123" not in caplog.text


@pytest.mark.django_db
def test_openrouter_key_is_never_logged(serve, settings, caplog):
    settings.MODELS_SYNC_API_KEY = "sk-or-v1-abcdef0123456789"
    serve(2026)
    with caplog.at_level(logging.DEBUG):
        sync_models(trigger="cli")
    assert "sk-or-v1-abcdef0123456789" not in caplog.text


def test_no_secret_in_the_repository():
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(
        r"sk-or-v1-[0-9a-f]{32,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}"
    )
    leaks = [
        name
        for name in files
        if (ROOT / name).is_file()
        and not name.endswith((".png", ".mo"))
        and pattern.search((ROOT / name).read_text("utf-8", errors="ignore"))
    ]
    assert leaks == []


def test_debug_is_off_unless_asked():
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env["DJANGO_SETTINGS_MODULE"] = "tetika.settings"
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.django_db
def test_search_metacharacters_are_text(client, serve):
    serve(2026)
    for needle in ["%", "_", ".*", "' OR '1'='1", "\\"]:
        body = client.get(URL, {"search": needle}).json()
        assert all(
            needle.casefold() in (m["id"] + m["name"] + m["description"]).casefold()
            for m in body["models"]
        )
        assert body["count"] < 18


@pytest.mark.django_db
def test_huge_query_string_is_a_json_400(client, serve):
    serve(2026)
    query = "&".join(f"p{i}=1" for i in range(1200))
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json()["success"] is False


@pytest.mark.django_db
def test_huge_search_value_is_a_json_400(client, serve):
    serve(2026)
    response = client.get(URL, {"search": "x" * 100_000})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "parameter 'search' must be at most 200 printable characters",
    }


@pytest.mark.django_db
def test_token_comparison_is_constant_time(monkeypatch, client, settings):
    import hmac

    from models_sync import views

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(views.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    settings.MODELS_SYNC_API_TOKEN = "abc"
    client.post(URL, HTTP_AUTHORIZATION="Bearer abd")
    assert calls == [1]
