"""The search: trials in parallel processes share one study in the platform DB and find a good model."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from ativo.data.features import to_features
from ativo.data.landing import reference_records
from ativo.data.split import split_frame
from ativo.train.search import best_trial, create_study, run_trial
from tests.support import processes

ROOT = Path(__file__).resolve().parents[2]


def _small_split(n: int = 6000):
    from ativo.data.reference import fetch_for_specs
    from ativo.spec import load_spec

    spec = load_spec(ROOT / "include" / "specs" / "adult_income.yaml")
    ref = Path(os.environ["ATIVO_REFERENCE_DIR"])
    fetch_for_specs([spec], ref)
    raw = reference_records(spec, ref).head(n).copy()
    raw["event_date"] = "2026-01-01"
    return spec, split_frame(to_features(raw, spec), spec)


@functools.cache
def _worker_split():
    """The split a pool worker trains on, built once per worker process (it runs several trials)."""
    return _small_split()


def _one_trial(url: str, name: str, slot: int) -> dict:
    spec, split = _worker_split()
    result, _ = run_trial(spec, url, name, split, slot=slot, threads=1)
    return result


def test_parallel_trials_share_one_study_in_the_platform_db(tmp_path):
    spec, _ = _small_split()
    url = f"sqlite:///{tmp_path / 'platform.db'}"
    create_study(spec, url, "adult_income/test")
    with processes.context().Pool(2) as pool:
        results = pool.starmap(_one_trial, [(url, "adult_income/test", slot) for slot in range(6)])
    assert sorted(r["number"] for r in results) == list(range(6))  # every trial got its own number
    assert len({tuple(sorted(r["params"].items())) for r in results}) == 6  # and its own parameters (seed per slot)
    done = [r for r in results if r["state"] == "complete"]
    assert done, "at least the start-up trials complete"
    best = best_trial(url, "adult_income/test")
    assert best["value"] == max(r["value"] for r in done) > 0.85
    assert set(best["params"]) == set(spec.model.search.space)


def test_search_space_in_spec_is_validated():
    import copy

    import yaml

    from ativo.errors import SpecError
    from ativo.spec import parse_spec

    doc = yaml.safe_load((ROOT / "include" / "specs" / "adult_income.yaml").read_text())
    bad = copy.deepcopy(doc)
    bad["model"]["search"]["space"]["eta"] = {"type": "float", "low": 0.3, "high": 0.1}
    with pytest.raises(SpecError, match=r"model.search.space.eta.*'low' < 'high'"):
        parse_spec(bad, "adult_income.yaml")


def test_same_slot_and_history_give_the_same_parameters(tmp_path):
    """Seeded per slot: a search is reproducible, trial for trial."""
    spec, split = _small_split(3000)
    params = []
    for run in ("a", "b"):
        url = f"sqlite:///{tmp_path / f'{run}.db'}"
        create_study(spec, url, "s")
        params.append([run_trial(spec, url, "s", split, slot=slot, threads=1)[0]["params"] for slot in range(3)])
    assert params[0] == params[1]


def test_a_trial_stops_where_its_budget_reservation_ends_and_is_charged_no_more(ativo_home, monkeypatch):
    import datetime as dt

    from ativo.compute.budget import Ledger
    from ativo.compute.session import ComputeSession
    from ativo.config import load_settings
    from ativo.store.db import get_engine, utcnow

    spec, split = _small_split()
    spec = spec.model_copy(update={"compute": spec.compute.model_copy(update={"execution_timeout_minutes": 1})})
    settings = load_settings()
    get_engine(settings.db_url)  # the platform DB, at head
    create_study(spec, settings.db_url, "adult_income/budget")
    start = utcnow()

    def fast() -> dt.datetime:  # a minute of this clock passes in 6 ms: the 60 s reservation runs out mid-training
        return start + (utcnow() - start) * 10_000

    with ComputeSession(spec, settings, task_key="adult_income.trial", holder="h", clock=fast) as cs:
        result, model = run_trial(spec, settings.db_url, "adult_income/budget", split, threads=1)
    assert result["state"] == "pruned" and model is None
    assert "it has run for all its budget reservation of 60.0 s" in result["reason"]
    assert cs.outcome.seconds > 60 and cs.outcome.cost_usd == pytest.approx(cs.reservation.estimate_usd, abs=1e-6)
    status = Ledger(get_engine(settings.db_url), settings.prices).status(spec.compute.team)
    assert status["settled_usd"] == pytest.approx(cs.reservation.estimate_usd, abs=1e-6)
