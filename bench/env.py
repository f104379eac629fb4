"""Which database the bench may use: it deletes every model row, so never a real one."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import environ

SETTINGS_MODULE = "tetika.settings_test"
SUFFIX = "_bench"


class UnsafeDatabase(Exception):
    """DATABASE_URL names a database the bench must not wipe."""


@dataclass(frozen=True, slots=True)
class BenchDatabase:
    url: str
    description: str
    temp_dir: Path | None = None

    def cleanup(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def choose_database(url: str | None) -> BenchDatabase:
    """A throwaway SQLite file by default; a given SQLite URL gets its own ``*_bench`` file next
    to the named one; any other engine must already be a database whose name ends in ``_bench``.
    """
    if not url:
        temp_dir = Path(tempfile.mkdtemp(prefix="tetika-bench-"))
        path = temp_dir / "bench.sqlite3"
        return BenchDatabase(f"sqlite:///{path}", f"SQLite {path} (throwaway)", temp_dir)
    config = environ.Env.db_url_config(url)
    engine, name = config.get("ENGINE", ""), str(config.get("NAME") or "")
    if "sqlite" in engine:
        if name in ("", ":memory:"):
            return BenchDatabase("sqlite://:memory:", "SQLite in memory")
        path = Path(name)
        if not path.stem.endswith(SUFFIX):
            path = path.with_name(f"{path.stem}{SUFFIX}{path.suffix or '.sqlite3'}")
        return BenchDatabase(f"sqlite:///{path.resolve()}", f"SQLite {path.resolve()}")
    if not name.endswith(SUFFIX):
        raise UnsafeDatabase(
            f"DATABASE_URL names the database {name!r}; the bench deletes every model row, so it "
            f"only runs on a database whose name ends in {SUFFIX!r} (create e.g. tetika{SUFFIX})"
        )
    return BenchDatabase(url, f"{engine.rsplit('.', 1)[-1]} database {name}")


def configure(database: BenchDatabase) -> None:
    """Must run before Django reads its settings: ``tetika/settings.py`` reads the environment."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    os.environ["DATABASE_URL"] = database.url
