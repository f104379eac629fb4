"""Test settings: the real settings, with what a test run over plain HTTP needs."""

from __future__ import annotations

from .settings import *  # noqa: F403
from .settings import Q_CLUSTER

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "name": "test", "sync": True}
# The test servers serve static files through staticfiles' own handler; no collectstatic needed.
MIDDLEWARE = [m for m in MIDDLEWARE if m != "whitenoise.middleware.WhiteNoiseMiddleware"]  # noqa: F405
