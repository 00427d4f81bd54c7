"""What a test and a benchmark both set up: cheaper gates, a subject who comes back, decisions in the prediction log.

Each is what the test asserts on and what the benchmark measures: one definition, so the figures describe the
scenario the tests check. The loan book (a dataset no code of Ativo knows) and its lifecycle, from `ativo land` to a
served champion, are shared by the end-to-end tests of a new dataset and of the Dask engine.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from ativo.serve.predlog import PredictionLog
    from ativo.spec import ModelSpec
    from ativo.store.objects import ObjectStore


def cheap_gates(spec: ModelSpec) -> ModelSpec:
    """The spec with cheaper gates that a one-trial search passes.

    20 robustness attack samples and a counterfactual flip-rate bound of 0.2, 1,000 privacy samples, a champion
    tolerance of 0.02; every gate still runs. The gates' own bounds are tested (and benchmarked) elsewhere: a test or
    benchmark using this asks whether a loop closes, or what the rest of it costs.
    """
    gates = spec.gates.model_copy(
        update={
            "robustness": spec.gates.robustness.model_copy(
                update={"attack_samples": 20, "max_counterfactual_flip_rate": 0.2}
            ),
            "privacy": spec.gates.privacy.model_copy(update={"samples": 1000}),
            "champion": spec.gates.champion.model_copy(update={"tolerance": 0.02}),
        }
    )
    return spec.model_copy(update={"gates": gates})


def spread_subject(store: ObjectStore, spec: ModelSpec, days: Sequence[dt.date]) -> str:
    """Make one subject of the first day's landed batch appear in each later day's too, twice (a customer who comes
    back); returns its id.

    The batches must be landed already (:func:`ativo.data.landing.simulate`); they are rewritten in place.
    """
    import pandas as pd

    from ativo.store.prefixes import landing_batch

    sid = spec.data_schema.subject
    frames = {
        d: pd.read_csv(io.BytesIO(store.get_bytes(landing_batch(spec.name, d))), dtype=str, keep_default_na=False)
        for d in days
    }
    subject = frames[days[0]][sid].iloc[0]
    for d in days[1:]:
        frames[d].loc[frames[d].index[:2], sid] = subject
        store.put_bytes(landing_batch(spec.name, d), frames[d].to_csv(index=False).encode())
    return str(subject)


def append_decisions(
    log: PredictionLog,
    spec: ModelSpec,
    model: Any,
    frame: pd.DataFrame,
    ts: float,
    *,
    subjects: Sequence[str | None] | None = None,
    request_id: str = "r",
) -> list[str]:
    """Append the frame's rows, answered by ``model`` at ``ts`` as the champion serves them, to a prediction log.

    Args:
        log: an open :class:`~ativo.serve.predlog.PredictionLog` (the caller closes it).
        spec: the spec the rows follow.
        model: the served model that scores them (:class:`~ativo.model.served.ServedModel`).
        frame: the rows (features; a label column is ignored).
        ts: when they were answered (epoch seconds).
        subjects: each row's subject id (none when omitted).
        request_id: the request they came in.

    Returns:
        The prediction ids of the rows, in order (for labels: :class:`~ativo.serve.predlog.LabelLog`).
    """
    import numpy as np

    from ativo.model.encoding import encode_frame
    from ativo.serve.predlog import Entry, prediction_id

    n = len(frame)
    matrix = encode_frame(spec, frame)
    scores = model.score(matrix)
    ids = [prediction_id(ts) for _ in range(n)]
    log.append(
        Entry(
            ts=ts,
            request_id=request_id,
            ids=ids,
            matrix=matrix,
            subjects=list(subjects) if subjects is not None else [None] * n,
            models=[model] * n,
            routes=["champion"] * n,
            fallback=[False] * n,
            scores=scores,
            decisions=(scores >= 0.5).astype(np.int8),
            latency_ms=1.0,
            shadow=None,
        )
    )
    return ids


ROOT = Path(__file__).resolve().parents[2]
DAYS = [dt.date(2026, 4, 1), dt.date(2026, 4, 2)]

LOANS_SPEC = """
name: loan_default
description: Will a loan applicant default within a year (a dataset no code of Ativo knows).
owner: credit-risk
source:
  kind: csv
  start_date: 2026-04-01
  rename: {ApplicationNo: application_no, Name: name, DOB: dob, Gender: gender, Age: age, AnnualIncome: income,
           LoanAmount: amount, Term: term_months, Purpose: purpose, Defaulted: defaulted}
  recode:
    defaulted: {"Y": "yes", "N": "no"}
  ids:
    record_id: {column: application_no, prefix: "app-"}
    subject: {hash: [name, dob], prefix: "applicant-"}
  rows_per_batch_min: 100
  rows_per_batch_max: 10000
  max_batch_bytes: 4194304
schema:
  record_id: record_id
  subject: applicant_id
  event_time: applied_on
  target: {column: defaulted, positive: "yes", negative: "no"}
  pii: [name, dob]
  features:
    - {name: gender, type: category, categories: [F, M]}
    - {name: age, type: int, min: 18, max: 100}
    - {name: income, type: float, min: 0, max: 1000000}
    - {name: amount, type: float, min: 100, max: 500000}
    - {name: term_months, type: int, min: 6, max: 120}
    - {name: purpose, type: category, categories: [business, car, education, home]}
protected_attributes: [gender]
model:
  num_boost_round: 120
  params: {max_depth: 3, eta: 0.1, tree_method: hist, max_cat_to_onehot: 1, seed: 7}
  search:
    n_trials: 2
    space:
      max_depth: {type: int, low: 2, high: 4}
compute: {team: credit}
gates:
  min_test_rows: 500
  performance: {min_auc: 0.70}
  fairness: {min_group_size: 100, max_equalized_odds_difference: 0.15}
  robustness: {max_flip_rate: 0.15, samples: 500, attack_samples: 20}
  privacy: {max_membership_advantage: 0.10, samples: 1000}
  infra: {calls: 100}
deploy: {canary_window_minutes: 1}
"""


def loan_book(rows: int = 4000, seed: int = 5) -> pd.DataFrame:
    """Applications with a default risk that grows with the loan's burden on income, the same for both genders."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.6, 0.5, rows).round(2)
    amount = (income * rng.uniform(0.05, 0.9, rows)).clip(100).round(2)
    term = rng.choice([12, 24, 36, 60], rows)
    age = rng.integers(18, 80, rows)
    burden = amount / income * 12 / term
    logit = -2.2 + 5.0 * burden - 0.02 * (age - 40) + rng.normal(0, 0.7, rows)
    first = rng.choice(["Ana", "Bruno", "Carla", "Diego", "Eva", "Filipe", "Gita", "Hugo"], rows)
    return pd.DataFrame(
        {
            "ApplicationNo": np.arange(100_000, 100_000 + rows),
            "Name": [f"{f} {i:05d}" for f, i in zip(first, rng.permutation(rows), strict=True)],
            "DOB": [
                str(dt.date(2026 - int(a), 1, 1) + dt.timedelta(days=int(d)))
                for a, d in zip(age, rng.integers(0, 365, rows), strict=True)
            ],
            "Gender": rng.choice(["F", "M"], rows),
            "Age": age,
            "AnnualIncome": income,
            "LoanAmount": amount,
            "Term": term,
            "Purpose": rng.choice(["business", "car", "education", "home"], rows),
            "Defaulted": np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "Y", "N"),
            "BranchCode": rng.integers(1, 40, rows),  # a column the spec does not declare: dropped at landing
        }
    )


def day_files(frame: pd.DataFrame, dest: Path, prefix: str) -> list[Path]:
    """The frame as two CSV files, one per day of :data:`DAYS`."""
    import numpy as np

    files = []
    for i, part in enumerate(np.array_split(np.arange(len(frame)), len(DAYS))):
        files.append(dest / f"{prefix}-{i}.csv")
        frame.iloc[part].to_csv(files[-1], index=False)
    return files


def ativo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ativo.cli", *args], capture_output=True, text=True, env=env)


def run_etl(dag, day: dt.date):
    return dag.test(logical_date=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dagrun.get_task_instances()}


def lifecycle(spec_name: str, files: list[Path], settings, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Land the files with `ativo land`, run the spec's generated DAGs, deploy its champion on `ativo serve`.

    The deploy DAG finds the server through ``ATIVO_SERVE_URLS``, set with ``monkeypatch`` (undone after the test).
    """
    import pandas as pd
    from airflow.dag_processing.dagbag import DagBag

    from ativo.deploy.steps import server_versions
    from ativo_dev.supervisor import operator_key
    from tests.support.harness import start_server

    operator = {**os.environ, "ATIVO_OP_KEY": operator_key(settings)}  # landing data changes state: an op key
    for day, path in zip(DAYS, files, strict=True):
        out = ativo("land", "--spec", spec_name, "--date", str(day), str(path), env=operator)
        assert out.returncode == 0, out.stderr
        assert f"landed {pd.read_csv(path).shape[0]} rows for {day}" in out.stdout
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    dags = {kind: bag.dags[f"{spec_name}__{kind}"] for kind in ("etl", "train", "deploy", "reconcile")}
    for day in DAYS:
        run = run_etl(dags["etl"], day)
        assert str(run.state) == "success", states(run)
    train = dags["train"].test(run_conf={"n_trials": 2})
    ti = states(train)
    assert str(train.state) == "success", ti
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri)
    [mv] = client.search_model_versions(f"name='{spec_name}'")
    report = json.loads(
        Path(__import__("mlflow").artifacts.download_artifacts(mv.tags["ativo.gate_report_uri"])).read_text()
    )
    assert report["verdict"] == "challenger", {g: r["reason"] for g, r in report["gates"].items() if not r["passed"]}
    assert report["dataset_version"] == f"{spec_name}-v0002"
    # the version's reference profile, logged at registration for monitoring: bins and counts, no rows
    profile = json.loads(
        Path(__import__("mlflow").artifacts.download_artifacts(mv.tags["ativo.profile_uri"])).read_text()
    )
    assert profile["version"] == str(mv.version) and profile["dataset_version"] == report["dataset_version"]
    assert report["gates"]["privacy"]["passed"]  # its artifact scan read the profile too
    server = start_server(settings, spec_name, wait_for=None, args=("--refresh-s", "0.2"))
    try:
        monkeypatch.setenv("ATIVO_SERVE_URLS", server.url)
        deploy = dags["deploy"].test(run_conf={"version": str(mv.version)})
        assert str(deploy.state) == "success", states(deploy)
        [serving] = server_versions([server.url], spec_name)
        assert serving is not None and serving["champion"] == str(mv.version)
        return {"report": report, "server": server, "version": str(mv.version)}
    except BaseException:
        server.stop()
        raise


@pytest.fixture(name="specs_dir")
def specs_dir_fixture(tmp_path, monkeypatch):
    """The fixture ``specs_dir``: an empty specs directory (``ATIVO_SPECS_DIR``; a test writes or copies its specs)
    and no server named. A test module imports it to use it."""
    path = tmp_path / "specs"
    path.mkdir()
    monkeypatch.setenv("ATIVO_SPECS_DIR", str(path))
    monkeypatch.delenv("ATIVO_SERVE_URLS", raising=False)
    return path


LOAN_APPLICATION = {
    "features": {"gender": "F", "age": 35, "income": 42000.0, "amount": 30000.0, "term_months": 12, "purpose": "car"},
    "subject_id": "applicant-x",
}


def predict_loan(server) -> dict:
    """The answer of ``server`` (a started ``ativo serve``) for :data:`LOAN_APPLICATION` (30,000 on a 42,000 income
    over a year: a heavy burden, so a sound model says it defaults)."""
    from ativo.http import post_json

    return post_json(
        f"{server.url}/models/loan_default/predict",
        LOAN_APPLICATION,
        timeout=10,
        headers={"Authorization": f"Bearer {server.key}"},
    )
