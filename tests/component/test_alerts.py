from __future__ import annotations

import pytest

from ativo.alerts import failure_payload, post_webhook, webhook_url_from


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
