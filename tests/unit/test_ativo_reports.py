"""Reports by reference (never a host path), the lineage tree's links, and report pages that escape every value."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ativo.ops import html, report_html, views
from ativo.store import reports

pytestmark = pytest.mark.unit
EVIL = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
SETTINGS = SimpleNamespace(
    store_uri="file:///var/ativo/store",
    mlflow_tracking_uri="http://mlflow.internal:5000",
    link_url="https://airflow.example",
)


def chain() -> dict:
    return {
        "spec": "adult_income",
        "prediction": {
            "prediction_id": "p-1",
            "ts": "2026-12-07T10:00:00+00:00",
            "route": "champion",
            "score": 0.71,
            "decision": 1,
            "threshold": 0.5,
            "subject": None,
            "request_id": "r-1",
            "log_object": "file:///var/ativo/store/predictions/adult_income/2026-12-07/part-0001.parquet",
        },
        "features": {},
        "top_contributions": [{"feature": "age", "contribution": 0.12}],
        "contributions_method": "approx",
        "model": {"name": "ativo-adult_income", "version": "3", "state": "champion", "sha256": "ab" * 32},
        "run": {
            "run_id": "0123abcd",
            "experiment_id": "7",
            "study": "s",
            "trial": "2",
            "airflow": {"dag_id": "ativo_train_adult_income", "dag_run_id": "manual__2026-12-07T09:00:00+00:00"},
        },
        "dataset": {
            "tag": "adult_income-v0004",
            "rows": 900,
            "data_registry_commit": "deadbeef" * 5,
            "resolves": True,
            "partition_names": ["2026-11-29", "2026-11-30"],
        },
        "code": {"commit": "c0ffee", "dirty": "false"},
        "gates": {
            "verdict": "passed",
            "gates": {"performance": "pass"},
            "report_uri": "runs:/0123abcd/gates/gate_report.json",
            "model_card_uri": "runs:/0123abcd/gates/model_card.html",
        },
        "deployments": [],
    }


def test_a_lineage_tree_links_each_step_where_it_opens_and_names_no_host_path():
    tree = views.lineage_tree(SETTINGS, chain())
    assert [n["kind"] for n in tree] == ["prediction", "model", "run", "dataset", "code", "gates"]
    links = {link["label"]: link["href"] for n in tree for link in n["links"]}
    assert links["MLflow model version"] == "http://mlflow.internal:5000/#/models/ativo-adult_income/versions/3"
    assert links["MLflow run"] == "http://mlflow.internal:5000/#/experiments/7/runs/0123abcd"
    assert links["training DAG run"] == (
        "https://airflow.example/dags/ativo_train_adult_income/runs/manual__2026-12-07T09%3A00%3A00%2B00%3A00"
    )
    assert links["deploy DAG runs"].startswith("https://airflow.example/dags/") and "deploy" in links["deploy DAG runs"]
    assert links["gate report"] == "reports/run/0123abcd/gates/gate_report.json"
    assert links["model card"] == "reports/run/0123abcd/gates/model_card.html"
    page = html.lineage_section({"chain": chain(), "tree": tree}, "p-1")
    assert "file://" not in page and "/var/ativo" not in page and "part-0001" not in page
    assert "adult_income-v0004" in page and "2026-11-30" in page
    assert page.index("node-prediction") < page.index("node-model") < page.index("node-gates")  # nested in order


def test_a_deployment_a_deploy_dag_run_made_links_to_that_run_in_airflows_grid():
    made = {"dag_id": "adult_income__deploy", "run_id": "manual__2026-12-07T11:00:00+00:00"}
    deployments = [
        {"at": "2026-12-07T11:02:00+00:00", "action": "promote", "reason": "canary sound", "actor": "airflow:ops"}
        | {"dag_run": made},
        {"at": "2026-12-07T12:00:00+00:00", "action": "rollback", "reason": "by hand", "actor": "key:ops"}
        | {"dag_run": None},  # `ativo rollback`: no run, the actor says who
    ]
    tree = views.lineage_tree(SETTINGS, {**chain(), "deployments": deployments})
    [model] = [n for n in tree if n["kind"] == "model"]
    runs = [link for link in model["links"] if link["label"].startswith("deploy DAG run")]
    assert runs == [
        {
            "label": "deploy DAG run: promote 2026-12-07T11:02:00+00:00",
            "href": "https://airflow.example/dags/adult_income__deploy/runs/manual__2026-12-07T11%3A00%3A00%2B00%3A00",
        },
        {"label": "deploy DAG runs", "href": "https://airflow.example/dags/adult_income__deploy/runs"},
    ]
    assert 'href="https://airflow.example/dags/adult_income__deploy/runs/manual__' in html.lineage_tree(tree)


def test_a_local_tracking_store_gets_no_mlflow_link():
    local = SimpleNamespace(**{**vars(SETTINGS), "mlflow_tracking_uri": "sqlite:////var/ativo/mlflow.db"})
    tree = views.lineage_tree(local, chain())
    labels = [link["label"] for n in tree for link in n["links"]]
    assert "MLflow run" not in labels and "training DAG run" in labels
    assert "/var/ativo" not in html.lineage_tree(tree)


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("runs:/0123abcd/gates/gate_report.json", "run/0123abcd/gates/gate_report.json"),
        ("runs:/0123abcd/monitor/w1/report.json", "run/0123abcd/monitor/w1/report.json"),
        (
            "file:///var/ativo/store/quarantine/a/2026-11-30/ab/report.json",
            "store/quarantine/a/2026-11-30/ab/report.json",
        ),
        ("file:///var/ativo/store/erasure/receipts/a/req-1.json", "store/erasure/receipts/a/req-1.json"),
    ],
    ids=["gate-report", "monitor-report", "validation-report", "receipt"],
)
def test_a_report_round_trips_through_its_reference(uri, ref):
    assert reports.ref_of(SETTINGS, uri) == ref
    assert reports.uri_of(SETTINGS, ref) == uri
    assert "/var/" not in ref


@pytest.mark.parametrize(
    "ref",
    [
        "store/../../etc/passwd",
        "store/quarantine/a/../../../etc/passwd.json",
        "store/quarantine/a/2026-11-30/ab/batch.csv",
        "store/landing/a/2026-11-30.csv",
        "store/lake/a/2026-11-30/part-0.parquet",
        "store/predictions/a/2026-12-07/part-0.parquet",
        "store//etc/passwd",
        "run/0123abcd/model/model.ubj",
        "run/0123abcd/gates/../../secret.txt",
        "run/../gates/gate_report.json",
        "run/0123abcd/gates/a\\..\\b.json",
        "file:///etc/passwd",
        "/etc/passwd",
        "",
    ],
)
def test_a_reference_outside_the_reports_is_refused(ref):
    with pytest.raises(KeyError):
        reports.uri_of(SETTINGS, ref)


def test_a_uri_the_page_does_not_open_has_no_reference():
    for uri in ("file:///etc/passwd", "file:///var/ativo/store/landing/a/x.csv", "runs:/abc/model/m.ubj", None):
        assert reports.ref_of(SETTINGS, uri) is None


def test_the_gate_report_page_is_a_table_per_gate_and_escapes_a_hostile_reason():
    doc = {
        "model": "m",
        "version": "4",
        "spec": "adult_income",
        "passed": False,
        "verdict": "rejected",
        "failed_gates": ["performance"],
        "gates": {
            "performance": {
                "passed": False,
                "reason": EVIL,
                "metrics": {"auc": 0.81, "auc_bound": 0.79, "auc_interval": [0.79, 0.83], "auc_confidence": 0.95},
                "thresholds": {"auc": {"min": 0.85}},
                "details": {},
            }
        },
    }
    page = report_html.gate_report(doc, "/ativo/")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "0.81" in page and "0.79" in page and "≥ 0.85" in page and ">fail<" in page
    assert 'href="/ativo/"' in page and 'href="?format=json"' in page


def test_the_validation_report_page_counts_and_lists_the_failed_expectations():
    doc = {
        "spec": "a",
        "partition": "2026-11-30",
        "reasons": ["column 'age': 1 value above 120"],
        "gx": {
            "statistics": {"evaluated_expectations": 3, "successful_expectations": 2},
            "results": [
                {"success": True, "expectation_config": {"type": "t1", "kwargs": {"column": "x"}}, "result": {}},
                {
                    "success": False,
                    "expectation_config": {"type": "expect_column_max_to_be_between", "kwargs": {"column": "age"}},
                    "result": {"observed_value": EVIL},
                },
            ],
        },
    }
    page = report_html.validation_report(doc, "/ativo/")
    assert "2 passed" in page and "1 failed" in page
    assert "expect_column_max_to_be_between" in page and "<td>age</td>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_receipt_page_counts_subjects_and_never_shows_them():
    receipt = {
        "request_id": "req-1",
        "spec": "a",
        "subjects": [{"ref": "cust-secret-0001"}, {"ref": "cust-secret-0002"}],
        "purged": {"lake_rows": 2, "text_files": {"/var/ativo/x.log": 1}},
        "models": {"affected": ["3"], "retrained": {"champion": {"to": "5", "redacted_dataset": "a-v0005"}}},
        "scan": {"clean": True, "hits": []},
        "sha256": "f" * 64,
    }
    page = report_html.erasure_receipt(receipt, {"ok": True, "chain_rows": 9}, "/ativo/")
    assert "cust-secret" not in page and "/var/ativo" not in page
    assert "<td>2</td>" in page and "verified" in page and "f" * 64 in page and "a-v0005" in page
