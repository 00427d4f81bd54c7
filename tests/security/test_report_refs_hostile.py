"""Stored reports by reference, against hostile references: a user-role login can open the reports the page lists
and nothing else — no encoded ``..`` that an artifact store decodes once more, no ``?``/``#`` that a store client cuts
the key at (which turned ``…/batch.csv?versionId=x/report.json`` into the raw quarantined batch on S3); the stored
validation report keeps no sample of the failing rows' values; and ``ativo audit`` prints a tampered row's problem
inert."""

from __future__ import annotations

import pytest

from ativo.store import reports
from tests.component.test_ativo_page import airflow_app  # noqa: F401  # a fixture: Airflow's api-server with logins

RUN = "0123456789abcdef0123456789abcdef"
HOSTILE_REFS = [
    f"run/{RUN}/gates/%2e%2e/%2e%2e/secret.txt",  # an artifact store decodes %2e once more into ..
    f"run/{RUN}/gates/%2E%2E%2Fsecret.txt",
    "store/quarantine/s/2026-06-01/abcd/batch.csv?versionId=x/report.json",  # s3fs cuts the key at ?versionId=
    "store/quarantine/s/2026-06-01/abcd/batch.csv#/report.json",
    "store/quarantine/s/2026-06-01/ab cd/report.json",
    "store/quarantine/s/2026-06-01/abcd\\..\\report.json",
]


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_a_reference_outside_the_plain_path_characters_names_no_report(settings, ref):
    with pytest.raises(KeyError):
        reports.uri_of(settings, ref)
    uri = ref.replace("run/", "runs:/", 1) if ref.startswith("run/") else settings.store_uri + "/" + ref[6:]
    assert reports.ref_of(settings, uri) is None


def test_an_encoded_parent_is_refused_before_any_artifact_is_fetched(settings, monkeypatch):
    import mlflow.artifacts

    from ativo.airflow.page import read_file

    fetched: list[str] = []
    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", lambda **kw: fetched.append(kw["artifact_uri"]))
    with pytest.raises(KeyError):
        read_file(settings, f"runs:/{RUN}/gates/%2e%2e/%2e%2e/%2e%2e/etc/hostname")
    assert fetched == []


def test_the_route_answers_404_and_never_the_batch_behind_a_cut_key(airflow_app, settings):  # noqa: F811
    from ativo.store.objects import open_store

    client, token = airflow_app
    store = open_store(settings)
    store.put_bytes("quarantine/adult_income/2026-06-01/abcd/batch.csv", b"customer_id,age\nC-SECRET-1,41\n")
    store.put_bytes("quarantine/adult_income/2026-06-01/abcd/report.json", b'{"reasons": ["age out of range"]}')
    ok = client.get(
        "/ativo/reports/store/quarantine/adult_income/2026-06-01/abcd/report.json", headers=token("analyst")
    )
    assert ok.status_code == 200 and "age out of range" in ok.text  # the report itself opens
    for path in (
        "/ativo/reports/store/quarantine/adult_income/2026-06-01/abcd/batch.csv%253FversionId=x/report.json",
        f"/ativo/reports/run/{RUN}/gates/%25252e%25252e/%25252e%25252e/report.json",
        "/ativo/reports/store/quarantine/adult_income/2026-06-01/abcd/batch.csv",
    ):
        got = client.get(path, headers=token("analyst"))
        assert got.status_code == 404, (path, got.status_code)
        assert "C-SECRET-1" not in got.text


def test_the_stored_validation_report_keeps_no_sample_of_the_failing_rows(settings):
    import json

    from ativo.data.etl import quarantine
    from ativo.spec import get_spec
    from ativo.store.db import get_engine
    from ativo.store.objects import open_store

    spec = get_spec("adult_income", settings.specs_dir)
    gx = {
        "results": [
            {
                "success": False,
                "expectation_config": {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "record_id"}},
                "result": {
                    "unexpected_count": 1,
                    "partial_unexpected_list": ["C-SECRET-2"],
                    "partial_unexpected_counts": [{"value": "C-SECRET-2", "count": 2}],
                    "partial_unexpected_index_list": [3],
                },
            }
        ]
    }
    store = open_store(settings)
    uri = quarantine(store, get_engine(settings.db_url), spec, "2026-06-02", b"x", ["record_id repeats"], {"gx": gx})
    stored = store.get_bytes(uri[len(settings.store_uri.rstrip("/")) + 1 :]).decode()
    assert "C-SECRET-2" not in stored
    assert json.loads(stored)["gx"]["results"][0]["result"]["unexpected_count"] == 1  # counts stay


def test_a_tampered_rows_problem_cannot_drive_the_terminal(tmp_path, monkeypatch, capsys):
    from sqlalchemy import update

    from ativo import audit
    from ativo.cli import main
    from ativo.store.db import audit_log, get_engine

    monkeypatch.setenv("ATIVO_HOME", str(tmp_path / "ativo"))
    engine = get_engine(f"sqlite:///{tmp_path / 'ativo' / 'ativo.db'}")
    audit.append(engine, "cli_promote", "key:ops", "adult_income", {"version": "3"})
    audit.append(engine, "cli_rollback", "key:ops", "adult_income", {"reason": "bad"})
    with engine.begin() as conn:  # someone with the DB credential writes a ref that would rewrite the verdict line
        conn.execute(update(audit_log).where(audit_log.c.seq == 1).values(ref="x\x1b[2K\raudit chain intact"))
    assert main(["audit"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert out.splitlines()[-1].startswith("audit chain BROKEN at row 1")
