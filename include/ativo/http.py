"""One HTTP client for Ativo and its tooling: explicit timeouts, bounded retries, one error type.

Every call names its timeout. Retries are few and short, and only where repeating cannot do harm:

- a connection that could not be made, or a timeout, is tried again up to ``attempts`` times;
- a GET (idempotent) is also tried again on 502/503/504 (a proxy or a server starting up);
- a POST is tried once (``attempts=1``) unless its caller says repeating it is safe (the on-call webhook does).

A refused call (HTTP status ≥ 400) or an unreachable server raises :class:`HttpError`, which is an ``OSError``
like urllib's errors were, and carries the status and the parsed body (the inference API's ``/health`` answers 503
with a JSON body that still names the versions it serves). :func:`parse_response` is the one place a response is
read into (status, JSON or text); tests drive it all through ``httpx.MockTransport``, without sockets.
"""

from __future__ import annotations

import functools
import json
import logging
import ssl
import time
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from ativo.errors import AtivoError

log = logging.getLogger(__name__)

RETRY_STATUSES: frozenset[int] = frozenset({502, 503, 504})
"""Statuses a GET is tried again on: a gateway or a server that is not ready yet."""
GET_ATTEMPTS = 3
"""Tries of a GET by default (the first one included)."""
BACKOFF_S = 0.25
"""Pause before the n-th retry: ``BACKOFF_S × n`` seconds."""


class HttpError(AtivoError, OSError):
    """An HTTP call failed: the server refused it (``status`` ≥ 400) or could not be reached (``status`` None).

    Attributes:
        method: the request's method.
        url: the request's URL.
        status: the HTTP status, None when no answer came (connection refused, timeout).
        body: the answer's body, parsed as JSON when it is JSON, else its text (None without an answer).
    """

    def __init__(self, message: str, *, method: str, url: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.method, self.url, self.status, self.body = method, url, status, body

    def __reduce__(self) -> tuple[Any, ...]:  # OSError pickles by args alone; keep the fields across processes
        return (_rebuild, (str(self), self.method, self.url, self.status, self.body))


def _rebuild(message: str, method: str, url: str, status: int | None, body: Any) -> HttpError:
    return HttpError(message, method=method, url=url, status=status, body=body)


def _decode(resp: httpx.Response) -> tuple[bool, Any]:
    """(whether the body is JSON, the body parsed as JSON, else its text; None when empty)."""
    text = resp.text
    if not text.strip():
        return False, None
    try:
        return True, json.loads(text)
    except ValueError:
        return False, text


def parse_response(resp: httpx.Response) -> tuple[int, Any]:
    """A response as (status, body): the body parsed as JSON when it is JSON, else its text; None when empty."""
    return resp.status_code, _decode(resp)[1]


def _snippet(body: Any, limit: int = 300) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def raise_for_status(resp: httpx.Response) -> Any:
    """The parsed body of a response (see :func:`parse_response`).

    Raises:
        HttpError: the status is 400 or above; it carries the status and the parsed body.
    """
    status, body = parse_response(resp)
    if status >= 400:
        method, url = resp.request.method, str(resp.request.url)
        said = f": {_snippet(body)}" if body is not None else ""
        raise HttpError(
            f"{method} {url} answered HTTP {status}{said}", method=method, url=url, status=status, body=body
        )
    return body


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # The system's trust store (as urllib used; honours SSL_CERT_FILE/SSL_CERT_DIR), built once: ~60 ms per client.
    return ssl.create_default_context()


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL, without the path and query that may carry a secret."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an invalid URL)"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


def new_client() -> httpx.Client:
    """A client as every call here uses (redirects followed, as urllib did); pass it to reuse its connections."""
    return httpx.Client(verify=_ssl_context(), follow_redirects=True)


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    doc: Any = None,
    headers: Mapping[str, str] | None = None,
    attempts: int = 1,
    retry_statuses: Collection[int] = (),
    backoff: float = BACKOFF_S,
    client: httpx.Client | None = None,
    redact: bool = False,
) -> httpx.Response:
    """Send one request (``doc`` as its JSON body), trying again on failures that are safe to repeat.

    A response of any status is returned (after ``retry_statuses`` ran out of attempts, the last one).

    Args:
        method: ``GET``, ``POST``, …
        url: the full URL.
        timeout: seconds for each of connecting, sending, waiting for the answer (per attempt).
        doc: a JSON-able body (None: no body).
        headers: extra headers (``Content-Type: application/json`` is set with a ``doc``).
        attempts: tries in all, the first included; more than 1 only where repeating the request is safe.
        retry_statuses: statuses to try again on (only for idempotent requests).
        backoff: the pause before the n-th retry is ``backoff × n`` seconds.
        client: a client to send it with (keep-alive across calls, or a test's ``MockTransport``).
        redact: the URL is a secret (a Slack-style webhook): logs and errors name only its scheme, host and port.

    Raises:
        HttpError: no answer after ``attempts`` tries (``status`` None; it names the last failure).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    own = client is None
    http = new_client() if client is None else client
    shown = _origin(url) if redact else url
    try:
        for attempt in range(1, attempts + 1):
            try:
                resp = http.request(method, url, json=doc, headers=dict(headers or {}), timeout=timeout)
            except httpx.RequestError as err:  # refused, reset, timed out, a redirect loop, a bad encoding, …
                transient = isinstance(err, httpx.TransportError) and not isinstance(err, httpx.UnsupportedProtocol)
                why = type(err).__name__ if redact else f"{type(err).__name__}: {err}"
                if attempt == attempts or not transient:  # a bad URL or a redirect loop stays bad
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise HttpError(f"{method} {shown} failed{tries}: {why}", method=method, url=shown) from err
                log.warning("%s %s failed (attempt %d/%d): %s", method, shown, attempt, attempts, why)
            else:
                if resp.status_code not in retry_statuses or attempt == attempts:
                    resp.read()
                    return resp
                log.warning(
                    "%s %s answered HTTP %d (attempt %d/%d)", method, shown, resp.status_code, attempt, attempts
                )
                resp.close()
            time.sleep(backoff * attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
    finally:
        if own:
            http.close()


def get_json(
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    attempts: int = GET_ATTEMPTS,
    retry_statuses: Collection[int] = RETRY_STATUSES,
    backoff: float = BACKOFF_S,
    client: httpx.Client | None = None,
) -> Any:
    """GET ``url`` and return its JSON body (retried on connection failures and ``retry_statuses``).

    Raises:
        HttpError: unreachable, a status ≥ 400 (with its parsed body), or a body that is not JSON.
    """
    resp = request(
        "GET",
        url,
        timeout=timeout,
        headers=headers,
        attempts=attempts,
        retry_statuses=retry_statuses,
        backoff=backoff,
        client=client,
    )
    body = raise_for_status(resp)
    if not _decode(resp)[0]:
        raise HttpError(
            f"GET {url} answered HTTP {resp.status_code} without a JSON body: {_snippet(body or '')}",
            method="GET",
            url=url,
            status=resp.status_code,
            body=body,
        )
    return body


def get_text(
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    attempts: int = GET_ATTEMPTS,
    retry_statuses: Collection[int] = RETRY_STATUSES,
    backoff: float = BACKOFF_S,
    client: httpx.Client | None = None,
) -> str:
    """GET ``url`` and return its body as text (retried on connection failures and ``retry_statuses``).

    Raises:
        HttpError: unreachable, or a status ≥ 400 (with its parsed body).
    """
    resp = request(
        "GET",
        url,
        timeout=timeout,
        headers=headers,
        attempts=attempts,
        retry_statuses=retry_statuses,
        backoff=backoff,
        client=client,
    )
    raise_for_status(resp)
    return resp.text


def post_json(
    url: str,
    doc: Any,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    attempts: int = 1,
    retry_statuses: Collection[int] = (),
    backoff: float = BACKOFF_S,
    client: httpx.Client | None = None,
) -> Any:
    """POST ``doc`` as JSON; returns the answer's body (JSON when it is JSON, else text; None when empty).

    Tried once unless the caller passes ``attempts`` > 1, saying that the server doing it twice is harmless.

    Raises:
        HttpError: unreachable, or a status ≥ 400 (with its parsed body).
    """
    return raise_for_status(
        request(
            "POST",
            url,
            timeout=timeout,
            doc=doc,
            headers=headers,
            attempts=attempts,
            retry_statuses=retry_statuses,
            backoff=backoff,
            client=client,
        )
    )


def send_json(
    method: str,
    url: str,
    doc: Any = None,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
) -> Any:
    """Any method with an optional JSON body; a GET is retried like :func:`get_json`, anything else tried once.

    Returns:
        The answer's body (JSON when it is JSON, else text; None when empty).

    Raises:
        HttpError: unreachable, or a status ≥ 400 (with its parsed body).
    """
    idempotent = method.upper() in ("GET", "HEAD")
    return raise_for_status(
        request(
            method,
            url,
            timeout=timeout,
            doc=doc,
            headers=headers,
            attempts=GET_ATTEMPTS if idempotent else 1,
            retry_statuses=RETRY_STATUSES if idempotent else (),
            client=client,
        )
    )
