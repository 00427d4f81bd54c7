"""A model on a dataset the code has never seen, by a YAML file alone: `ativo land` → ETL → train → gates → deploy →
a champion answered by `ativo serve` (the generated DAGs, run with dag.test(); the server a real process).

The dataset is a loan book written by :mod:`tests.support.scenarios` (4,000 applications, names and birth dates
among the columns, a default risk that follows the loan's burden on income); its spec declares the renames, the
recoding, the derived ids and the PII. COMPAS runs the same way from its published file, landed raw.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.support.scenarios import (
    LOANS_SPEC,
    ativo,
    day_files,
    lifecycle,
    loan_book,
    predict_loan,
    specs_dir_fixture,  # noqa: F401  # the fixture specs_dir
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_dataset_the_code_has_never_seen_goes_from_a_csv_to_a_served_champion(
    airflow_db, settings, specs_dir, tmp_path, monkeypatch
):
    (specs_dir / "loan_default.yaml").write_text(LOANS_SPEC)
    check = ativo("spec", "check")
    assert check.returncode == 0 and "ok       loan_default" in check.stdout, check.stdout + check.stderr
    done = lifecycle("loan_default", day_files(loan_book(), tmp_path, "loans"), settings, monkeypatch)
    server = done["server"]
    try:
        answer = predict_loan(server)
        assert answer["model"] == "loan_default" and answer["version"] == done["version"]
        assert answer["label"] == "yes"  # 30,000 on a 42,000 income over a year: a heavy burden
        assert done["report"]["gates"]["fairness"]["details"]["views"]["gender"]["groups_judged"] == 2
    finally:
        server.stop()
    # the names and birth dates never reached the lake
    from ativo.store.objects import open_store

    store = open_store(settings)
    lake = [k for k in store.list("lake/loan_default") if k.endswith(".parquet")]
    from ativo.data.features import read_parquet_bytes

    frame = read_parquet_bytes(store.get_bytes(lake[0]))
    assert {"name", "dob", "Name", "DOB", "BranchCode"}.isdisjoint(frame.columns)
    assert frame["applicant_id"].str.startswith("applicant-").all() and frame["record_id"].str.startswith("app-").all()


def test_compas_lands_raw_and_is_served_the_same_way(
    airflow_db, settings, reference_dir, specs_dir, tmp_path, monkeypatch
):
    import shutil

    shutil.copy(ROOT / "include" / "specs" / "compas_recidivism.yaml", specs_dir)
    raw = pd.read_csv(reference_dir / "compas-scores-two-years.csv")  # as ProPublica published it: 53 columns
    done = lifecycle("compas_recidivism", day_files(raw, tmp_path, "compas"), settings, monkeypatch)
    done["server"].stop()
    fairness = done["report"]["gates"]["fairness"]
    assert fairness["passed"] and fairness["details"]["mitigation"]["kind"] == "threshold_optimizer"
