"""Drive an HTTP endpoint on loopback with ``wrk`` (Debian's package) and read back its latency distribution.

``wrk`` is a client we did not write: it keeps ``connections`` keep-alive connections busy from ``threads`` threads
(closed loop, like :mod:`ativo_dev.loadgen`) and measures each response in C. The request bodies are handed to it
in a generated Lua script that cycles through them; its ``done`` hook prints the percentiles as one JSON line,
which is what :func:`run_wrk` returns. Only 127.0.0.1 / localhost targets are accepted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_SCRIPT = """
local bodies = {%(bodies)s}
local headers = {%(headers)s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, headers, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('ATIVO-WRK {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, '
    .. '"p999_us": %%d, "max_us": %%d, "mean_us": %%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


def available() -> bool:
    """Whether ``wrk`` is on the PATH (``ativo_dev/system-packages.sh wrk`` installs it)."""
    return shutil.which("wrk") is not None


def _lua_string(b: bytes) -> str:
    return "[==[" + b.decode() + "]==]"


def run_wrk(
    url: str,
    bodies: list[bytes],
    *,
    headers: dict[str, str] | None = None,
    threads: int = 2,
    connections: int = 8,
    duration_s: float = 15,
    timeout_s: float = 5,
) -> dict[str, Any]:
    """POST ``bodies`` (cycled) to ``url`` with wrk for ``duration_s``; rps and p50/p90/p99/p99.9 in ms.

    Raises:
        ValueError: the target is not on loopback.
        RuntimeError: wrk is missing or printed no result.
    """
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"wrk targets loopback only, not {host!r}")
    if not available():
        raise RuntimeError("wrk is not installed: run ativo_dev/system-packages.sh wrk")
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    script = _SCRIPT % {
        "bodies": ", ".join(_lua_string(b) for b in bodies),
        "headers": ", ".join(f'["{k}"] = "{v}"' for k, v in hdrs.items()),
    }
    with tempfile.TemporaryDirectory(prefix="ativo-wrk-") as tmp:
        path = Path(tmp) / "bodies.lua"
        path.write_text(script)
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{duration_s:g}s",
                "--timeout",
                f"{timeout_s:g}s",
                "-s",
                str(path),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
        )
    line = next((x for x in out.stdout.splitlines() if x.startswith("ATIVO-WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line.removeprefix("ATIVO-WRK "))
    failed = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    seconds = r["duration_us"] / 1e6
    return {
        "rps": round((r["requests"] - r["status"]) / seconds, 1),
        "p50_ms": round(r["p50_us"] / 1000, 3),
        "p99_ms": round(r["p99_us"] / 1000, 3),
        "p999_ms": round(r["p999_us"] / 1000, 3),
        "max_ms": round(r["max_us"] / 1000, 3),
        "requests": r["requests"],
        "failed": failed,
        "failures": {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]},
        "client": f"wrk -t{threads} -c{connections}",
    }
