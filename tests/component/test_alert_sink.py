"""The alert sink (ativo.ops.alert_sink): each page POSTed to it is one whole JSON line of its file."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ativo import http
from ativo.ops.alert_sink import make_server


@pytest.fixture
def sink(tmp_path):
    path = tmp_path / "alerts" / "alerts.jsonl"
    server = make_server(0, path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", path
    server.shutdown()
    server.server_close()


def test_each_page_is_one_line_of_the_file_and_bad_json_is_refused(sink):
    url, path = sink
    assert http.request("GET", url, timeout=5).status_code == 200
    pages = [{"text": f"page {i}", "blocks": [{"type": "section", "n": i}]} for i in range(40)]
    with ThreadPoolExecutor(8) as pool:  # pages arriving at once are written whole, one line each
        answers = list(pool.map(lambda p: http.send_json("POST", url, p, timeout=5), pages))
    assert len(answers) == 40
    assert httpx.post(url, content=b"{not json", timeout=5).status_code == 400  # and nothing written
    lines = path.read_text().splitlines()
    assert sorted((json.loads(line) for line in lines), key=lambda p: p["blocks"][0]["n"]) == pages


def test_it_listens_on_loopback_unless_told_otherwise(tmp_path):
    server = make_server(0, tmp_path / "a.jsonl")
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_a_hostile_client_cannot_fill_memory_hold_a_thread_or_write_escaped_ids(sink):
    import socket

    from ativo.ops.alert_sink import MAX_BODY, TIMEOUT_S

    url, path = sink
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


def test_a_page_arriving_while_an_erasure_rewrites_the_file_is_kept(sink):
    from ativo.store.redaction import Needles, forget_in_text_files

    url, path = sink
    for i in range(200):
        http.send_json("POST", url, {"text": f"page {i} about SUBJECT-0042"}, timeout=5)
    with ThreadPoolExecutor(4) as pool:
        sent = pool.map(lambda i: http.send_json("POST", url, {"text": f"late {i}"}, timeout=5), range(200))
        for _ in range(5):
            forget_in_text_files([path.parent], Needles(["SUBJECT-0042"]))
        list(sent)
    text = path.read_text()
    assert "SUBJECT-0042" not in text
    assert sum(line.startswith('{"text": "late') for line in text.splitlines()) == 200  # none lost to a rewrite
