"""The HTTP client: responses parsed into (status, JSON or text), refusals raised with their body, bounded retries.

Everything runs through ``httpx.MockTransport``: no sockets, no sleeping (``backoff=0``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from ativo import http
from ativo.errors import AtivoError

URL = "http://api.test/health"


def client_of(*answers: httpx.Response | Exception) -> tuple[httpx.Client, list[httpx.Request]]:
    """A client whose n-th request gets the n-th answer (an exception is raised instead); and what it was sent."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        answer = answers[min(len(sent), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)  # a fresh one

    return httpx.Client(transport=httpx.MockTransport(handler)), sent


def refused(request_url: str = URL) -> httpx.ConnectError:
    return httpx.ConnectError("connection refused", request=httpx.Request("GET", request_url))


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(200, json={"versions": {"champion": "3"}}), (200, {"versions": {"champion": "3"}})),
        (
            httpx.Response(503, json={"status": "no champion", "versions": {}}),
            (503, {"status": "no champion", "versions": {}}),
        ),
        (httpx.Response(200, text="OK"), (200, "OK")),
        (httpx.Response(200, text="# HELP x\nx 1\n", headers={"Content-Type": "text/plain"}), (200, "# HELP x\nx 1\n")),
        (httpx.Response(204), (204, None)),
        (httpx.Response(500, text="{not json"), (500, "{not json")),
    ],
    ids=["200-json", "503-json-body", "text", "prometheus-text", "empty", "broken-json-is-text"],
)
def test_parse_response(response, expected):
    assert http.parse_response(response) == expected


def test_get_json_returns_the_parsed_body():
    client, sent = client_of(httpx.Response(200, json={"a": [1, 2]}))
    assert http.get_json(URL, timeout=1, client=client, backoff=0) == {"a": [1, 2]}
    assert len(sent) == 1 and sent[0].method == "GET"


def test_a_503_with_a_json_body_is_raised_with_its_status_and_body():
    client, sent = client_of(httpx.Response(503, json={"status": "no champion", "versions": {"previous": "2"}}))
    with pytest.raises(http.HttpError) as info:
        http.get_json(URL, timeout=1, attempts=1, client=client)
    err = info.value
    assert err.status == 503 and err.body == {"status": "no champion", "versions": {"previous": "2"}}
    assert err.url == URL and err.method == "GET" and "HTTP 503" in str(err)
    assert isinstance(err, OSError) and isinstance(err, AtivoError)  # callers that caught urllib's errors still do
    assert len(sent) == 1


def test_a_non_json_body_is_an_error_for_get_json_and_text_for_get_text():
    client, _ = client_of(httpx.Response(200, text="OK"))
    with pytest.raises(http.HttpError, match="without a JSON body") as info:
        http.get_json(URL, timeout=1, client=client)
    assert info.value.status == 200 and info.value.body == "OK"
    assert http.get_text(URL, timeout=1, client=client) == "OK"


def test_a_refusal_with_a_text_body_carries_the_text():
    client, _ = client_of(httpx.Response(404, text="no such route"))
    with pytest.raises(http.HttpError) as info:
        http.get_text(URL, timeout=1, client=client, backoff=0)
    assert (info.value.status, info.value.body) == (404, "no such route")


Call = Callable[[httpx.Client], object]
GET: Call = lambda c: http.get_json(URL, timeout=1, client=c, backoff=0)  # noqa: E731
POST: Call = lambda c: http.post_json(URL, {"x": 1}, timeout=1, client=c, backoff=0)  # noqa: E731
POST_SAFE: Call = lambda c: http.post_json(URL, {"x": 1}, timeout=1, attempts=3, client=c, backoff=0)  # noqa: E731


@pytest.mark.parametrize(
    ("call", "answers", "result", "tries"),
    [
        (GET, [refused(), httpx.Response(200, json={"ok": True})], {"ok": True}, 2),
        (GET, [refused(), refused(), refused(), httpx.Response(200, json={})], None, 3),
        (GET, [httpx.ReadTimeout("slow"), httpx.Response(200, json={"ok": 1})], {"ok": 1}, 2),
        (GET, [httpx.Response(503, json={}), httpx.Response(502), httpx.Response(200, json=[1])], [1], 3),
        (GET, [httpx.Response(503, json={"versions": {}})] * 5, 503, 3),
        (GET, [httpx.Response(500, text="bug"), httpx.Response(200, json={})], 500, 1),
        (GET, [httpx.Response(404), httpx.Response(200, json={})], 404, 1),
        (POST, [refused(), httpx.Response(200, json={})], None, 1),
        (POST, [httpx.Response(503), httpx.Response(200, json={})], 503, 1),
        (POST, [httpx.Response(201, json={"id": 7})], {"id": 7}, 1),
        (POST_SAFE, [refused(), httpx.ReadTimeout("slow"), httpx.Response(200, text="ok")], "ok", 3),
    ],
    ids=[
        "get-connection-error-retried",
        "get-connection-error-raised-after-3",
        "get-timeout-retried",
        "get-502-503-retried",
        "get-503-retried-up-to-the-bound",
        "get-500-not-retried",
        "get-404-not-retried",
        "post-connection-error-not-retried",
        "post-503-not-retried",
        "post-201-json",
        "post-retried-when-safe",
    ],
)
def test_retries(call, answers, result, tries):
    client, sent = client_of(*answers)
    if result is None or isinstance(result, int):
        with pytest.raises(http.HttpError) as info:
            call(client)
        assert info.value.status == result  # None: never answered
    else:
        assert call(client) == result
    assert len(sent) == tries


def test_an_unreachable_server_names_the_attempts_and_the_failure():
    client, _ = client_of(refused())
    with pytest.raises(http.HttpError, match=r"GET http://api.test/health failed after 3 attempts: ConnectError"):
        http.get_text(URL, timeout=1, client=client, backoff=0)


def test_request_returns_the_last_answer_when_retry_statuses_run_out():
    client, sent = client_of(httpx.Response(503, text="busy"))
    resp = http.request("GET", URL, timeout=1, attempts=2, retry_statuses={503}, backoff=0, client=client)
    assert http.parse_response(resp) == (503, "busy") and len(sent) == 2


def test_post_json_sends_the_document_and_the_headers():
    client, sent = client_of(httpx.Response(200, json={"ok": True}))
    http.post_json(URL, {"rows": [1]}, timeout=1, headers={"Authorization": "Bearer k"}, client=client)
    [req] = sent
    assert json.loads(req.content) == {"rows": [1]}
    assert req.headers["Authorization"] == "Bearer k" and req.headers["Content-Type"] == "application/json"


def test_the_timeout_is_applied_to_every_phase():
    client, sent = client_of(httpx.Response(200, json={}))
    http.get_json(URL, timeout=2.5, client=client)
    assert sent[0].extensions["timeout"] == {"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}


def test_attempts_must_be_positive():
    with pytest.raises(ValueError, match="attempts"):
        http.request("GET", URL, timeout=1, attempts=0)


def test_a_redacted_url_never_reaches_the_error_or_the_log(caplog):
    from ativo import http

    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    secret = "https://hooks.example:8443/services/T000/B000/sekret-token"
    with pytest.raises(http.HttpError) as info:
        http.request("POST", secret, timeout=1, doc={}, attempts=2, backoff=0, client=client, redact=True)
    assert "sekret-token" not in str(info.value) and "hooks.example:8443" in str(info.value)
    assert "sekret-token" not in caplog.text and "attempt 1/2" in caplog.text


def test_a_redirect_loop_is_an_http_error_not_a_crash():
    from ativo import http

    def loop(request):
        return httpx.Response(302, headers={"Location": str(request.url)})

    client = httpx.Client(transport=httpx.MockTransport(loop), follow_redirects=True)
    with pytest.raises(http.HttpError, match="TooManyRedirects"):
        http.request("GET", "http://127.0.0.1:9/loop", timeout=1, attempts=3, backoff=0, client=client)
