"""The settings' SQLite options, on a real database file (the test database lives in memory)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from django.db import connection, connections

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the options apply to the SQLite default only"
)


@pytest.fixture
def file_connection(tmp_path, django_db_blocker) -> Iterator:
    """New connections to a database file, opened with the settings' OPTIONS."""
    opened = []

    def connect():
        default = connections["default"]
        settings_dict = {**default.settings_dict, "NAME": str(tmp_path / "db.sqlite3")}
        wrapper = type(default)(settings_dict, alias=f"file-{len(opened)}")
        wrapper.ensure_connection()
        opened.append(wrapper)
        return wrapper

    with django_db_blocker.unblock():
        yield connect
        for wrapper in opened:
            wrapper.close()


def _pragma(wrapper, name: str):
    with wrapper.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def test_a_database_file_is_opened_in_wal_mode_with_normal_sync(file_connection):
    wrapper = file_connection()
    assert (_pragma(wrapper, "journal_mode"), _pragma(wrapper, "synchronous")) == ("wal", 1)


def test_a_new_database_file_gets_16_kib_pages(file_connection):
    wrapper = file_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("CREATE TABLE t (v TEXT)")
    assert _pragma(wrapper, "page_size") == 16384


def test_a_database_file_made_with_4_kib_pages_opens_and_keeps_them(tmp_path, file_connection):
    made = sqlite3.connect(tmp_path / "db.sqlite3")
    made.execute("PRAGMA page_size=4096")
    made.execute("CREATE TABLE t (v TEXT)")
    made.execute("INSERT INTO t VALUES ('kept')")
    made.commit()
    made.close()
    wrapper = file_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT v FROM t")
        assert cursor.fetchall() == [("kept",)]
    assert (_pragma(wrapper, "page_size"), _pragma(wrapper, "journal_mode")) == (4096, "wal")


def test_a_reader_reads_the_committed_rows_while_a_large_write_is_open(file_connection):
    """The rollback journal would lock readers out once the writer spills its page cache."""
    writer, reader = file_connection(), file_connection()
    with writer.cursor() as cursor:
        cursor.execute("CREATE TABLE t (v TEXT)")
        cursor.execute("INSERT INTO t VALUES ('old')")
        cursor.execute("BEGIN IMMEDIATE")
        # 16 MiB, eight times SQLite's default page cache: the writer must spill it.
        cursor.executemany("INSERT INTO t VALUES (%s)", [("x" * 4096,)] * 4096)
    try:
        with reader.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 2000")
            cursor.execute("SELECT v FROM t WHERE v = 'old'")
            assert cursor.fetchall() == [("old",)]
    finally:
        with writer.cursor() as cursor:
            cursor.execute("ROLLBACK")
