"""The alert sink has no login by design: what anyone who can reach it may do is bounded.

A body too large, a missing or lying ``Content-Length``, a client that stops sending, or a number JSON has no
spelling for is refused without filling memory, holding a thread or writing anything; an id a page quotes is written
as sent, so an erasure's byte scan finds it.
"""

from __future__ import annotations

import httpx

from ativo import http


def test_a_hostile_client_cannot_fill_memory_hold_a_thread_or_write_escaped_ids(alert_sink):
    import socket

    from ativo.ops.alert_sink import MAX_BODY, TIMEOUT_S

    url, path = alert_sink
    port = int(url.rsplit(":", 1)[1].strip("/"))
    huge = httpx.post(url, content=b"[" + b"1," * MAX_BODY + b"1]", timeout=10)
    assert huge.status_code == 413
    for length in ("-1", "many", None):  # no, or a bad, Content-Length: refused, not read until the client closes
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            head = "POST / HTTP/1.1\r\nHost: x\r\n" + (f"Content-Length: {length}\r\n" if length else "") + "\r\n"
            s.sendall(head.encode() + b'{"text": "x"}')
            assert s.recv(200).split(b" ")[1] == b"411"
    assert httpx.post(url, content=b'{"x": NaN}', timeout=5).status_code == 400  # not JSON others can read
    assert TIMEOUT_S <= 30  # a client that stops sending is dropped (the server's socket timeout)
    page = {"text": "erasure of subject Zoë-Łukasz failed"}  # quoted as sent: the erasure's byte scan finds it
    assert http.send_json("POST", url, page, timeout=5) is not None
    assert "Zoë-Łukasz" in path.read_text(encoding="utf-8") and len(path.read_text().splitlines()) == 1
