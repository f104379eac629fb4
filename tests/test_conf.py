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


def test_a_setting_is_read_from_django_once():
    conf.require_login()
    with mock.patch.object(conf, "settings") as lazy_settings:
        values = {conf.require_login() for _ in range(3)}

    assert values == {False}
    assert lazy_settings.mock_calls == []
