from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from models_sync.models import LLMModel, SyncRun

from .conftest import ROOT, fixture_path

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("sync_openrouter", *args, stdout=out)
    return out.getvalue()


def test_prints_seed_progress_lines(serve):
    serve(2026)
    out = _run()
    assert "🔄 Synchronisation des modèles OpenRouter..." in out
    assert "✅ 414 modèles récupérés" in out
    assert "✅ 18 modèles gratuits trouvés" in out
    assert "✅ 18 modèles convertis et triés" in out
    assert SyncRun.objects.get().trigger == "cli"


def test_prints_top_ten_with_rank_vision_author_and_context(serve):
    serve(2026)
    out = _run()
    lines = out.splitlines()
    start = lines.index("🏆 TOP 10 MODÈLES GRATUITS")
    top = lines[start + 2 : start + 12]
    assert top[0] == " 1. 👁️ Google: Gemma 4 26B A4B  (free)          google          262k"
    assert top[2] == " 3.    NVIDIA: Nemotron 3 Ultra (free)          nvidia          1000k"
    assert top[9].startswith("10. ")


def test_stats_block(serve):
    serve(2026)
    out = _run("--stats")
    assert "Total :               18" in out
    assert "Disponibles (tous) :  414" in out
    assert "Avec vision :         7" in out
    assert "Contexte moyen :      316100" in out
    assert "Contexte min :        128000" in out
    assert "  nvidia                     8  (44.4%)" in out


def test_stats_with_zero_models_gives_zeros(serve):
    records = [{"id": "a/paid", "name": "Paid", "pricing": {"prompt": "1", "completion": "1"}}]
    serve(records=records)
    out = _run("--stats")
    assert "Total :               0" in out
    assert "Contexte moyen :      0" in out
    assert "Contexte max :        0" in out


def test_save_writes_default_file(serve, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    serve(2024)
    _run("--save")
    document = json.loads((tmp_path / "free-models.json").read_text())
    assert set(document) == {"timestamp", "count", "models"}
    assert document["count"] == 10 == len(document["models"])
    first = document["models"][0]
    assert first["provider"] == "openrouter"
    assert set(first["features"]) == {"rag", "vision", "streaming"}


def test_output_alone_implies_save(serve, tmp_path):
    serve(2024)
    target = tmp_path / "models.json"
    _run("--output", str(target))
    assert json.loads(target.read_text())["count"] == 10


def test_output_in_missing_directory_fails_before_syncing(serve, tmp_path):
    serve(2024)
    with pytest.raises(CommandError) as excinfo:
        _run("--output", str(tmp_path / "nope" / "x.json"))
    assert str(excinfo.value) == f"--output {tmp_path / 'nope'} : dossier introuvable"
    assert SyncRun.objects.count() == 0


def test_source_reads_a_local_snapshot(upstream):
    out = _run("--source", str(fixture_path(2025)))
    assert "✅ 67 modèles gratuits trouvés" in out
    assert len(upstream.calls) == 0


def test_failure_is_a_command_error_with_reason(serve, settings):
    settings.MODELS_SYNC_RETRIES = 0
    serve(status=502, body=b"bad gateway")
    with pytest.raises(CommandError) as excinfo:
        _run()
    assert (
        str(excinfo.value)
        == "Échec de la synchronisation : openrouter.ai answered HTTP 502 Bad Gateway"
    )


def test_refusal_is_a_command_error(serve):
    serve(records=[])
    with pytest.raises(CommandError) as excinfo:
        _run()
    assert "upstream returned no models" in str(excinfo.value)


def test_force_accepts_empty_answer(serve):
    serve(records=[])
    _run("--force")
    assert SyncRun.objects.get().status == "success"
    assert LLMModel.objects.count() == 0


def _manage(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return subprocess.run(
        [sys.executable, "manage.py", "sync_openrouter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_process_exit_codes(tmp_path):
    ok = _manage("--source", str(fixture_path(2024)), tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    missing = _manage("--source", str(tmp_path / "absent.json"), tmp_path=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines()[-1] == (
        f"CommandError: Échec de la synchronisation : snapshot file not found: "
        f"{tmp_path / 'absent.json'}"
    )
    bad_flag = _manage("--bogus", tmp_path=tmp_path)
    assert bad_flag.returncode == 2
    assert "unrecognized arguments: --bogus" in bad_flag.stderr
