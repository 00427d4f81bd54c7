"""The alert sink (ativo.ops.alert_sink): each page POSTed to it is one whole JSON line of its file."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from ativo import http
from ativo.ops.alert_sink import make_server


def test_each_page_is_one_line_of_the_file_and_bad_json_is_refused(alert_sink):
    url, path = alert_sink
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


def test_a_page_arriving_while_an_erasure_rewrites_the_file_is_kept(alert_sink):
    from ativo.store.redaction import Needles, forget_in_text_files

    url, path = alert_sink
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
