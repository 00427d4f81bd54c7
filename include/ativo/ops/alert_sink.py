"""The alert sink: a small webhook receiver that appends every on-call page it is sent to a JSON-lines file.

For a platform without an on-call system (Slack, PagerDuty, Opsgenie): point the ``ativo_oncall`` Airflow connection
at it (``{"conn_type": "http", "extra": {"webhook_url": "http://<host>:<port>/"}}``) and every page Ativo sends (a
failed task, a quarantined batch, drift, a restarted component) becomes one line of the file, the Slack-compatible
JSON body as it was posted. The local platform (`make run`) and docker-compose run it; with an on-call system, point
the connection there instead and leave the sink out.

- ``POST /`` with a JSON body: the body is appended to the file as one line (``200 ok``); a body that is not JSON
  is refused (``400``) and nothing is written.
- ``GET /``: ``200 ativo alert sink`` (a health check).

It has no login: it listens on 127.0.0.1 unless told otherwise, and where it must be reachable from other hosts
(compose's workers) it belongs on a private network only. The file is created with the process's umask.

Run it as ``python -m ativo.ops.alert_sink PORT FILE [HOST]``.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_server(port: int, path: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A sink bound to ``host``:``port`` (0: a free port) that appends each JSON body POSTed to it to ``path``.

    Call ``serve_forever()`` on it to serve, ``shutdown()`` to stop; the directory of ``path`` is created now.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()  # one line per page, whole, however many arrive at once

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            with lock, open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(payload) + "\n")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ativo alert sink")

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
