"""A local on-call webhook: receives Slack-compatible alerts and appends them to a JSON-lines file.

`make run` starts it and points the ``ativo_oncall`` connection at it, so pages are visible without Slack.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def serve(port: int, path: Path, host: str = "127.0.0.1") -> None:
    """Serve POST / on ``host``:``port`` (loopback by default); each JSON body becomes one line of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(payload) + "\n")
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ativo alert sink")

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":  # python -m devtools.alert_sink PORT FILE [HOST]
    serve(int(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:4])
