"""SQLite with its real bound-parameter limit, so bulk writes go in large batches.

Django 5.2 assumes SQLite's historical limit of 999 parameters; SQLite 3.32+ allows 32766,
which keeps the number of queries of a sync constant instead of one per ~40 rows.
"""

from __future__ import annotations

import sqlite3

from django.db.backends.sqlite3 import base, features


class DatabaseFeatures(features.DatabaseFeatures):
    max_query_params = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures
