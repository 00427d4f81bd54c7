"""`ativo serve` processes for tests, forked from a parent that has already imported what a server imports.

A server started with ``python -m ativo.cli serve`` spends most of its start importing MLflow, XGBoost and the app
(about 6 s of CPU each, on 2 busy cores), and the tests start dozens. One parent per test process (started on first
use) imports them once; for each server it forks a child that takes the server's environment, working directory,
output file and arguments and runs :func:`ativo.cli.main`, the code ``python -m ativo.cli serve`` runs. Each server is
its own process, stopped by a signal like any other. The parent runs no thread, event loop or OpenMP region before it
forks, so a child starts as clean as a new interpreter, bar the imports. The cold path (the ``ativo`` command exec'd
by the launcher) stays tested by the tests that start the embedded platform.

Run as a script, this module is the parent: it reads one JSON request a line on stdin, answers the child's PID a line
on stdout, and writes each child's exit status (as :attr:`subprocess.Popen.returncode` has it) to a file named by
the PID in the directory given as its argument (removed when a new child gets that PID). It exits when stdin closes.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# What `ativo serve` imports by the time it serves (its CLI, the app, MLflow's client and artifact download, XGBoost).
PRELOAD = (
    "ativo.cli",
    "ativo.api.app",
    "ativo.serve.live",
    "ativo.model.artifact",
    "mlflow",
    "mlflow.artifacts",
    "mlflow.tracking",
    "xgboost",
    "sqlalchemy",
    "uvicorn",
    "uvloop",
    "httptools",
)


class ForkedServer:
    """A server process forked by the parent: the part of :class:`subprocess.Popen` the harness uses."""

    def __init__(self, pid: int, status: Path, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._status = status

    def poll(self) -> int | None:
        """Its exit status once it has exited (negative: the signal that ended it), else None."""
        if self.returncode is None and self._status.exists():
            self.returncode = int(self._status.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to exit; raises :class:`subprocess.TimeoutExpired` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        """Send it ``sig`` unless it has exited."""
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class _Parent:
    """The test process's end of the parent: one request at a time."""

    def __init__(self) -> None:
        self.status_dir = Path(tempfile.mkdtemp(prefix="ativo-serve-fork-"))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.status_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.status_dir / "parent.log", "ab"),  # noqa: SIM115  # the child process holds it
            env={**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")},
        )
        self.lock = threading.Lock()

    def spawn(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> ForkedServer:
        request = {"argv": argv, "env": env, "log": str(log), "cwd": str(cwd)}
        with self.lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            said = (self.status_dir / "parent.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the serve parent exited with {self.proc.wait()}: {said}")
        pid = int(json.loads(line)["pid"])
        return ForkedServer(pid, self.status_dir / str(pid), ["ativo", *argv])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_parent: _Parent | None = None
_parent_lock = threading.Lock()


def spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> ForkedServer:
    """Start ``ativo <argv>`` (a ``serve`` command) in a forked child with ``env``, its output appended to ``log``.

    Args:
        argv: the command's arguments, without the program (``["serve", "--spec", "adult_income", …]``).
        env: its whole environment.
        log: where its stdout and stderr go (appended).
        cwd: its working directory (this process's by default).
    """
    global _parent
    with _parent_lock:
        if _parent is None or _parent.proc.poll() is not None:
            _parent = _Parent()
            atexit.register(_parent.close)
        parent = _parent
    return parent.spawn(argv, env, log, cwd or Path.cwd())


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the server the request describes; never returns."""
    code = 1
    try:
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from ativo import cli

        sys.argv = [cli.__file__, *request["argv"]]
        code = cli.main(request["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(status_dir: Path) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        partial = status_dir / f".{pid}"
        partial.write_text(str(os.waitstatus_to_exitcode(status)))
        partial.rename(status_dir / str(pid))


def _serve_requests(status_dir: Path) -> None:
    """The parent: preload, then fork a child per request until stdin closes."""
    import importlib

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `ativo serve` sets it before XGBoost loads OpenMP
    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() != 1:  # a fork copies only the forking thread: no other may hold a lock
        raise RuntimeError(f"preloading started threads: {threading.enumerate()}")
    pending = b""
    while True:
        readable = select.select([0], [], [], 0.1)[0]
        _reap(status_dir)
        if not readable:
            continue
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request)
            # An earlier child may have had this PID: its status is not this one's (the loop reaps this one later).
            (status_dir / str(pid)).unlink(missing_ok=True)
            os.write(1, json.dumps({"pid": pid}).encode() + b"\n")


if __name__ == "__main__":
    del sys.path[0]  # this file's directory: its modules are not top-level ones
    _serve_requests(Path(sys.argv[1]))
