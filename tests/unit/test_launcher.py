"""`make run` with a spec that ships no reference data: the demo lifecycle runs for the specs that have some, the
others are served and scheduled (and said so), and the inference API follows the specs folder."""

from __future__ import annotations

import argparse
import shutil

import yaml

from ativo_dev import launcher


def test_make_run_runs_the_demo_for_specs_with_reference_data_and_starts_the_others(
    monkeypatch, tmp_path, settings, capsys
):
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copyfile(settings.specs_dir / "adult_income.yaml", folder / "adult_income.yaml")
    doc = yaml.safe_load((settings.specs_dir / "adult_income.yaml").read_text())
    doc["name"] = "german_credit"
    doc["source"] = {"kind": "csv", "start_date": "2026-01-01"}  # its batches come with `ativo land`
    (folder / "german_credit.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("ATIVO_SPECS_DIR", str(folder))
    # The platform's processes are what `make run` starts; here each step records what it was asked for.
    asked: dict[str, object] = {}

    def start_services(settings, before_airflow=None, spec_names=None, dask=False, all_specs=False):
        asked["services"] = {"specs": spec_names, "all_specs": all_specs}
        if before_airflow:
            before_airflow()
        return "api"

    monkeypatch.setattr(launcher.supervisor, "airflow_running", lambda s: False)
    monkeypatch.setattr(launcher.supervisor, "start_services", start_services)
    monkeypatch.setattr(launcher.lifecycle, "prepare_lifecycle", lambda s, names, *a: asked.update(demo=names))
    monkeypatch.setattr(launcher.lifecycle, "unpause_all", lambda api, names: asked.update(unpaused=names))
    monkeypatch.setattr(
        launcher.lifecycle, "watch_lifecycle", lambda s, api, name, days: asked.setdefault("watched", []).append(name)
    )
    monkeypatch.setattr(
        launcher.lifecycle, "serve_sample", lambda s, name: asked.setdefault("sampled", []).append(name)
    )
    monkeypatch.setattr("ativo.ops.summary.collect", lambda spec, s: {"spec": spec.name})  # reads MLflow
    monkeypatch.setattr("ativo.ops.summary.render", lambda summary: summary["spec"])
    monkeypatch.setattr(launcher.banner, "banner", lambda s, texts, samples, waiting: f"BANNER {sorted(waiting)}")
    args = argparse.Namespace(spec=None, fresh=False, no_lifecycle=False, days=3, quarantine_day=1, dask=False)
    assert launcher._cmd_up(args) == 0
    assert asked["demo"] == ["adult_income"] and asked["watched"] == ["adult_income"]
    assert asked["sampled"] == ["adult_income"]
    assert asked["unpaused"] == ["adult_income", "german_credit"]  # both scheduled
    assert asked["services"] == {"specs": ["adult_income", "german_credit"], "all_specs": True}
    out = capsys.readouterr()
    said = out.out + out.err
    assert "german_credit: no reference data (source.kind csv)" in said and "ativo land" in said
    assert "BANNER ['german_credit']" in said
