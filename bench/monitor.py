"""One monitoring run on one day of the prediction log, as the MONITOR DAG's judge_window task does it.

A real XGBoost model of the reference spec is registered in a throw-away MLflow registry with its reference profile
(as training logs it); ``--rows`` decisions (default 100,000: one API process answering a row a second for a day
and more) of held-out reference rows, drawn with replacement and drifted (age +12), are written to a real prediction
log through ``PredictionLog`` for one day, with labels for a third of them. (Drawn with replacement from ~14,000
held-out rows, a 100,000-row window also shows that sample's own deviations from the training split as shifts beyond
noise; this bench times the run, ``bench/drift.py`` measures the statistics' calibration.) Then
:func:`ativo.monitor.run.monitor_window` is timed on that day: reading the log and the labels, the statistics, the
report (JSON + HTML with charts) logged beside the model card, the decision recorded. Each part is reported.

Prints a readable summary, then one JSON line. Usage: .venv/bin/python bench/monitor.py [--rows N] [--repeat K]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support (the harness and scenarios the tests use too), from the repository
DAY = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def setup(rows: int, home: Path) -> tuple:
    import numpy as np
    from mlflow import MlflowClient

    from ativo.config import load_settings
    from ativo.data.features import LABEL, to_features
    from ativo.data.landing import reference_records
    from ativo.data.split import split_frame
    from ativo.deploy.promotion import promote
    from ativo.model.served import ServedModel
    from ativo.monitor.profile import PROFILE_ARTIFACT, PROFILE_TAG, build_profile
    from ativo.serve.predlog import LabelLog, PredictionLog
    from ativo.spec import load_spec
    from ativo.store.objects import open_store
    from ativo.train.trainer import fit
    from tests.support.harness import register_booster
    from tests.support.scenarios import append_decisions

    os.environ["ATIVO_HOME"] = str(home)
    settings = load_settings()
    spec = load_spec(ROOT / "include" / "specs" / "adult_income.yaml")
    settings.reference_dir.mkdir(parents=True, exist_ok=True)
    raw = reference_records(spec, ROOT / "var" / "reference")
    raw[spec.data_schema.event_time] = "2026-01-01"
    split = split_frame(to_features(raw, spec), spec)
    quick = spec.model_copy(update={"model": spec.model.model_copy(update={"num_boost_round": 120})})
    booster = fit(quick, split, threads=2).booster
    version = register_booster(settings, spec, booster, artifact_root=home / "art")
    promote(spec, settings, version, reason="benchmark: the champion", actor="bench")
    client = MlflowClient(settings.mlflow_tracking_uri)
    model = ServedModel(spec=spec, name=spec.name, version=version, booster=booster, sha256="")
    profile = build_profile(
        spec,
        version,
        "adult_income-v0001",
        split.train,
        split.test,
        model.predict_frame(split.test),
        split.test[LABEL].to_numpy(),
    )
    mv = client.get_model_version(spec.registered_model_name, version)
    path = home / "profile.json"
    path.write_text(json.dumps(profile.to_dict()))
    client.log_artifact(mv.run_id, str(path), artifact_path=str(Path(PROFILE_ARTIFACT).parent))
    client.set_model_version_tag(
        spec.registered_model_name, version, PROFILE_TAG, f"runs:/{mv.run_id}/{PROFILE_ARTIFACT}"
    )

    store = open_store(settings)
    log, feedback = PredictionLog(store, spec, b"pepper", contributions="none"), LabelLog(store, spec)
    rng = np.random.default_rng(0)
    import pandas as pd

    pool = pd.concat([split.valid, split.test])
    t0 = time.perf_counter()
    for i in range(0, rows, 5000):
        n = min(5000, rows - i)
        frame = pool.iloc[rng.integers(0, len(pool), n)].copy()
        frame["age"] = (frame["age"] + 12).clip(upper=90)
        ts = DAY.timestamp() + 3600 + i * 0.5
        ids = append_decisions(log, spec, model, frame, ts, request_id=f"r{i}")
        labelled = slice(0, n // 3)
        feedback.append(ts + 60, ids[labelled], [int(v) for v in frame[LABEL].to_numpy()[labelled]])
    log.close()
    feedback.close()
    return spec, settings, time.perf_counter() - t0


def timed_parts(spec, settings) -> dict[str, float]:
    """The same work as monitor_window, part by part (no decision recorded)."""
    from ativo.model.registry import aliases
    from ativo.monitor.report import render_html
    from ativo.monitor.run import load_profile
    from ativo.monitor.window import assess, read_window
    from ativo.store.objects import open_store

    out: dict[str, float] = {}
    t = time.perf_counter()
    version = aliases(spec, settings)["champion"]
    profile, _ = load_profile(spec, settings, version)
    out["profile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    frame = read_window(open_store(settings), spec, DAY, DAY + dt.timedelta(days=1), version=version)
    out["read_s"] = time.perf_counter() - t
    t = time.perf_counter()
    a = assess(spec, profile, frame)
    out["assess_s"] = time.perf_counter() - t
    t = time.perf_counter()
    counts = a.counts
    doc = {
        "assessment": a.to_dict(),
        "decision": {"action": "-", "reason": "-"},
        "alpha": 0.01,
        "psi_threshold": 0.2,
        "window": {"start": "s", "end": "e"},
    }
    render_html(doc, profile, counts)
    out["report_s"] = time.perf_counter() - t
    out["rows"] = float(len(frame))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    import resource

    from ativo.monitor.run import monitor_window

    home = Path(tempfile.mkdtemp(prefix="ativo-bench-monitor-"))
    spec, settings, write_s = setup(args.rows, home)
    parts = timed_parts(spec, settings)
    runs = []
    doc: dict = {}
    for i in range(args.repeat):  # each run judges the same day again (its record is replaced)
        t = time.perf_counter()
        doc = monitor_window(spec, settings, DAY, DAY + dt.timedelta(days=1), dag_run_id=f"bench-{i}")
        runs.append(time.perf_counter() - t)
    a = doc["assessment"]
    print(
        f"one day of the prediction log: {args.rows} decisions (age +12), "
        f"{a['performance'].get('labelled_rows')} labelled; written in {write_s:.1f} s"
    )
    print("monitor_window: " + ", ".join(f"{r:.2f} s" for r in runs) + f" (best {min(runs):.2f} s)")
    print("  parts: " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if k != "rows"))
    print(f"  decision {doc['decision']['action']}: {'; '.join(a['reasons'][:3])}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "rows": args.rows,
        "monitor_run_s": round(min(runs), 3),
        "monitor_run_s_max": round(max(runs), 3),
        **{k: round(v, 3) for k, v in parts.items() if k != "rows"},
        "drifted": a["drifted"],
        "decision": doc["decision"]["action"],
        "peak_rss_mb": round(peak, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
