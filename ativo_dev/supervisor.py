"""Process supervision of the embedded platform behind `make run` / `make stop`.

PostgreSQL (embedded, from a wheel), Airflow's four components (API server, scheduler, dag processor, triggerer, each
its own process), MLflow, the inference API and an alert sink, on loopback ports; and a watchdog that restarts any
of them that dies and pages on-call (:mod:`ativo_dev.watchdog`).

Processes are started in their own session with a PID file and their command under ``var/run``; `down` ends exactly
those, the watchdog first.

Every server listens on 127.0.0.1 only, and the platform's state stays its owner's: the services create files 0600
and directories 0700 (:data:`PRIVATE_UMASK`), and :func:`protect_state` makes what an earlier version left readable
private (passwords, keys, the JWT secret and Fernet key in ``var/airflow/airflow.cfg``, the platform DB, landed
batches and the prediction log).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ativo import http
from ativo.airflow import POOLS_FILE
from ativo.config import PROJECT_ROOT, Settings, load_settings
from ativo.files import replace_file
from ativo.orchestrator import AirflowAPI
from ativo.waiting import WaitTimeout, wait_until
from ativo_dev.ports import embedded_ports

REPOSITORY = Path(__file__).resolve().parents[1]  # where ativo_dev (and tests/) live: not in the wheel
AIRFLOW = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
DASK = ("dask-scheduler", "dask-workers")  # `make run DASK=1`
SERVICES = ("postgres", "alert-sink", "mlflow", *DASK, "serve", *AIRFLOW, "watchdog")
# A signal that ends a service cleanly and soon: PostgreSQL's "fast" shutdown (SIGTERM waits for every client).
STOP_SIGNAL = {"postgres": signal.SIGINT}
# How long what a stopped service leaves in its process group may outlive it before it is killed.
ORPHAN_GRACE_S = 3.0
LOOPBACK = "127.0.0.1"  # where every server of the embedded platform listens
# Airflow's users (the simple auth manager's): admin, operator (role op: may file erasures) and analyst (role user)
AIRFLOW_USERS = "admin:admin,operator:op,analyst:user"
# The services' umask: what they create under var/ (keys, passwords, the platform DB, landed batches, the prediction
# log, logs that may quote them) is readable by the platform's owner only, files 0600 and directories 0700.
PRIVATE_UMASK = 0o077
# Under ATIVO_HOME, the directories that hold secrets or personal data (0700) and the files that do (0600).
PRIVATE_DIRS = (
    "airflow",
    "serve",
    "keys",
    "logs",
    "run",
    "store",
    "mlflow",
    "data-registry",
    "dvc-remote",
    "cache",
    "dask",
    "locks",
    "alerts",
)
PRIVATE_FILES = (
    "ativo.env",  # the settings the launcher hands the library (the Airflow password)
    "ativo.db",
    "ativo.db-wal",
    "ativo.db-shm",
    "airflow/airflow.cfg",
    "airflow/airflow.db",
    "airflow/passwords.json",
    "serve/api_keys.json",
    "serve/demo_key",
    "serve/operator_key",
    "serve/subject_pepper",
    "keys/promotion.key",
    "mlflow/mlflow.db",
    "pg/password",
)


def embedded_db() -> str:
    """Where the embedded platform keeps Airflow's metadata DB (``ATIVO_EMBEDDED_DB``).

    ``postgres`` (the default: the embedded server) or ``sqlite``: SQLite takes one writer at a time, and Airflow's
    scheduler died of it under concurrent backfills, so SQLite is for a single-user test platform.
    """
    value = os.environ.get("ATIVO_EMBEDDED_DB", "postgres").strip().lower() or "postgres"
    if value not in ("postgres", "sqlite"):
        raise ValueError(f"ATIVO_EMBEDDED_DB must be 'postgres' or 'sqlite', got {value!r}")
    return value


def port(service: str, settings: Settings | None = None) -> int:
    """Loopback port of an embedded service: airflow, mlflow, serve, alert, pg or dask (``ATIVO_<SERVICE>_PORT``).

    Airflow's is the library's setting (``settings.ports.airflow``; the current environment's settings when none are
    given); the others are the launcher's own (:func:`ativo_dev.ports.embedded_ports`, from this environment).
    """
    ports = embedded_ports().model_dump()
    if service not in ports:
        raise KeyError(f"no embedded service {service!r} (one of {', '.join(ports)})")
    if service == "airflow":
        return (settings or load_settings()).ports.airflow
    return int(ports[service])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def url(service: str, settings: Settings | None = None) -> str:
    """Loopback URL of an embedded service."""
    return f"http://127.0.0.1:{port(service, settings)}"


def say(msg: str) -> None:
    """Progress line, flushed at once."""
    print(f"==> {msg}", flush=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def run_dir(settings: Settings) -> Path:
    """Where PID files live."""
    return settings.home / "run"


def airflow_base_env(airflow_home: Path) -> dict[str, str]:
    """What every Airflow process of Ativo needs, the embedded platform's and the tests' alike.

    Its home, this repository's DAGs and plugins, no examples, and no library calling home.
    """
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def platform_env(settings: Settings) -> dict[str, str]:
    """Environment shared by every process of the embedded platform (Airflow reads the ATIVO_* settings too)."""
    from ativo_dev import pg

    home = settings.airflow_home
    env = dict(os.environ)
    if embedded_db() == "postgres" and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = pg.url(settings, "airflow")

    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            **airflow_base_env(home),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "6",
            # Tasks fork from a forkserver that has already imported the heavy libraries (ativo.airflow.warm).
            "AIRFLOW__CORE__MP_START_METHOD": "forkserver",
            "AIRFLOW__CORE__MP_FORKSERVER_PRELOAD": "ativo.airflow.preload",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": AIRFLOW_USERS,
            "AIRFLOW__CORE__AUTH_MANAGER": "ativo.airflow.auth.AtivoAuthManager",  # erasure needs the op role
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # An idle scheduler loop sleeps this long; a freed pool slot waits for it (1 s by default).
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
            "AIRFLOW__API__HOST": LOOPBACK,  # Airflow's API server listens on every interface by default
            "AIRFLOW__API__PORT": str(port("airflow", settings)),
            "AIRFLOW__API__BASE_URL": url("airflow", settings),
            "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "7200",  # long training tasks (airflow#67939)
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_ATIVO_ONCALL": json.dumps(
                {"conn_type": "http", "extra": {"webhook_url": f"{url('alert', settings)}/"}}
            ),
            "ATIVO_HOME": str(settings.home),
            "ATIVO_STORE_URI": settings.store_uri,
            "ATIVO_DB_URL": settings.db_url,
            "ATIVO_MLFLOW_TRACKING_URI": url("mlflow", settings),
            "ATIVO_REGISTRY_PATH": str(settings.registry_path),
            "ATIVO_DVC_REMOTE": settings.dvc_remote,
            "ATIVO_SPECS_DIR": str(settings.specs_dir),
            "ATIVO_REFERENCE_DIR": str(settings.reference_dir),
            "ATIVO_SERVE_URLS": url("serve", settings),
            **{f"ATIVO_{name.upper()}_PORT": str(port(name, settings)) for name in embedded_ports().model_dump()},
            # Tasks share the cores (two trial workers, two gate tasks): an idle OpenMP thread of XGBoost must sleep,
            # not spin, or it burns the core the other task needs. Read once, when the forkserver preloads XGBoost.
            "OMP_WAIT_POLICY": "PASSIVE",
            # The server's job runner (eight huey consumers, ~2 GB) serves GenAI features Ativo does not use.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_TRACKING_URI": url("mlflow", settings),
        }
    )
    return env


def pid_of(settings: Settings, name: str) -> int | None:
    """The PID of a running service of the platform (None when it is not running; a stale PID file is removed)."""
    path = run_dir(settings) / f"{name}.pid"
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
    except (ValueError, OSError):  # gone, or being written this instant
        return None
    if _gone(pid):
        _forget_pid(path, pid)
        return None
    return pid


def _gone(pid: int) -> bool:
    """Whether the process ``pid`` has ended: no such process, or a zombie its parent has not reaped yet."""
    _reap(pid)  # a dead child of ours (the watchdog restarted it) is a zombie until reaped, and os.kill finds it
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return True
    return _zombie(pid)  # dead, a child of another process (the launcher, a test) that has not reaped it yet


def _forget_pid_line(lock: Path, pid: int) -> None:
    """Remove a lock file whose first line is ``pid``, unless a new server wrote its own there meanwhile."""
    try:
        if int(lock.read_text().splitlines()[0]) == pid:
            lock.unlink(missing_ok=True)
    except (OSError, ValueError, IndexError):
        pass


def _forget_pid(path: Path, pid: int) -> None:
    """Remove a PID file, unless another process has meanwhile written a new PID there (the watchdog's restart)."""
    try:
        if int(path.read_text().strip()) == pid:
            path.unlink(missing_ok=True)
    except (ValueError, OSError):
        pass


def _release_dead_postmaster_lock(settings: Settings) -> None:
    """Remove the lock files of a PostgreSQL server that has ended but is a zombie still.

    The lock files are ``postmaster.pid`` and the socket's ``.s.PGSQL.<port>.lock``.
    PostgreSQL checks a lock file's PID with ``kill(pid, 0)``, which a zombie passes: a server killed while its
    parent (a test, the launcher) has not reaped it yet would make every restart refuse to start (its lock file
    "already exists"). A lock file of a live process, or of one that is gone (PostgreSQL takes those over), is kept.
    """
    from ativo_dev import pg

    for lock in [pg.data_dir(settings) / "postmaster.pid", *pg.socket_dir(settings).glob(".s.PGSQL.*.lock")]:
        try:
            pid = int(lock.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            continue
        if _zombie(pid):
            _forget_pid_line(lock, pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _start(
    settings: Settings,
    name: str,
    cmd: list[str],
    env: dict[str, str],
    *,
    user: str | None = None,
    extra_env: dict[str, str] | None = None,
    quiet: bool = False,
) -> int:
    """Start a service in its own session; its PID and how to start it again (for the watchdog) go to var/run."""
    existing = pid_of(settings, name)
    if existing:
        if not quiet:
            say(f"{name} already running (pid {existing})")
        return existing
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env={**env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            umask=PRIVATE_UMASK,
        )
    replace_file(run_dir(settings) / f"{name}.pid", str(proc.pid))  # whole: the watchdog and a test read it
    replace_file(
        run_dir(settings) / f"{name}.cmd.json", json.dumps({"cmd": cmd, "user": user, "extra_env": extra_env or {}})
    )
    if not quiet:
        say(f"{name} started (pid {proc.pid}, log {logs / f'{name}.log'})")
    return proc.pid


def restart(settings: Settings, name: str) -> int | None:
    """Start a service again the way it was last started (None: it never was, or `make stop` ended it)."""
    path = run_dir(settings) / f"{name}.cmd.json"
    if not path.exists():
        return None
    how = json.loads(path.read_text())
    if name == "postgres":
        _release_dead_postmaster_lock(settings)
    return _start(
        settings,
        name,
        how["cmd"],
        platform_env(settings),
        user=how.get("user"),
        extra_env=how.get("extra_env"),
        quiet=True,
    )


def airflow_running(settings: Settings) -> bool:
    """Whether any of Airflow's components runs (then its DB is in use: no migration, no CLI backfill)."""
    return any(pid_of(settings, name) for name in AIRFLOW)


def start_postgres(settings: Settings) -> None:
    """Create the embedded cluster on first use, start it and create the platform's databases."""
    from ativo_dev import pg

    if pg.initdb(settings):
        say(f"created the embedded PostgreSQL cluster in {pg.data_dir(settings)}")
    if pid_of(settings, "postgres") is None:
        _release_dead_postmaster_lock(settings)
    pid = _start(settings, "postgres", pg.server_command(settings), platform_env(settings), user=pg.run_as())

    def up() -> bool:
        if _group_gone(pid):
            raise RuntimeError(f"PostgreSQL exited during start-up: {_log_tail(settings, 'postgres')}")
        return pg.ready(settings)

    wait_until(up, 60, 0.2, f"PostgreSQL to accept connections on 127.0.0.1:{embedded_ports().pg}")
    made = pg.create_databases(settings)
    if made:
        say(
            f"created databases {', '.join(made)} (postgresql://{pg.SUPERUSER}@127.0.0.1:{embedded_ports().pg}, "
            f"password in {settings.home / 'pg' / 'password'})"
        )


def _log_tail(settings: Settings, name: str, lines: int = 6) -> str:
    path = settings.home / "logs" / f"{name}.log"
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        tail = []
    return f"see {path}" + (":\n" + "\n".join(tail) if tail else "")


def _wait_http(url: str, what: str, timeout: float, pid_check: tuple[Settings, str] | None = None) -> None:
    """Wait until ``url`` answers below HTTP 500; raises RuntimeError at once if the process behind it exits.

    Raises:
        WaitTimeout: it did not answer within ``timeout`` (the message names the last failure).
    """

    def still_running() -> None:
        if pid_check and pid_of(*pid_check) is None:
            raise RuntimeError(
                f"{what} exited during start-up; see {pid_check[0].home / 'logs' / (pid_check[1] + '.log')}"
            )

    def answered() -> bool:
        try:
            status = http.request("GET", url, timeout=3).status_code  # tried once: this loop is the retry
        except http.HttpError:
            still_running()
            raise
        if status < 400:  # another program answering 404 on the port is not the service
            return True
        still_running()
        return False

    # every half second: a refused connection costs nothing, and each second of lag is a second of start-up
    wait_until(answered, timeout, 0.5, f"{what} to answer on {url}", retry_on=(http.HttpError,))


def airflow_cli(settings: Settings, *args: str) -> str:
    """Run an `airflow` CLI command against the embedded platform; raises with its output on failure."""
    proc = subprocess.run(
        [_bin("airflow"), *args], env=platform_env(settings), capture_output=True, text=True, umask=PRIVATE_UMASK
    )
    if proc.returncode != 0:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    return proc.stdout


def start_mlflow(
    settings: Settings, wait: bool = True, backend: str | None = None, template: Path | None = None
) -> str:
    """Start the MLflow tracking server (SQLite backend, artifacts in the object store); returns its URL.

    Its backend stays the SQLite file the CLI reads by default (``ativo deployments`` works without the server): the
    server is its one writer. ``backend`` puts it elsewhere (the production shape's PostgreSQL). ``template`` is an
    MLflow DB (SQLite) with MLflow's schema and no experiment, copied in as a new SQLite file instead of having the
    server create and migrate one (a throw-away platform's).
    """
    mlflow_dir = settings.home / "mlflow"
    mlflow_dir.mkdir(parents=True, exist_ok=True)
    sqlite_file = mlflow_dir / "mlflow.db"
    if template is not None and backend is None and not sqlite_file.exists():
        with private_files():
            shutil.copyfile(template, sqlite_file)
    backend = backend or f"sqlite:///{sqlite_file}"
    _start(
        settings,
        "mlflow",
        [
            _bin("mlflow"),
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(port("mlflow", settings)),
            "--workers",
            "1",
            "--backend-store-uri",
            backend,
            "--default-artifact-root",
            f"{settings.store_uri}/mlflow/default",
        ],
        platform_env(settings),
    )
    if wait:
        _wait_http(f"{url('mlflow', settings)}/health", "MLflow", 180, (settings, "mlflow"))
    return url("mlflow", settings)


def admin_password(settings: Settings) -> str:
    """The Airflow admin password of the local platform, handed to the library as a setting.

    Generated once, with the other users' (:data:`AIRFLOW_USERS`), into ``var/airflow/passwords.json`` (the simple
    auth manager's file, 0600), and written to the home's settings file as ``ATIVO_AIRFLOW_PASSWORD``
    (``var/ativo.env``, 0600), where every process of the library reads it (:func:`ativo.airflow.passwords.sync`).
    """
    from ativo.airflow.passwords import sync, user_names

    env = {**os.environ, "ATIVO_HOME": str(settings.home), "ATIVO_AIRFLOW_USERNAME": "admin"}
    return sync(settings.airflow_home / "passwords.json", user_names(AIRFLOW_USERS), env)


def demo_key(settings: Settings) -> str:
    """The API key `make run` prints (role predict and feedback), created once and kept in var/serve/demo_key."""
    from ativo.serve.keys import create_key

    path = settings.home / "serve" / "demo_key"
    if path.exists():
        return path.read_text().strip()
    key = create_key(settings.home / "serve" / "api_keys.json", f"demo-{secrets.token_hex(3)}", ("predict", "feedback"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def operator_key(settings: Settings) -> str:
    """The op key the platform's own tooling presents to state-changing `ativo` commands (tests, demos, scripts).

    Created once, as the owner of the platform home, in the platform's key file (name ``ativo-dev``), and kept in
    ``var/serve/operator_key`` (0600); pass it as ``ATIVO_OP_KEY`` to the one command that needs it, never in
    :func:`platform_env` (every process would hold it).
    """
    from ativo.serve.keys import create_key, platform_key_file

    path = settings.home / "serve" / "operator_key"
    if path.exists():
        return path.read_text().strip()
    key = create_key(platform_key_file(settings.home), "ativo-dev", ("op",))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def start_serve(settings: Settings, spec_names: list[str], all_specs: bool = False) -> None:
    """Start one inference API process for the specs on its loopback port (it follows the registry aliases).

    With ``all_specs`` it serves every valid spec of the specs folder and follows the folder: a spec added while the
    platform runs is served too, without a restart.
    """
    demo_key(settings)
    specs = ["--all-specs"] if all_specs else [a for n in spec_names for a in ("--spec", n)]
    _start(
        settings,
        "serve",
        [_bin("ativo"), "serve", *specs, "--host", LOOPBACK, "--port", str(port("serve", settings))],
        platform_env(settings),
    )


def start_services(
    settings: Settings,
    before_airflow: Any = None,
    spec_names: list[str] | None = None,
    serve: bool = True,
    pools: Path | None = None,
    throwaway: bool = False,
    watchdog: bool = True,
    airflow_env: dict[str, str] | None = None,
    mlflow_backend: str | None = None,
    dask: bool = False,
    all_specs: bool = False,
    airflow_db: Path | None = None,
    mlflow_db: Path | None = None,
    components: tuple[str, ...] = AIRFLOW,
) -> AirflowAPI:
    """Start the platform's processes and wait for them.

    PostgreSQL first, then the platform DB's migrations (:func:`upgrade_platform_db`); then Airflow's DB is migrated
    and the pools created, and the alert sink, MLflow, the inference API, Airflow's four components and the watchdog
    start.

    Args:
        settings: where things are.
        before_airflow: called after the migration and before Airflow's processes start (the lifecycle lands its
            batches and queues its backfills then).
        spec_names: the models the inference API serves (default: adult_income).
        all_specs: the inference API serves every valid spec of the specs folder instead, following the folder.
        serve: start the inference API (benchmarks and tests of training leave it out: 2 cores are few).
        pools: the pools file to import (the package's, :data:`ativo.airflow.POOLS_FILE`, by default).
        throwaway: a platform for one test or benchmark: new DAGs start unpaused (the embedded default pauses
            them), and its DAG files, which do not change while it runs, are parsed by one process and not again
            for ten minutes (2 cores are few).
        watchdog: start the watchdog, which restarts a dead component and pages on-call.
        airflow_env: settings for Airflow's components on top of the embedded ones (the production shape's
            CeleryExecutor; its workers are started by the caller).
        mlflow_backend: MLflow's backend store instead of its SQLite file.
        dask: start a Dask scheduler and two workers on loopback and point Airflow's tasks at it
            (``ATIVO_DASK_SCHEDULER``): specs with ``compute.engine: dask`` train there.
        airflow_db: a migrated Airflow metadata DB (SQLite) to copy in instead of migrating a new one (a throw-away
            platform's template: its tests migrate one per run); used only where Airflow's DB is its SQLite file and
            none exists yet.
        mlflow_db: an MLflow DB (SQLite) with MLflow's schema and no experiment, to copy in instead of having the
            server create one (see :func:`start_mlflow`).
        components: the Airflow components to start (all four by default; a throw-away platform whose tasks never
            defer may leave out the triggerer).
    """
    unknown = set(components) - set(AIRFLOW)
    if unknown:
        raise ValueError(f"no Airflow component {', '.join(sorted(unknown))} (one of {', '.join(AIRFLOW)})")
    extra = (
        {
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
        }
        if throwaway
        else {}
    )
    extra.update(airflow_env or {})
    protect_state(settings)
    if embedded_db() == "postgres":
        start_postgres(settings)
    upgrade_platform_db(settings)
    env = platform_env(settings)
    password = admin_password(settings)
    _start(
        settings,
        "alert-sink",
        [
            sys.executable,
            "-m",
            "ativo.ops.alert_sink",
            str(port("alert", settings)),
            str(settings.home / "logs" / "alerts.jsonl"),
            LOOPBACK,
        ],
        env,
    )
    start_mlflow(settings, wait=False, backend=mlflow_backend, template=mlflow_db)
    if dask:
        extra["ATIVO_DASK_SCHEDULER"] = start_dask(settings, env)
    if serve:
        start_serve(settings, spec_names or ["adult_income"], all_specs=all_specs)
    if not airflow_running(settings):
        sqlite_file = settings.airflow_home / "airflow.db"
        if airflow_db is not None and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env and not sqlite_file.exists():
            say(f"copying the migrated Airflow metadata DB {airflow_db} and creating pools")
            with private_files():
                shutil.copyfile(airflow_db, sqlite_file)
        else:
            say(
                f"migrating the Airflow metadata DB ({'PostgreSQL' if embedded_db() == 'postgres' else 'SQLite'}) "
                "and creating pools"
            )
            airflow_cli(settings, "db", "migrate")
        airflow_cli(settings, "pools", "import", str(pools or POOLS_FILE))
        if before_airflow is not None:
            with private_files():  # it lands batches and writes the platform DB in this process
                before_airflow()
    for name in AIRFLOW:
        if name in components:
            _start(settings, name, airflow_command(name), env, extra_env=extra)
    if watchdog:
        # the launcher is not installed: its package is found from the repository, whatever the current directory
        path = os.pathsep.join(p for p in (str(REPOSITORY), env.get("PYTHONPATH", "")) if p)
        _start(settings, "watchdog", [sys.executable, "-m", "ativo_dev", "watch"], env, extra_env={"PYTHONPATH": path})
    say("waiting for MLflow and Airflow to answer (about a minute on 2 cores)")
    _wait_http(f"{url('mlflow', settings)}/health", "MLflow", 180, (settings, "mlflow"))
    _wait_http(
        f"{url('airflow', settings)}/api/v2/monitor/health", "Airflow api-server", 300, (settings, "airflow-api-server")
    )
    if serve:
        _wait_http(f"{url('serve', settings)}/metrics", "the inference API", 120, (settings, "serve"))
    return AirflowAPI(url("airflow", settings), password)


def airflow_command(name: str) -> list[str]:
    """How one of Airflow's components starts (``airflow-scheduler`` → ``airflow scheduler``).

    The scheduler and the triggerer serve no logs: Airflow binds their log servers to every interface, with no
    setting to change it, and the API server reads the task logs from ``var/airflow/logs`` itself (a running task's
    log view notes that no log server answered).
    """
    cmd = [_bin("airflow"), name.removeprefix("airflow-")]
    if name in ("airflow-scheduler", "airflow-triggerer"):
        cmd.append("--skip-serve-logs")
    return cmd


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Within it, this process creates files 0600 and directories 0700 (:data:`PRIVATE_UMASK`)."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def protect_state(settings: Settings) -> None:
    """Keep the platform's state its owner's, whatever an earlier version left readable by others.

    :data:`PRIVATE_DIRS` become 0700 (``airflow``, ``serve`` and ``logs`` are made now), :data:`PRIVATE_FILES` 0600,
    and ``pg`` one the server's user may only pass through (:func:`ativo_dev.pg.state_mode`). The services create
    their files private (:data:`PRIVATE_UMASK`). Links, and what another user owns, are left alone.
    """
    from ativo_dev import pg

    home = settings.home
    for name in ("airflow", "serve", "logs"):
        (home / name).mkdir(parents=True, exist_ok=True)
    modes = {**dict.fromkeys(PRIVATE_DIRS, 0o700), **dict.fromkeys(PRIVATE_FILES, 0o600), "pg": pg.state_mode()}
    for name, mode in modes.items():
        path = home / name
        if path.exists() and not path.is_symlink() and path.stat().st_uid == os.geteuid():
            path.chmod(mode)


def upgrade_platform_db(settings: Settings) -> None:
    """`ativo db upgrade` before anything opens the platform DB: a schema it cannot upgrade stops `make run` here."""
    from ativo.store.db import init_schema, new_engine

    engine = new_engine(settings.db_url)
    try:
        with private_files():  # a new SQLite file is the owner's alone, as the rest of the home
            done = init_schema(engine)
    finally:
        engine.dispose()
    if done.before != done.after:
        adopted = " (adopted the tables of the release before migrations)" if done.adopted else ""
        say(f"platform DB: schema revision {done.before or 'none'} → {done.after}{adopted}")


def start_dask(settings: Settings, env: dict[str, str], workers: int = 2, memory_limit: str = "4GiB") -> str:
    """A Dask scheduler on loopback and ``workers`` single-threaded workers under one nanny process; its address."""
    address = f"tcp://{LOOPBACK}:{port('dask', settings)}"
    # --no-dashboard keeps Dask's HTTP server (health, metrics), on every interface unless given an address
    dashboard = ["--no-dashboard", "--dashboard-address", f"{LOOPBACK}:0"]
    _start(
        settings,
        "dask-scheduler",
        [_bin("dask"), "scheduler", "--host", LOOPBACK, "--port", str(port("dask", settings)), *dashboard],
        env,
    )
    _start(
        settings,
        "dask-workers",
        [
            _bin("dask"),
            "worker",
            address,
            "--host",
            LOOPBACK,
            "--nworkers",
            str(workers),
            "--nthreads",
            "1",
            "--memory-limit",
            memory_limit,
            *dashboard,
            "--local-directory",
            str(settings.home / "dask"),
        ],
        env,
    )

    def answers() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port("dask", settings)), 1).close()
        except OSError:
            return False
        return True

    wait_until(answers, 120, 0.5, f"the Dask scheduler at {address}")
    say(f"Dask scheduler at {address}: specs with compute.engine dask train on its {workers} workers")
    return address


def _reap(pid: int) -> None:
    """Collect the exit status of ``pid`` if this process started it (a zombie still counts as a live group)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by an earlier `make run`): init reaps it


def _group_gone(pid: int) -> bool:
    """Whether the process group of ``pid`` has ended (reaping its leader first, if it is our child)."""
    _reap(pid)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _leader_gone(pid: int) -> bool:
    """Whether the process ``pid`` itself has ended (reaping it first, if it is our child)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _zombie(pid)


def stop_services(settings: Settings) -> list[str]:
    """Stop every process this launcher started (by PID file, whole process group); returns their names.

    The watchdog goes first (it would restart the others), PostgreSQL last (the others write to it until they end).
    Each service gets 30 s to end; what its group still holds :data:`ORPHAN_GRACE_S` after the service itself ended
    (Airflow's scheduler leaves idle executor workers behind, which nothing would stop) is killed.
    """
    stopped = []
    for name in reversed(SERVICES):
        if name != "watchdog":
            (run_dir(settings) / f"{name}.cmd.json").unlink(missing_ok=True)  # not restarted while it stops
        pid = pid_of(settings, name)
        if pid is None:
            continue
        try:
            os.killpg(pid, STOP_SIGNAL.get(name, signal.SIGTERM))
        except ProcessLookupError:
            pass
        try:
            wait_until(functools.partial(_leader_gone, pid), 30, 0.2, f"{name} (pid {pid}) to exit")
            wait_until(functools.partial(_group_gone, pid), ORPHAN_GRACE_S, 0.2, f"{name}'s process group to exit")
        except WaitTimeout:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)
        (run_dir(settings) / f"{name}.pid").unlink(missing_ok=True)
        (run_dir(settings) / f"{name}.cmd.json").unlink(missing_ok=True)
        stopped.append(name)
    return stopped


def status(settings: Settings) -> dict[str, int | None]:
    """PID of each service, None when it is not running."""
    return {name: pid_of(settings, name) for name in SERVICES}


def airflow_health(settings: Settings) -> dict[str, str]:
    """Airflow's own view of its components (``/api/v2/monitor/health``); empty when its API does not answer."""
    try:
        doc = http.get_json(
            f"{url('airflow', settings)}/api/v2/monitor/health", timeout=3, attempts=1, retry_statuses=()
        )
    except (http.HttpError, ValueError):
        return {}
    return {k: str((v or {}).get("status")) for k, v in doc.items() if isinstance(v, dict)}


def clear_state(settings: Settings) -> None:
    """Remove runtime state (used by `python -m ativo_dev up --fresh`)."""
    for name in (
        "store",
        "data-registry",
        "dvc-remote",
        "mlflow",
        "airflow",
        "run",
        "ativo.db",
        ".data-registry.lock",
        "pg",
    ):
        path = settings.home / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
