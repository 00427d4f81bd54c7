"""Benchmark: the whole gate suite on the reference model, in one process, gate after gate.

A throw-away Ativo home gets the UCI Adult reference data (48,842 rows) through the ETL steps; two one-trial
searches register two versions in MLflow (SQLite, local artifacts), the first becomes ``champion``, and every gate of
the spec runs on the second through the same code the training DAG's gate tasks call (serving's loader, the pinned
split). In the DAG the gates run as parallel tasks, so this sequential figure is an upper bound of their own work.

Usage: ``.venv/bin/python bench/gates.py [SPEC] [--trials N] [--smoke]`` (default ``adult_income``, 2 trials: the
first becomes the champion). ``--smoke`` runs every gate with the cheaper bounds of
``tests.support.scenarios.cheap_gates`` (20 robustness attack samples, 1,000 privacy samples), for ``make
bench-smoke``: its figures are not the suite's.

Then the verdicts' stability and power (:mod:`verdicts`, ``--stability N``, default 20; 1 with ``--smoke``; 0 skips
it): ``N`` retrainings of the spec's configuration on the pinned split minus one random row, each with another seed,
judged by every data gate against the reference's verdict (flip rate; the share rejected is the A/A rejection), and
``N`` models made worse by a known amount per gate (power). The last line is JSON with ``suite_s``, ``gates`` (name
→ pass/fail), ``flip_rate_max``, ``aa_reject_max``, ``power_min`` and the per-gate figures.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support and ativo_dev, from the repository (neither is installed)
sys.path.insert(0, str(ROOT / "bench"))  # verdicts
HOME = Path(tempfile.mkdtemp(prefix="ativo-bench-gates-"))
os.environ.update(
    ATIVO_HOME=str(HOME),
    ATIVO_MLFLOW_TRACKING_URI=f"sqlite:///{HOME / 'mlflow.db'}",
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    MLFLOW_DISABLE_TELEMETRY="true",
)
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))

SPEC = next((a for a in sys.argv[1:] if not a.startswith("-") and not a.isdigit()), "adult_income")
TRIALS = int(sys.argv[sys.argv.index("--trials") + 1]) if "--trials" in sys.argv else 2
SMOKE = "--smoke" in sys.argv
STABILITY = int(sys.argv[sys.argv.index("--stability") + 1]) if "--stability" in sys.argv else (1 if SMOKE else 20)


def main() -> None:
    """Land, train and register one model, run the suite, print a summary and one JSON line."""

    from ativo.config import load_settings
    from ativo.evaluate.suite import GATES, load_candidate, publish, run_gate
    from ativo.spec import get_spec
    from ativo.train.search import finish_search, plan_search, search_trial
    from tests.support.harness import land_dataset

    settings = load_settings()
    spec = get_spec(SPEC, settings.specs_dir)
    if SMOKE:
        from tests.support.scenarios import cheap_gates

        spec = cheap_gates(spec)
    try:
        tag = land_dataset(settings, SPEC, days=3)
        meta = {"dag_id": "bench-gates", "dag_run_id": "bench"}
        for slot in range(TRIALS):  # the first becomes the champion, the last is judged against it
            plan = plan_search(spec, settings, tag, {**meta, "dag_run_id": f"bench-{slot}"}, n_trials=1)
            search_trial(spec, settings, plan, meta, slot=slot, threads=os.cpu_count())
            registered = finish_search(spec, settings, plan, meta)
            print(f"  v{registered['model_version']}: test AUC {registered['metrics']['test_auc']:.4f}")
            if slot == 0:  # the champion serves through the registry's one writer: its gates first
                from ativo.deploy.promotion import promote
                from ativo.evaluate.suite import publish, run_suite

                first = registered["model_version"]
                publish(spec, settings, first, run_suite(spec, settings, first))
                promote(spec, settings, first, reason="benchmark: the champion", actor="bench")
        version = registered["model_version"]
        print(
            f"model {spec.name} v{version} on {tag} ({registered['metrics']['test_auc']:.4f} test AUC), "
            "judged against v1 as champion"
        )

        started = time.perf_counter()
        candidate = load_candidate(spec, settings, version)
        load_s = time.perf_counter() - started
        results = [run_gate(name, candidate) for name in GATES]
        suite_s = time.perf_counter() - started
        t = time.perf_counter()
        report = publish(spec, settings, version, results)
        publish_s = time.perf_counter() - t
        stability: dict = {}
        if STABILITY > 0:
            import verdicts

            print(f"verdict stability and power: {STABILITY} retrainings and {STABILITY} worse models per gate")
            stability = verdicts.measure(spec, candidate.split, STABILITY, log=lambda line: print(f"  {line}"))
    finally:
        shutil.rmtree(HOME, ignore_errors=True)
    print(f"loading the candidate (serving loader + pinned split): {load_s:6.2f} s")
    for r in results:
        print(f"  {r.gate:15s} {'PASS' if r.passed else 'FAIL'}  {r.seconds:6.2f} s  {r.reason[:110]}")
    print(
        f"suite {suite_s:.1f} s (target < 60 s on 2 cores); report + card published in {publish_s:.1f} s; "
        f"verdict: {report['verdict']}"
    )
    if stability:
        print(
            f"over {STABILITY} retrainings: verdict flip rate at most {stability['flip_rate_max']:.1%} (target ≤ 1 %), "
            f"A/A rejection at most {stability['aa_reject_max']:.1%} (≤ 5 %), power at least "
            f"{stability['power_min']:.0%} (≥ 90 %), in {stability['stability_s']:.0f} s"
        )
    print(
        json.dumps(
            {
                "suite_s": round(suite_s, 2),
                "load_s": round(load_s, 2),
                "publish_s": round(publish_s, 2),
                "gates": {r.gate: "pass" if r.passed else "fail" for r in results},
                "gate_s": {r.gate: r.seconds for r in results},
                "verdict": report["verdict"],
                "dataset_version": tag,
                "test_rows": len(candidate.split.test),
                "cores": os.cpu_count(),
                "smoke": SMOKE,
                **stability,
            }
        )
    )


if __name__ == "__main__":
    main()
