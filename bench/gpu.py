"""Benchmark and check of the GPU training path: leases, ``CUDA_VISIBLE_DEVICES``, XGBoost ``device="cuda"``.

Run it on a host with an NVIDIA GPU (it needs only xgboost, pandas, scikit-learn, pydantic, SQLAlchemy, PyYAML and
the reference data; no Airflow or MLflow). With the spec's parameters and a fixed number of rounds (no early
stopping, so both devices do the same work) it trains the reference data (48,842 rows) and a resampled scale-up
(``--scaled-rows``) on the CPU (all cores) and on the GPU, the GPU run inside Ativo's real ``ComputeSession``: a
lease from the platform DB (SQLite here) that sets ``CUDA_VISIBLE_DEVICES``. It also checks that a second task
finds the only GPU leased and, by the spec's ``gpu_fallback``, fails clearly or runs on the CPU, and that the
booster really trained on CUDA. Without a GPU it says so (the JSON line: ``gpus`` empty, ``skipped`` the reason)
and exits 3.

Usage: ``python bench/gpu.py [--scaled-rows 320000] [--rounds 400]``. The last line is one JSON object.
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
sys.path.insert(0, str(ROOT / "include"))
HOME = Path(tempfile.mkdtemp(prefix="ativo-bench-gpu-"))
os.environ.update(ATIVO_HOME=str(HOME))
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))


def main() -> int:
    """Train on both devices, check the lease semantics, print a summary and one JSON line."""
    import json as _json

    import xgboost as xgb

    from ativo.compute.leases import LeaseManager, detect_gpus
    from ativo.compute.session import ComputeSession, NoDeviceAvailable, place
    from ativo.config import load_settings
    from ativo.data.features import to_features
    from ativo.data.landing import reference_records, synthesize
    from ativo.data.split import split_frame
    from ativo.spec import get_spec
    from ativo.store.db import get_engine
    from ativo.train.trainer import fit

    p = argparse.ArgumentParser()
    p.add_argument("--scaled-rows", type=int, default=320_000)
    p.add_argument("--rounds", type=int, default=400)
    args = p.parse_args()

    gpus = detect_gpus()
    if not gpus:
        reason = "no GPU on this host (nvidia-smi finds none)"
        print(f"{reason}: nothing to measure")
        print(json.dumps({"gpus": [], "skipped": reason}))
        return 3
    settings = load_settings()
    base = get_spec("adult_income", settings.specs_dir)
    model = base.model.model_copy(update={"num_boost_round": args.rounds, "early_stopping_rounds": None})
    cpu_spec = base.model_copy(update={"model": model})
    gpu_compute = base.compute.model_copy(update={"device": "cuda", "gpu_fallback": "fail"})
    gpu_spec = cpu_spec.model_copy(update={"compute": gpu_compute})
    cores = os.cpu_count() or 1
    engine = get_engine(settings.db_url)
    out: dict = {"gpus": gpus, "cpu_cores": cores, "xgboost": xgb.__version__, "rounds": args.rounds}

    def data(rows: int | None):  # noqa: ANN202
        ref = settings.reference_dir
        raw = synthesize(base, ref, rows) if rows else reference_records(base, ref)
        raw[base.data_schema.event_time] = "2026-01-01"
        return split_frame(to_features(raw, base), base)

    for name, rows in (("reference", None), ("scaled", args.scaled_rows)):
        if name == "scaled" and not rows:
            continue
        split = data(rows)
        t0 = time.perf_counter()
        cpu = fit(cpu_spec, split, device="cpu", threads=cores)
        cpu_s = time.perf_counter() - t0
        with ComputeSession(
            gpu_spec, settings, task_key="bench.gpu", holder=f"bench-{name}", heartbeat=dt.timedelta(seconds=5)
        ) as session:
            placement = session.placement
            assert placement is not None and placement.device == "cuda", placement
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            # A second task while the only GPU is leased: fail clearly, or fall back to the CPU, as the spec says.
            # (A task waits up to 5 minutes for a GPU to free up; here it is asked not to wait.)
            ttl, no_wait = dt.timedelta(seconds=15), dt.timedelta(0)
            try:
                place(gpu_spec, engine, "second", devices=gpus, ttl=ttl, wait=no_wait)
                second_fail = "ran (wrong: the GPU is leased)"
            except NoDeviceAvailable as err:
                second_fail = f"refused: {err}"
            fallback_spec = gpu_spec.model_copy(
                update={"compute": gpu_spec.compute.model_copy(update={"gpu_fallback": "cpu"})}
            )
            second_fallback = place(fallback_spec, engine, "third", devices=gpus, ttl=ttl, wait=no_wait).device
            t0 = time.perf_counter()
            gpu = fit(gpu_spec, split, device="cuda", threads=cores)
            gpu_s = time.perf_counter() - t0
            config = _json.loads(gpu.booster.save_config())
        after = os.environ.get("CUDA_VISIBLE_DEVICES")
        leases_left = LeaseManager(engine, devices=gpus).list(all_hosts=True)
        out[name] = {
            "rows": len(split.train) + len(split.valid) + len(split.test),
            "cpu_s": round(cpu_s, 2),
            "gpu_s": round(gpu_s, 2),
            "speedup": round(cpu_s / gpu_s, 2),
            "cpu_test_auc": round(cpu.metrics["test_auc"], 4),
            "gpu_test_auc": round(gpu.metrics["test_auc"], 4),
            "booster_device": config["learner"]["generic_param"]["device"],
            "cuda_visible_devices_in_lease": visible,
            "cuda_visible_devices_after": after,
            "second_task_with_gpu_fallback_fail": second_fail,
            "second_task_with_gpu_fallback_cpu": second_fallback,
            "leases_left": len(leases_left),
        }
        r = out[name]
        print(
            f"{name:9s} {r['rows']:>8d} rows  CPU ({cores} threads) {r['cpu_s']:7.2f} s  GPU {r['gpu_s']:7.2f} s  "
            f"speedup {r['speedup']:5.2f}x  test AUC {r['cpu_test_auc']} / {r['gpu_test_auc']}  "
            f"lease CUDA_VISIBLE_DEVICES={visible} booster device={r['booster_device']}",
            flush=True,
        )
        print(f"          second task: {second_fail}; with gpu_fallback cpu: {second_fallback}", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
