"""Shared fixtures. Airflow and Ativo are pointed at a throw-away home *before* anything imports Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="ativo-tests-"))

from ativo_dev.supervisor import airflow_base_env  # noqa: E402  # imports no Airflow

# Tests run two at a time on few cores (pytest-xdist): an idle OpenMP thread (XGBoost, scikit-learn) must sleep,
# not spin, or each worker's waiting threads burn the core the other worker needs (measured: the reference gate test
# took 162 s next to another worker, 21 s alone). Set before anything loads the OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.update(
    {
        **airflow_base_env(_SESSION_HOME / "airflow"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "ATIVO_HOME": str(_SESSION_HOME / "ativo"),
        "ATIVO_SPECS_DIR": str(ROOT / "include" / "specs"),
        "ATIVO_REFERENCE_DIR": os.environ.get("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference")),
        "ATIVO_MLFLOW_TRACKING_URI": f"sqlite:///{_SESSION_HOME / 'mlflow.db'}",
    }
)
for _key in ("ATIVO_STORE_URI", "ATIVO_DB_URL", "ATIVO_REGISTRY_PATH", "ATIVO_DVC_REMOTE", "ATIVO_S3_ENDPOINT_URL"):
    os.environ.pop(_key, None)
# A shell that ran `eval "$(make -s airflow-env)"` names the live platform's Airflow DB: no test, and no template
# build, may migrate or write it. Airflow then uses the SQLite file in the session's AIRFLOW_HOME.
for _key in [
    k for k in os.environ if k.startswith("AIRFLOW__DATABASE__") or k.startswith("AIRFLOW__CORE__SQL_ALCHEMY")
]:
    os.environ.pop(_key)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Every shipped spec's reference data (fetched by `make data`; fetched here if missing)."""
    from ativo.data.reference import fetch_for_specs
    from ativo.spec import load_specs

    dest = Path(os.environ["ATIVO_REFERENCE_DIR"])
    fetch_for_specs(load_specs(ROOT / "include" / "specs")[0], dest)
    return dest


@pytest.fixture
def ativo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_mlflow_db) -> Path:
    """A fresh Ativo home (object store, platform DB, data registry, MLflow) for one test."""
    home = tmp_path / "ativo"
    monkeypatch.setenv("ATIVO_HOME", str(home))
    monkeypatch.setenv("ATIVO_MLFLOW_TRACKING_URI", new_mlflow_db(tmp_path / "mlflow.db"))
    return home


@pytest.fixture(scope="session")
def mlflow_db_template() -> Path:
    """An MLflow tracking DB (SQLite) with MLflow's schema and no experiment in it, made once per MLflow version.

    Creating one runs MLflow's Alembic migrations, about 4 s a test on 2 busy cores. A copy is what a new file
    becomes on first use: MLflow finds its tables and adds its Default experiment (under the artifact root of the
    process that opens it), as it does in a new file after the migrations.
    """
    import sqlite3

    def create(out: Path) -> None:
        db = out / "mlflow.db"
        code = "import sys\nfrom mlflow.tracking import MlflowClient\nMlflowClient(sys.argv[1]).search_experiments()"
        proc = subprocess.run([sys.executable, "-c", code, f"sqlite:///{db}"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("DELETE FROM experiments")  # the Default one: each copy's opener adds its own
        conn.close()

    return built_per_version("mlflow-db", "mlflow", create, "mlflow.db") / "mlflow.db"


@pytest.fixture
def new_mlflow_db(mlflow_db_template: Path):
    """``new_mlflow_db(path)`` puts a new, empty MLflow tracking DB at ``path``; returns its tracking URI."""
    import shutil

    def create(path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mlflow_db_template, path)
        return f"sqlite:///{path}"

    return create


@pytest.fixture
def settings(ativo_home: Path):
    from ativo.config import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def spec():
    from ativo.spec import load_spec

    return load_spec(ROOT / "include" / "specs" / "adult_income.yaml")


@pytest.fixture(scope="session")
def adult_split(spec, reference_dir):
    """The reference data as features, split by the spec's seed: built once per test session."""
    from ativo.data.features import to_features
    from ativo.data.landing import reference_records
    from ativo.data.split import split_frame

    raw = reference_records(spec, reference_dir)
    raw[spec.data_schema.event_time] = "2026-01-01"
    return split_frame(to_features(raw, spec), spec)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """A directory ``build(path)`` fills once per test run, shared by every pytest-xdist worker of the run."""

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's, not an earlier run's
    return _build_whole(root / f"built-{name}", build)


def _build_whole(target: Path, build, check=None) -> Path:
    """``target``, built once under a lock shared by every process: ``build`` fills a ``.partial`` directory, which
    ``check`` may refuse (it raises, and nothing is kept), and which is renamed to ``target`` only when whole."""
    import shutil

    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            build(partial)
            if check is not None:
                try:
                    check(partial)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
            partial.rename(target)
    return target


TEMPLATES = ROOT / "var" / "test-templates"  # runtime state (var/): `make clean` drops them
# Part of every template's key: raise it when a recipe (what a build runs, what it leaves) changes, so that no
# template an older recipe built is used again.
TEMPLATE_RECIPE = 2


def built_per_version(name: str, distributions: str, build, product: str) -> Path:
    """A directory ``build(path)`` fills once per installed version of the ``distributions`` (a name prefix), kept
    across test runs: what it holds (a new DB's schema) depends on nothing else.

    The key also holds the recipe's version and SQLAlchemy's and Alembic's (the migrations run on them). A build is
    kept only if it left ``product``, a non-empty file, in the directory.

    A run pays for it only when those libraries changed, where a per-run template cost each run 7-10 s of CPU.
    """
    import hashlib
    from importlib.metadata import distributions as installed
    from importlib.metadata import version

    versions = sorted(
        f"{d.metadata['Name']}=={d.version}" for d in installed() if d.metadata["Name"].startswith(distributions)
    )
    versions += [f"recipe=={TEMPLATE_RECIPE}", f"sqlalchemy=={version('sqlalchemy')}", f"alembic=={version('alembic')}"]
    key = hashlib.sha256("\n".join(versions).encode()).hexdigest()[:16]
    TEMPLATES.mkdir(parents=True, exist_ok=True)

    def whole(partial: Path) -> None:
        built = partial / product
        if not built.is_file() or built.stat().st_size == 0:
            raise RuntimeError(f"building the {name} template left no {product}: nothing kept")

    return _build_whole(TEMPLATES / f"{name}-{key}", build, whole)


@pytest.fixture(scope="session")
def small_boosters(spec, adult_split, tmp_path_factory):
    """Small real boosters trained once per test run (60 rounds each), in XGBoost's native format.

    ``good`` and ``good2`` are sound models (seeds 1 and 2), ``shifted`` learned labels that depend on age alone (its
    scores are shifted against the champion's), ``broken`` cannot score the schema at all.
    """
    import xgboost as xgb

    names = ("good", "good2", "shifted", "broken")

    def train(out: Path) -> None:
        import numpy as np

        from ativo.data.features import LABEL
        from ativo.data.split import Split
        from ativo.train.trainer import fit

        split = adult_split
        quick = spec.model_copy(update={"model": spec.model.model_copy(update={"num_boost_round": 60})})
        good = [fit(quick, split, overrides={"seed": s}, threads=2).booster for s in (1, 2)]
        shifted_split = Split(
            train=split.train.assign(**{LABEL: (split.train["age"] > 35).astype("int8")}),
            valid=split.valid.assign(**{LABEL: (split.valid["age"] > 35).astype("int8")}),
            test=split.test,
        )
        shifted = fit(quick, shifted_split, threads=2).booster
        rng = np.random.default_rng(0)
        broken = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(rng.random((60, 3)), label=[0, 1] * 30), 3)
        for name, booster in zip(names, (*good, shifted, broken), strict=True):
            booster.save_model(out / f"{name}.ubj")

    built = built_once(tmp_path_factory, "small-boosters", train)
    out = {}
    for name in names:
        booster = xgb.Booster()
        booster.load_model(built / f"{name}.ubj")
        out[name] = booster
    return out


@pytest.fixture(scope="session")
def airflow_db_template() -> Path:
    """A migrated Airflow metadata DB (SQLite), migrated once per version of Airflow: the file each user copies."""

    def migrate(out: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__DATABASE__")}
        # Named here, not left to a default: the file this build makes, whatever the environment says.
        env.update(AIRFLOW_HOME=str(out), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{out / 'airflow.db'}")
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr[-2000:]

    return built_per_version("airflow-db", "apache-airflow", migrate, "airflow.db") / "airflow.db"


@pytest.fixture(scope="session")
def airflow_db(airflow_db_template: Path) -> Path:
    """A migrated Airflow metadata DB (SQLite) for DagBag and dag.test(): migrated once per run, copied per worker."""
    import shutil

    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(airflow_db_template, home / "airflow.db")
    return home


TIERS = ("unit", "security", "dags", "model", "component", "e2e", "integration", "browser")
# pytest-timeout bounds every test; a tier's bound is generous for its slowest test on 2 busy cores.
TIMEOUT_S = {
    "unit": 60,
    "security": 600,
    "dags": 240,
    "model": 300,
    "component": 300,
    "e2e": 900,
    "integration": 600,
    "browser": 300,
}


# Longest first, so that parallel workers (pytest-xdist, by file) finish together: heavy files by name, then tiers.
FIRST = (
    "test_pool_limit.py",
    "test_erasure.py",
    "test_incident.py",
    "test_serving_live.py",
    "test_search_budget.py",
    "test_etl_and_training.py",
    "test_deploy_dag.py",
    "test_gates.py",
    "test_serving.py",
)
TIER_ORDER = ("e2e", "model", "security", "component", "integration", "browser", "dags", "unit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test's tier marker comes from its directory (``tests/<tier>/…``); a test outside a tier is an error.

    Items are also put in the order that keeps parallel workers busiest (a stable sort: within a file, the file's
    own order).
    """

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = Path(str(item.fspath))
        tier = path.resolve().relative_to(ROOT / "tests").parts[0]
        first = FIRST.index(path.name) if path.name in FIRST else len(FIRST)
        return first, TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)

    for item in items:
        tier = Path(str(item.fspath)).resolve().relative_to(ROOT / "tests").parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIMEOUT_S[tier]))
    items.sort(key=rank)


@pytest.fixture
def webhook():
    """A real HTTP webhook on loopback: yields (url, list of the JSON bodies it received)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


@pytest.fixture
def alert_sink(tmp_path):
    """Ativo's alert sink on loopback, writing to a file of the test's own: yields (url, path of its JSONL file)."""
    from ativo.ops.alert_sink import make_server

    path = tmp_path / "alerts" / "alerts.jsonl"
    server = make_server(0, path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", path
    server.shutdown()
    server.server_close()
