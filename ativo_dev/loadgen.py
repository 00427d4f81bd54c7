"""A closed-loop HTTP/1.1 load generator for loopback benchmarks and fault tests.

Each of ``concurrency`` keep-alive connections sends one request, reads the whole response, and sends the next,
for ``duration_s`` seconds. Requests are pre-encoded, so the generator spends its CPU on the socket, not on JSON.
A request counts as failed on a non-2xx status, a dropped connection or a timeout; the failed ones are kept with
their reason. Only 127.0.0.1 / localhost targets are accepted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


@dataclass
class LoadResult:
    """What a load run measured."""

    requests: int
    failed: int
    duration_s: float
    latencies_ms: list[float]
    failures: Counter[str] = field(default_factory=Counter)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.failed) / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile (ms) of the successful requests."""
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]

    def summary(self) -> dict[str, Any]:
        """rps, p50, p99, counts."""
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "requests": self.requests,
            "failed": self.failed,
            "failures": dict(self.failures),
        }


def _request_bytes(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v.strip())
        elif k == "transfer-encoding" and "chunked" in v.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    return status, await reader.readexactly(length)


async def _run(
    url: str,
    bodies: list[bytes],
    headers: dict[str, str],
    concurrency: int,
    duration_s: float,
    timeout_s: float,
    keep_bodies: bool,
    warmup_s: float,
    on_tick: Callable[[float], None] | None,
    stop: threading.Event | None,
) -> LoadResult:
    u = urlparse(url)
    host, port, path = u.hostname or "127.0.0.1", u.port or 80, u.path or "/"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load tests send traffic only to loopback, not {host!r}")
    payloads = [_request_bytes(host, port, path, b, headers) for b in bodies]
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    kept: list[bytes] = []
    counts = {"requests": 0, "failed": 0}
    start = time.perf_counter()
    measure_from = start + warmup_s
    deadline = measure_from + duration_s

    def going() -> bool:
        return time.perf_counter() < deadline and not (stop is not None and stop.is_set())

    async def worker(n: int) -> None:
        reader = writer = None
        i = n
        while going():
            payload = payloads[i % len(payloads)]
            i += concurrency
            t0 = time.perf_counter()
            measured = t0 >= measure_from
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(payload)
                status, body = await asyncio.wait_for(_read_response(reader), timeout_s)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
                if measured:
                    counts["requests"] += 1
                    counts["failed"] += 1
                    failures[type(err).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
                continue
            if not measured:
                continue
            counts["requests"] += 1
            if 200 <= status < 300:
                latencies.append((time.perf_counter() - t0) * 1000)
                if keep_bodies:
                    kept.append(body)
            else:
                counts["failed"] += 1
                failures[f"HTTP {status}"] += 1
        if writer is not None:
            writer.close()

    async def ticker() -> None:
        while going():
            await asyncio.sleep(0.05)
            if on_tick is not None:
                on_tick(time.perf_counter() - measure_from)

    await asyncio.gather(*(worker(n) for n in range(concurrency)), ticker())
    measured_s = min(duration_s, max(time.perf_counter() - measure_from, 1e-9))  # shorter when stopped early
    return LoadResult(counts["requests"], counts["failed"], measured_s, latencies, failures, kept)


def run_load(
    url: str,
    bodies: list[bytes],
    *,
    headers: dict[str, str] | None = None,
    concurrency: int = 8,
    duration_s: float = 10.0,
    timeout_s: float = 10.0,
    keep_bodies: bool = False,
    warmup_s: float = 1.0,
    on_tick: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
) -> LoadResult:
    """Drive ``url`` with POSTs of ``bodies`` (round robin) and return what was measured (after ``warmup_s``).

    ``stop``, when set, ends the load before ``duration_s`` (the result's duration is then the time it ran).
    """
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(
        _run(url, bodies, headers or {}, concurrency, duration_s, timeout_s, keep_bodies, warmup_s, on_tick, stop)
    )
