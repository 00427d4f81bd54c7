from __future__ import annotations

import json

import pytest

from ativo.ops.alerts import deploy_payload, failure_payload
from ativo.paging import ALERT_CHARS, post_webhook, webhook_url_from


def test_failure_alert_reaches_the_webhook_with_the_run_details(webhook):
    url, received = webhook
    payload = failure_payload(
        dag_id="adult_income__etl",
        task_id="validate",
        run_id="backfill__2026-10-02",
        try_number=1,
        log_url="http://localhost:8080/log",
        error="BatchRejected: column 'age' …",
        owner="ml-platform",
    )
    assert post_webhook(url, payload)
    [msg] = received
    assert "adult_income__etl.validate" in msg["text"]
    fields = {f["title"]: f["value"] for f in msg["attachments"][0]["fields"]}
    assert fields["Run"] == "backfill__2026-10-02" and fields["Try"] == "1" and fields["Log"].endswith("/log")


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    for v in obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ():
        yield from _strings(v)


def test_every_string_an_alert_carries_is_bounded(webhook):
    url, received = webhook
    huge = "column 'workclass': " + "a" * 1_048_576
    payload = failure_payload(
        dag_id="adult_income__etl",
        task_id="validate",
        run_id="scheduled__2026-10-02",
        try_number=1,
        log_url=None,
        error=f"AirflowFailException: {huge}",
    )
    assert post_webhook(url, payload)
    assert post_webhook(url, deploy_payload("adult_income", {"version": 3, "reason": huge, "uri": "file:///r"}))
    assert post_webhook(url, {"text": huge, "blocks": [{"text": huge}]})  # any payload, not only the builders'
    assert len(received) == 3
    for msg in received:
        assert max(len(s) for s in _strings(msg)) <= ALERT_CHARS and len(json.dumps(msg)) < 10_000
    assert received[0]["ativo"]["error"].startswith("AirflowFailException: column 'workclass': aaa")
    assert received[0]["ativo"]["error"].endswith(f"… ({len(huge) + 22} chars)")


def test_unreachable_webhook_returns_false_quickly():
    assert post_webhook("http://127.0.0.1:9/", {"text": "x"}, timeout=0.5, attempts=2) is False


@pytest.mark.parametrize(
    ("extra", "host", "schema", "port", "url"),
    [
        ({"webhook_url": "https://hooks.example/x"}, None, None, None, "https://hooks.example/x"),
        ({}, "http://127.0.0.1:9000/hook", None, None, "http://127.0.0.1:9000/hook"),
        ({}, "hooks.example", "https", 8443, "https://hooks.example:8443"),
        ({}, None, None, None, None),
    ],
)
def test_webhook_url_from_connection(extra, host, schema, port, url):
    assert webhook_url_from(extra, host, schema, port) == url
