"""Settings for the tetika project.

This is the only module that reads the environment (django-environ); the app reads its own
settings lazily through ``models_sync.conf``.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env(
    "SECRET_KEY",
    default="django-insecure-dev-only-key-set-SECRET_KEY-in-production-0123456789abcdef",
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_q",
    "models_sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tetika.urls"
WSGI_APPLICATION = "tetika.wsgi.application"
ASGI_APPLICATION = "tetika.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # BEGIN IMMEDIATE takes the write lock when a transaction starts, so concurrent writers
    # queue up (up to the timeout) instead of failing with "database is locked" mid-transaction.
    # WAL: readers (the API, the admin) go on reading while a sync writes, where the rollback
    # journal locks them out once the writer spills its cache; with synchronous=NORMAL a
    # commit appends to the log without an fsync (a power cut may lose the last commits, never
    # corrupt the file): a third of an unchanged sync's time. A large first fill pays for it,
    # each page written twice (README, Benchmarks). 16 KiB pages: a row (raw record and all) is
    # ~2.7 KiB, so 4 KiB pages hold one each, the rest unused; a database created with 16 KiB
    # pages is ~20 % smaller and a 100 000-model first sync ~7 % faster (page_size only applies
    # to a new file, so it comes before journal_mode, which writes the header).
    DATABASES["default"]["ENGINE"] = "tetika.sqlite3"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
            ),
        }
    )
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default=None)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://tetika")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env("LANGUAGE_CODE", default="fr")
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "models_sync" / "locale"]
TIME_ZONE = env("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "models_sync": {
            "handlers": ["console"],
            "level": env("MODELS_SYNC_LOG_LEVEL", default="INFO"),
        },
    },
}

# --- Security: strict by default once DEBUG is off, each overridable for a TLS-terminating proxy.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- models_sync (read lazily through models_sync.conf; every value has a default there)
MODELS_SYNC_API_URL = env("OPENROUTER_API_URL", default="https://openrouter.ai/api/v1/models")
MODELS_SYNC_API_KEY = env("OPENROUTER_API_KEY", default="")
MODELS_SYNC_CONNECT_TIMEOUT = env.float("OPENROUTER_CONNECT_TIMEOUT", default=5.0)
MODELS_SYNC_READ_TIMEOUT = env.float("OPENROUTER_READ_TIMEOUT", default=30.0)
MODELS_SYNC_MAX_RESPONSE_BYTES = env.int("OPENROUTER_MAX_RESPONSE_BYTES", default=32 * 1024 * 1024)
MODELS_SYNC_CACHE_SECONDS = env.int("MODELS_SYNC_CACHE_SECONDS", default=3600)
MODELS_SYNC_FRESH_HOURS = env.int("MODELS_SYNC_FRESH_HOURS", default=24)
MODELS_SYNC_NEW_DAYS = env.int("MODELS_SYNC_NEW_DAYS", default=90)
MODELS_SYNC_API_TOKEN = env("MODELS_SYNC_API_TOKEN", default="")
MODELS_SYNC_REQUIRE_LOGIN = env.bool("MODELS_SYNC_REQUIRE_LOGIN", default=False)
MODELS_SYNC_MIN_REFRESH_SECONDS = env.int("MODELS_SYNC_MIN_REFRESH_SECONDS", default=60)
MODELS_SYNC_INTERVAL_MINUTES = env.int("MODELS_SYNC_INTERVAL_MINUTES", default=360)

# --- django-q2: ORM broker on the default database unless REDIS_URL is set.
REDIS_URL = env("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "tetika",
    "workers": env.int("Q_WORKERS", default=1),
    "timeout": 60,
    "retry": 120,
    "catch_up": False,
    "poll": 1,
    "max_attempts": 1,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
if env.bool("Q_SYNC", default=False):
    Q_CLUSTER["sync"] = True
