from __future__ import annotations

from unittest import mock

from django.conf import settings as django_settings
from django.test import override_settings

from models_sync import conf


def test_a_setting_left_out_reads_its_default():
    with override_settings(MODELS_SYNC_RETRIES=5):
        del django_settings.MODELS_SYNC_RETRIES
        assert conf.retries() == 3


def test_an_overridden_setting_is_read_anew_and_restored_after():
    before = conf.cache_seconds()

    with override_settings(MODELS_SYNC_CACHE_SECONDS=before + 7):
        inside = conf.cache_seconds()

    assert (inside, conf.cache_seconds()) == (before + 7, before)


def test_a_setting_deleted_in_an_override_reads_its_default_until_the_override_ends():
    with override_settings(MODELS_SYNC_CACHE_SECONDS=5):
        outer = conf.cache_seconds()
        with override_settings():
            del django_settings.MODELS_SYNC_CACHE_SECONDS
            inner = [conf.cache_seconds(), conf.cache_seconds()]
        after = conf.cache_seconds()

    assert (outer, inner, after) == (5, [3600, 3600], 5)


def test_a_setting_set_after_it_was_read_as_left_out_is_read():
    with override_settings():
        del django_settings.MODELS_SYNC_PROBE_EVERY_HOURS
        first = conf.probe_every_hours()
        with override_settings(MODELS_SYNC_PROBE_EVERY_HOURS=first + 1):
            assert conf.probe_every_hours() == first + 1


def test_a_left_out_setting_is_looked_up_once():
    with override_settings():
        del django_settings.MODELS_SYNC_PROBE_EVERY_HOURS
        holder = type(django_settings._wrapped)
        with mock.patch.object(
            holder, "__getattr__", autospec=True, side_effect=holder.__getattr__
        ) as lookup:
            conf.probe_every_hours()
            first = lookup.call_count
            values = {conf.probe_every_hours() for _ in range(3)}

    assert first > 0
    assert (lookup.call_count, len(values)) == (first, 1)
