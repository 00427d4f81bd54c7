"""Whether a drifted window retrains: sustained, outside the cooldown, within budget, announced once.

What a training run does with an episode (claims, hand-overs, giving up) is the ledger's: tests/unit/test_runs.py.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ativo.monitor.decide import decide, history
from ativo.monitor.window import Assessment
from ativo.store.db import get_engine
from ativo.store.episodes import claim_episodes, open_episodes, settle_episodes

T0 = dt.datetime(2026, 6, 1, 6, tzinfo=dt.UTC)
DRIFT = ["age: PSI 0.412 ≥ 0.2, beyond noise (Holm-adjusted p < 0.01)"]
DECAY = ["estimated AUC without labels 0.812 (±0.006) is 0.091 under the reference 0.903"]


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")


def window(spec, engine, day: int, *, reasons=DRIFT, judged=True, version="3", budget=None, hours=24):
    """Decide on the window of day ``day`` (daily windows, decided at their end)."""
    start = T0 + dt.timedelta(hours=hours * day)
    end = start + dt.timedelta(hours=hours)
    a = Assessment(
        spec.name,
        version,
        5000 if judged else 40,
        judged=judged,
        drifted=judged and bool(reasons),
        reasons=reasons if judged else ["40 rows in the window, under monitor.min_rows = 500: not judged"],
    )
    return decide(
        engine,
        spec,
        a,
        window_start=start,
        window_end=end,
        report_uri=f"runs:/r/monitor/{day}",
        budget_problem=budget,
        dag_run_id=f"monitor__{day}",
        now=end,
    )


def with_monitor(spec, **kw):
    return spec.model_copy(update={"monitor": spec.monitor.model_copy(update=kw)})


def test_a_stationary_window_and_a_small_one_decide_nothing(spec, engine):
    assert window(spec, engine, 0, reasons=[]).action == "no_drift"
    small = window(spec, engine, 1, judged=False)
    assert small.action == "not_judged" and "under monitor.min_rows" in small.reason and not small.emit
    assert [r["decision"] for r in history(engine, spec.name)] == ["not_judged", "no_drift"]
    assert open_episodes(engine, spec.name) == []


def test_drift_retrains_only_once_sustained(spec, engine):
    spec = with_monitor(spec, sustain=2)
    first = window(spec, engine, 0)
    assert first.action == "waiting" and "drift in 1 of the 2 consecutive windows" in first.reason
    window(spec, engine, 1, judged=False)  # too small to judge: neither confirms nor breaks the streak
    second = window(spec, engine, 2)
    assert second.emit and second.streak == 2 and second.episode is not None
    [ep] = open_episodes(engine, spec.name)
    assert ep["id"] == second.episode and ep["reasons"] == DRIFT and ep["report_uri"] == "runs:/r/monitor/2"


def test_a_calm_window_or_a_new_champion_breaks_the_streak(spec, engine):
    spec = with_monitor(spec, sustain=2, cooldown_hours=0)
    window(spec, engine, 0)
    window(spec, engine, 1, reasons=[])
    assert window(spec, engine, 2).action == "waiting"
    assert window(spec, engine, 3, version="4").action == "waiting"  # drift of another version starts anew
    assert window(spec, engine, 4, version="4").emit


def test_two_drifting_windows_inside_the_cooldown_give_one_retraining(spec, engine):
    spec = with_monitor(spec, sustain=1, cooldown_hours=48)
    assert window(spec, engine, 0).emit
    held = window(spec, engine, 1)
    assert held.action == "held_cooldown" and not held.emit
    assert "in cooldown until 2026-06-04T06:00" in held.reason and "monitor.cooldown_hours = 48" in held.reason
    assert not held.page  # data drift alone, right after a retraining: nothing for a person to do yet
    claim_episodes(engine, spec.name, "drift__1")
    busy = window(spec, engine, 1, reasons=DRIFT + DECAY)  # the same window judged again (a retry) replaces it
    assert busy.action == "held_cooldown" and not busy.page and "run drift__1 is retraining" in busy.reason
    settle_episodes(engine, spec.name, "drift__1", "retrained: version 4, rejected")
    worse = window(spec, engine, 1, reasons=DRIFT + DECAY)
    assert worse.action == "held_cooldown" and worse.page  # the retraining ended, and version 3 still degrades
    assert "its retraining drift__1 ended: retrained: version 4, rejected" in worse.reason
    assert len(history(engine, spec.name)) == 2
    assert open_episodes(engine, spec.name) == []  # one episode in all, retrained once
    assert window(spec, engine, 2).emit  # 48 hours (data time) after the first episode's window: the next one


def test_a_spent_budget_holds_the_retraining_back_and_pages(spec, engine):
    spec = with_monitor(spec, sustain=1)
    problem = (
        "budget 'risk' is spent: 99.00 of 100.00 USD this month (2026-06); a retraining of 16 trials reserves up to "
        "4.00 USD"
    )
    held = window(spec, engine, 0, budget=problem)
    assert held.action == "held_budget" and held.reason == problem and held.page and not held.emit
    assert open_episodes(engine, spec.name) == []
    again = window(spec, engine, 1, budget=problem)  # still spent: recorded, but on-call was told already
    assert again.action == "held_budget" and not again.page


def test_a_retried_monitoring_run_announces_its_own_episode_again(spec, engine):
    spec = with_monitor(spec, sustain=1)
    first = window(spec, engine, 0)
    retry = window(spec, engine, 0)  # the task failed after deciding (its report upload), and ran again
    assert retry.emit and retry.episode == first.episode and len(open_episodes(engine, spec.name)) == 1


def test_the_latest_run_of_each_spec_is_on_the_metrics_endpoint(spec, engine):
    from prometheus_client.parser import text_string_to_metric_families

    from ativo.monitor.stats import Drift
    from ativo.ops.metrics import render

    spec = with_monitor(spec, sustain=1)
    window(spec, engine, 0, reasons=[])
    start, end = T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=2)
    drift = [Drift("age", 0.41, 1e-30, True, True, DRIFT[0]), Drift("score", 0.02, 0.4, False, False, "score: …")]
    a = Assessment(
        spec.name,
        "3",
        5000,
        judged=True,
        drifted=True,
        reasons=DRIFT,
        drift=drift,
        performance={"estimated_auc": 0.83, "estimated_auc_std": 0.006, "reference_auc": 0.92},
        fairness=[{"attribute": "sex", "metric": "selection_rate", "difference": 0.21}],
    )
    decide(engine, spec, a, window_start=start, window_end=end, report_uri="runs:/r/x", now=end)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(render(engine, {"cpu": 1.0}).decode())
        for s in fam.samples
    }
    model = ("model", spec.name)
    assert samples[("ativo_drift_detected", (model, ("version", "3")))] == 1.0  # the latest window, not the calm one
    assert samples[("ativo_drift_psi", (("feature", "age"), model))] == 0.41
    assert samples[("ativo_drift_p_value", (("feature", "score"), model))] == 0.4
    assert samples[("ativo_estimated_auc", (model, ("version", "3")))] == 0.83
    assert samples[("ativo_fairness_difference", (("attribute", "sex"), ("metric", "selection_rate"), model))] == 0.21
    assert samples[("ativo_monitor_window_rows", (model,))] == 5000
    assert samples[("ativo_monitor_last_run_timestamp_seconds", (model,))] == end.timestamp()
    assert samples[("ativo_drift_episodes", (model,))] == 1.0
    assert samples[("ativo_drift_held", (model, ("why", "budget")))] == 0.0
