"""A real ``qcluster`` process runs the due schedule against a real database file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import ROOT, fixture_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def local_upstream():
    """OpenRouter stand-in on 127.0.0.1 serving the 2024 fixture."""
    body = fixture_bytes(2024)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/v1/models"
    server.shutdown()
    server.server_close()


def _rows(db_path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(db_path, timeout=30)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        connection.close()


def test_qcluster_runs_the_schedule_and_records_a_run(tmp_path, local_upstream):
    db_path = tmp_path / "cluster.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tetika.settings",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "CACHE_URL": "locmemcache://",
        "OPENROUTER_API_URL": local_upstream,
        "REDIS_URL": "",
        "Q_SYNC": "false",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )
    # migrate created the schedule, due now.
    assert _rows(
        db_path, "select name, minutes from django_q_schedule where name = 'openrouter-sync'"
    ) == [("openrouter-sync", 360)]
    log = (tmp_path / "qcluster.log").open("w")
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        runs: list[tuple] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not runs:
            time.sleep(1)
            runs = _rows(
                db_path,
                "select trigger, status, free_count from models_sync_syncrun "
                "where status != 'running'",
            )
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
            cluster.wait()
        log.close()
    assert runs == [("schedule", "success", 10)], (tmp_path / "qcluster.log").read_text()[-3000:]
    assert _rows(db_path, "select count(*) from models_sync_llmmodel") == [(100,)]
