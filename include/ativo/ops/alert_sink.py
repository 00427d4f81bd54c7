"""The alert sink: a small webhook receiver that appends every on-call page it is sent to a JSON-lines file.

For a platform without an on-call system (Slack, PagerDuty, Opsgenie): point the ``ativo_oncall`` Airflow connection
at it (``{"conn_type": "http", "extra": {"webhook_url": "http://<host>:<port>/"}}``) and every page Ativo sends (a
failed task, a quarantined batch, drift, a restarted component) becomes one line of the file, the Slack-compatible
JSON body as it was posted. The local platform (`make run`) and docker-compose run it; with an on-call system, point
the connection there instead and leave the sink out.

- ``POST /`` with a JSON body of at most :data:`MAX_BODY` bytes: the body is appended to the file as one line
  (``200 ok``; UTF-8 as sent, so an erasure finds any id it quotes); a body that is not JSON is refused (``400``),
  one without a valid ``Content-Length`` too (``411``), a larger one (``413``); nothing is written then. A client
  that stops sending is dropped after :data:`TIMEOUT_S`.
- ``GET /``: ``200 ativo alert sink`` (a health check).

It has no login: it listens on 127.0.0.1 unless told otherwise, and where it must be reachable from other hosts
(compose's workers) it belongs on a private network only. The file is created with the process's umask. Each line is
appended under an exclusive lock of the file, which an erasure rewriting it takes too
(:func:`ativo.store.redaction.forget_in_text_files`): no page is lost to a redaction running at the same moment.

Run it as ``python -m ativo.ops.alert_sink PORT FILE [HOST]``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1024 * 1024  # bytes: a page is a few KiB
TIMEOUT_S = 10.0  # a client silent this long is dropped


def append_locked(path: Path, line: str) -> None:
    """Append ``line`` to ``path`` under an exclusive lock of the file as it is now (reopened if it was replaced)."""
    while True:
        fh = open(path, "a", encoding="utf-8")  # noqa: SIM115  # closed below, or kept to write
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()  # a redaction renamed a new file over it while this waited: append to that one
    with fh:
        fh.write(line)


def make_server(port: int, path: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A sink bound to ``host``:``port`` (0: a free port) that appends each JSON body POSTed to it to ``path``.

    Call ``serve_forever()`` on it to serve, ``shutdown()`` to stop; the directory of ``path`` is created now.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        timeout = TIMEOUT_S

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                return self._answer(411, b"a Content-Length is required")
            if length > MAX_BODY:
                self.close_connection = True
                return self._answer(413, f"a page is at most {MAX_BODY} bytes".encode())
            try:
                line = json.dumps(json.loads(self.rfile.read(length)), ensure_ascii=False, allow_nan=False)
            except ValueError:
                return self._answer(400, b"the body must be JSON")
            with lock:  # one line per page, whole, however many arrive at once
                append_locked(path, line + "\n")
            self._answer(200, b"ok")

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._answer(200, b"ativo alert sink")

        def log_message(self, *args: object) -> None:
            pass  # the file is the record; a line per request on stderr would only repeat it

    return ThreadingHTTPServer((host, port), Handler)


def serve(port: int, path: Path, host: str = "127.0.0.1") -> None:
    """Serve on ``host``:``port`` (loopback by default) until the process ends; each JSON body is a line of ``path``."""
    make_server(port, path, host).serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m ativo.ops.alert_sink PORT FILE [HOST]``."""
    parser = argparse.ArgumentParser(
        prog="python -m ativo.ops.alert_sink",
        description="A webhook receiver that appends each on-call page to a JSON-lines file.",
    )
    parser.add_argument("port", type=int, help="TCP port to listen on")
    parser.add_argument("file", type=Path, help="the JSON-lines file each page is appended to")
    parser.add_argument("host", nargs="?", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = parser.parse_args(argv)
    serve(args.port, args.file, args.host)


if __name__ == "__main__":
    main()
