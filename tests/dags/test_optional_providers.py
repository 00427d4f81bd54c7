"""An erasure queue configured on an Airflow without the sqs extra's providers fails saying what to install."""

from __future__ import annotations

import sys

import pytest

from ativo.airflow.erasure import _require_queue_providers


def test_missing_amazon_provider_names_the_extra_and_the_setting(monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon", None)  # what find_spec reports when not installed
    with pytest.raises(ImportError) as err:
        _require_queue_providers()
    message = str(err.value)
    assert "apache-airflow-providers-amazon" in message and "common-messaging" not in message
    assert "pip install 'ativo[sqs]'" in message and "ATIVO_ERASURE_QUEUE_URL" in message


def test_installed_providers_pass():
    _require_queue_providers()
