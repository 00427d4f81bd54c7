"""Benchmark: the same seeded search run (a) by the Airflow training DAG and (b) in one Python process.

Both run on this machine's cores with the same concurrency: the Airflow DAG on a real platform (Airflow's four
components with the LocalExecutor, pool ``cpu_train`` with ``--pool-slots`` slots, an MLflow server; as many trial
workers as slots, each running trial after trial), the in-process search with as many threads. Each trial uses
one XGBoost thread per pool slot it holds, asks the same study type (seeded per trial slot), trains with pruning,
logs an MLflow child run and tells the study; both register the best trial's model. Only the orchestration differs.

``airflow_s`` runs from the trigger request (REST API) to the end of ``register_best``, so it includes scheduling,
task start-up, pinning the dataset and registration (the gates that follow in the same DAG run are not part of the
search; the whole run is ``airflow_run_with_gates_s``); a one-trial run goes first so that the platform is warm, as one
that has been up a while is (its time is ``airflow_warm_up_s``). ``inprocess_s`` covers plan, trials and
registration, in a process that has imported its libraries, like the DAG's workers.

Then trigger → challenger decision: ``airflow_until_decision_s`` (to the end of ``decide``: search, the gate tasks,
the report and card) against ``inprocess_until_decision_s`` (the in-process search, then the same gates and
``publish`` on its registered version in the same process): ``ratio_with_gates``. The run's task timeline is in the
JSON (``timeline``) and summarised per phase.

Usage: ``.venv/bin/python bench/hpo.py [--trials 16] [--pool-slots 2] [--days 3]``. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support and ativo_dev, from the repository (neither is installed)
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SPEC = "adult_income"


def in_process(settings, spec, tag: str, n_trials: int, workers: int) -> dict:
    """Plan, run the trials on ``workers`` threads (each under the compute session), register the best."""
    from ativo.compute.session import ComputeSession
    from ativo.train.search import finish_search, plan_search, search_trial

    started = time.monotonic()
    meta = {"dag_id": "bench-inprocess", "dag_run_id": "inprocess"}
    plan = plan_search(spec, settings, tag, meta, n_trials=n_trials, study_name=f"{spec.name}/bench-inprocess")

    def one(slot: int) -> dict:
        t0 = time.monotonic()
        with ComputeSession(spec, settings, task_key=f"{spec.name}.bench-trial", holder=f"inprocess/{slot}") as cs:
            out = search_trial(
                spec, settings, plan, meta, slot=slot, device=cs.placement.device, threads=cs.placement.threads
            )
        out["seconds"] = time.monotonic() - t0
        return out

    with ThreadPoolExecutor(max_workers=workers) as pool:
        trials = list(pool.map(one, range(n_trials)))
    registered = finish_search(spec, settings, plan, meta)
    searched = time.monotonic() - started
    # the gates and the decision on the registered version, as the DAG's gate tasks and `decide` do them
    from ativo.evaluate.suite import GATES, publish, run_suite

    t0 = time.monotonic()
    results = run_suite(spec, settings, registered["model_version"])
    report = publish(spec, settings, registered["model_version"], results, GATES)
    return {
        "seconds": searched,
        "gates_s": time.monotonic() - t0,
        "trials": trials,
        "registered": registered,
        "verdict": report["verdict"],
        "gate_s": {r.gate: r.seconds for r in results},
    }


def _rows(settings, tag: str) -> int:
    from ativo.data.versioning import open_registry
    from ativo.store.db import get_engine

    return int(open_registry(settings).resolve(get_engine(settings.db_url), SPEC, tag).rows)


def scenario(name: str, trials: int, pool_slots: int, days: int, rows: int | None, keep: Path | None) -> dict:
    """Both ways on one dataset, each on a platform of its own; returns the figures."""
    from ativo.config import load_settings
    from ativo.spec import get_spec
    from ativo_dev import supervisor
    from tests.support.harness import isolated_platform, land_dataset, run_search_on_airflow

    home = keep / name if keep else Path(tempfile.mkdtemp(prefix=f"ativo-bench-hpo-{name}-"))
    with isolated_platform(home) as settings:
        spec = get_spec(SPEC, settings.specs_dir)
        tag = land_dataset(settings, SPEC, days=days, rows=rows)
        rows_of = _rows(settings, tag)
        print(f"[{name}] dataset {tag} ready; {trials} trials, {pool_slots} at a time, {os.cpu_count()} cores")
        supervisor.start_mlflow(settings)
        live = load_settings(supervisor.platform_env(settings))  # tracking on the MLflow server, like the tasks
        import ativo.airflow.warm  # noqa: F401  # the libraries the DAG's workers have preloaded

        inproc = in_process(live, spec, tag, trials, pool_slots)
        print(f"[{name}] in-process: {inproc['seconds']:.1f} s, best trial {inproc['registered']['trial_number']}")
        # the DAG's search finds the same best model: unregistered here, it is not refused as a duplicate there
        from mlflow import MlflowClient

        MlflowClient(live.mlflow_tracking_uri).delete_registered_model(spec.registered_model_name)
        supervisor.stop_services(settings)  # the in-process half ran alone; the DAG gets a fresh platform
        shutil.rmtree(settings.home / "cache", ignore_errors=True)  # the DAG reads the dataset cold, too
        # the warm-up trains the version before: its one-trial model is then never the timed search's best (trial 0
        # winning there, as it can in a short search), which register_best would refuse as a duplicate
        number = int(tag.rsplit("-v", 1)[1])
        before = f"{SPEC}-v{number - 1:04d}" if number > 1 else None
        run = run_search_on_airflow(
            settings, SPEC, tag, trials, pool_slots=pool_slots, warm_up=True, warm_up_tag=before
        )
        if run.state != "success" or run.registered is None:
            raise SystemExit(f"the Airflow run ended {run.state}; see {settings.home / 'logs'}")
    if keep is None:
        shutil.rmtree(home, ignore_errors=True)
    search_s = run.seconds_until("register_best")
    assert search_s is not None, "register_best did not finish"
    decided_s = run.seconds_until("decide")
    auc_a = float(run.registered["metrics"]["valid_auc"])
    auc_i = float(inproc["registered"]["metrics"]["valid_auc"])
    out = {
        "dataset_version": tag,
        "rows": rows_of,
        "airflow_s": round(search_s, 2),
        "inprocess_s": round(inproc["seconds"], 2),
        "ratio": round(search_s / inproc["seconds"], 3),
        "airflow_run_with_gates_s": round(run.wall_s, 2),
        "airflow_until_decision_s": round(decided_s or float("nan"), 2),
        "inprocess_gates_s": round(inproc["gates_s"], 2),
        "inprocess_until_decision_s": round(inproc["seconds"] + inproc["gates_s"], 2),
        "ratio_with_gates": round((decided_s or float("nan")) / (inproc["seconds"] + inproc["gates_s"]), 3),
        "verdict_inprocess": inproc["verdict"],
        "inprocess_gate_s": inproc["gate_s"],
        "inprocess_trial_s_sum": round(sum(t["seconds"] for t in inproc["trials"]), 2),
        "timeline": timeline(run),
        "auc_airflow": round(auc_a, 5),
        "auc_inprocess": round(auc_i, 5),
        "auc_diff": round(abs(auc_a - auc_i), 5),
        "test_auc_airflow": round(float(run.registered["metrics"]["test_auc"]), 5),
        "test_auc_inprocess": round(float(inproc["registered"]["metrics"]["test_auc"]), 5),
        "trial_states_airflow": run.registered["trials"],
        "trial_states_inprocess": inproc["registered"]["trials"],
        "airflow_trial_task_s_sum": round(sum(float(t["duration"] or 0) for t in run.trials()), 2),
        "airflow_warm_up_s": round(run.warm_up_s or 0, 2),
        "max_concurrent_trial_workers_airflow": run.max_concurrent("trials"),
    }
    for how, key in (("Airflow DAG", "airflow"), ("in-process ", "inprocess")):
        print(
            f"[{name}] {how}: {out[f'{key}_s']:6.1f} s  best valid AUC {out[f'auc_{key}']:.4f}  "
            f"trials {out[f'trial_states_{key}']}"
        )
    print(f"[{name}] ratio {out['ratio']:.3f} (target <= 1.3), AUC difference {out['auc_diff']:.4f} (target <= 0.002)")
    print(
        f"[{name}] trigger -> decision: Airflow {out['airflow_until_decision_s']:.1f} s vs in-process "
        f"{out['inprocess_until_decision_s']:.1f} s (search + gates {out['inprocess_gates_s']:.1f} s): ratio "
        f"{out['ratio_with_gates']:.3f} (target <= 1.5)"
    )
    for line in explain(out["timeline"], out["inprocess_trial_s_sum"]):
        print(f"[{name}]   {line}")
    return out


def timeline(run) -> list[dict]:
    """Every task instance of the run: when it was queued, started and ended, seconds after the trigger."""
    from tests.support.harness import _ts

    def after(value):  # noqa: ANN001, ANN202
        t = _ts(value)
        return None if t is None else round((t - run.triggered_at).total_seconds(), 3)

    rows = [
        {
            "task": t["task_id"],
            "map_index": t["map_index"],
            "state": t["state"],
            "queued": after(t.get("queued_when")),
            "start": after(t.get("start_date")),
            "end": after(t.get("end_date")),
        }
        for t in run.task_instances
    ]
    return sorted(rows, key=lambda r: (r["start"] is None, r["start"] or 0))


def explain(rows: list[dict], inprocess_trial_s: float) -> list[str]:
    """Where the Airflow run's time went: each phase's span, and the gaps between tasks."""

    def span(prefix: str) -> tuple[float, float, float]:
        mine = [r for r in rows if r["task"].startswith(prefix) and r["start"] is not None and r["end"] is not None]
        if not mine:
            return float("nan"), float("nan"), 0.0
        return min(r["start"] for r in mine), max(r["end"] for r in mine), sum(r["end"] - r["start"] for r in mine)

    out = []
    for prefix in ("plan_search", "trials", "register_best", "gate", "decide", "announce_challenger"):
        start, end, busy = span(prefix)
        n = sum(1 for r in rows if r["task"].startswith(prefix))
        out.append(f"{prefix:20} x{n:<3} {start:7.2f} -> {end:7.2f} s  (task seconds {busy:6.2f})")
    workers = [r for r in rows if r["task"] == "trials" and r["start"] is not None]
    if workers:
        busy = sum(r["end"] - r["start"] for r in workers)
        out.append(
            f"trial workers' task seconds {busy:.1f} vs the same trials in one process {inprocess_trial_s:.1f}: "
            f"{(busy - inprocess_trial_s) / len(workers):.2f} s more per worker task ({len(workers)} workers)"
        )
    return out


def main() -> None:
    """Run both scenarios, print a summary and one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--pool-slots", type=int, default=2, help="cpu_train slots = in-process threads")
    parser.add_argument("--days", type=int, default=3, help="days the reference data is landed over")
    parser.add_argument(
        "--scaled-rows",
        type=int,
        default=320_000,
        help="rows of the scaled scenario (resampled reference rows); 0 skips it",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep each platform's state under this directory")
    args = parser.parse_args()

    wall = time.monotonic()
    result: dict = {"trials": args.trials, "pool_slots": args.pool_slots, "cores": os.cpu_count()}
    reference = scenario("reference", args.trials, args.pool_slots, args.days, None, args.keep)
    result.update(reference)  # the headline figures: the spec's search on the reference data
    if args.scaled_rows:
        result["scaled"] = scenario("scaled", args.trials, args.pool_slots, args.days, args.scaled_rows, args.keep)
    result["bench_wall_s"] = round(time.monotonic() - wall, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
