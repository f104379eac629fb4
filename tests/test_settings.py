from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRAGMAS = """
import django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    for name in ("journal_mode", "synchronous"):
        cursor.execute(f"PRAGMA {name}")
        print(cursor.fetchone()[0])
"""


def test_sqlite_file_runs_in_wal_with_normal_sync(tmp_path):
    """Readers go on while a sync writes; a commit does not wait for an fsync."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tetika.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "-c", PRAGMAS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["wal", "1"]
