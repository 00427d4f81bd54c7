"""A TCP proxy on loopback that can take its upstream "down": the fault tests' S3 outage.

Clients connect to the proxy's port as if it were the endpoint. :meth:`FaultProxy.outage` cuts the open connections
and resets every new one for a while (counting them in :attr:`FaultProxy.refused`, so a test knows the outage was
felt), then serves again, while the upstream (a moto S3 server, whose objects live in its memory) keeps its state:
what a client sees when a real endpoint is unreachable for 30 s.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from ativo_dev.supervisor import free_port


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``; :meth:`outage` makes it unreachable for a time."""

    def __init__(self, upstream: tuple[str, int], port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self._down = threading.Event()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.refused = 0  # connections reset during outages
        self._thread = threading.Thread(target=self._serve, daemon=True, name="faultproxy")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Start accepting connections."""
        self._listen()
        self._thread.start()
        return self

    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(128)
        s.settimeout(0.2)
        self._listener = s

    def _serve(self) -> None:
        while not self._stop.is_set():
            if self._listener is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self._down.is_set():  # reset at once, as a dead endpoint's host would
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                self.refused += 1
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
                with self._lock:
                    self._conns.discard(s)

    def outage(self, seconds: float) -> None:
        """Reset every new connection and cut the open ones for ``seconds`` (blocks), then serve again."""
        self._down.set()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        time.sleep(seconds)
        self._down.clear()

    def stop(self) -> None:
        """Stop the proxy and close every connection."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in list(self._conns):
                with contextlib.suppress(OSError):
                    s.close()
        self._thread.join(timeout=5)
