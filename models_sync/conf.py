"""The app's settings, read lazily so that ``override_settings`` works in tests.

Every value has its default here; ``tetika/settings.py`` may set any ``MODELS_SYNC_*`` name.
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_API_URL = "https://openrouter.ai/api/v1/models"
DEFAULT_KNOWN_PROVIDERS = ("google", "meta-llama", "microsoft", "mistralai", "qwen")
PREFIX = "MODELS_SYNC_"

# The settings the project leaves out, and the settings object they were looked up in.
# ``LazySettings`` keeps the settings it finds, but looks a missing one up again on each read,
# through a raised and caught AttributeError: four of them were a twentieth of a memory-tier
# GET. ``override_settings`` (and pytest-django's ``settings``) install another settings
# object, which starts an empty set.
_absent: tuple[object, set[str]] = (None, set())
_UNSET = object()


def _get(name: str, default):
    key = PREFIX + name
    checked, absent = _absent
    if checked is settings._wrapped and key in absent:
        return default
    value = getattr(settings, key, _UNSET)
    if value is not _UNSET:
        return value
    _remember_absent(key)
    return default


def _remember_absent(key: str) -> None:
    global _absent
    current = settings._wrapped
    if hasattr(current, key):  # set by an override since it was read: nothing to remember
        return
    checked, absent = _absent
    if checked is not current:
        absent = set()
        _absent = (current, absent)
    absent.add(key)


def api_url() -> str:
    return _get("API_URL", DEFAULT_API_URL) or DEFAULT_API_URL


def api_key() -> str:
    return _get("API_KEY", "") or ""


def connect_timeout() -> float:
    return float(_get("CONNECT_TIMEOUT", 5.0))


def read_timeout() -> float:
    return float(_get("READ_TIMEOUT", 30.0))


def max_response_bytes() -> int:
    """A body larger than this is refused while it streams in, never read whole."""
    return int(_get("MAX_RESPONSE_BYTES", 32 * 1024 * 1024))


def retries() -> int:
    return int(_get("RETRIES", 3))


def backoff_factor() -> float:
    return float(_get("BACKOFF_FACTOR", 0.5))


def max_retry_after() -> float:
    """Upper bound on an upstream ``Retry-After``, so a hostile value cannot park a worker."""
    return float(_get("MAX_RETRY_AFTER", 30.0))


def user_agent() -> str:
    return _get("USER_AGENT", "tetika-models-sync/0.1 (+https://github.com/tetika)")


def known_providers() -> tuple[str, ...]:
    return tuple(_get("KNOWN_PROVIDERS", DEFAULT_KNOWN_PROVIDERS))


def max_unavailable_ratio() -> float:
    """A sync that would mark more than this share of available models unavailable is refused."""
    return float(_get("MAX_UNAVAILABLE_RATIO", 0.5))


def lock_seconds() -> int:
    """Lease of the one-sync-at-a-time lock; a crashed sync frees it after this long."""
    return int(_get("LOCK_SECONDS", 600))


def new_days() -> int:
    return int(_get("NEW_DAYS", 90))


def cache_seconds() -> int:
    return int(_get("CACHE_SECONDS", 3600))


def fresh_hours() -> int:
    return int(_get("FRESH_HOURS", 24))


def cache_alias() -> str:
    return _get("CACHE_ALIAS", "default")


def api_token() -> str:
    return _get("API_TOKEN", "") or ""


def require_login() -> bool:
    return bool(_get("REQUIRE_LOGIN", False))


def min_refresh_seconds() -> int:
    return int(_get("MIN_REFRESH_SECONDS", 60))


def interval_minutes() -> int:
    return int(_get("INTERVAL_MINUTES", 360))


def default_output_file() -> str:
    return _get("OUTPUT_FILE", "free-models.json")


def webhooks() -> list[str]:
    return list(_get("WEBHOOKS", []) or [])


def webhook_secret() -> str:
    return _get("WEBHOOK_SECRET", "") or ""


def webhook_timeout() -> float:
    return float(_get("WEBHOOK_TIMEOUT", 5.0))


def webhook_attempts() -> int:
    return int(_get("WEBHOOK_ATTEMPTS", 3))


def history_days() -> int:
    return int(_get("HISTORY_DAYS", 30))


def schedule_name() -> str:
    return _get("SCHEDULE_NAME", "openrouter-sync")


def extra_catalogues() -> dict[str, dict[str, str]]:
    """Other catalogues synced into the same table, e.g. ``{"local-vllm": {"url": ...}}``."""
    return dict(_get("CATALOGUES", {}) or {})


def health_interval_minutes() -> int:
    return int(_get("HEALTH_INTERVAL_MINUTES", 60))


def health_concurrency() -> int:
    return max(1, int(_get("HEALTH_CONCURRENCY", 2)))


def health_history_hours() -> int:
    return int(_get("HEALTH_HISTORY_HOURS", 48))


def probe_interval_seconds() -> float:
    """Pause between probes: 3 s keeps under OpenRouter's free tier of 20 requests a minute."""
    return float(_get("PROBE_INTERVAL_SECONDS", 3.0))


def probe_every_hours() -> int:
    return int(_get("PROBE_EVERY_HOURS", 24))
