"""Benchmark: Ativo's inference API against ``mlflow models serve`` for the same model, on loopback.

One XGBoost model is trained on the UCI Adult reference data (48,842 rows, the spec's parameters) and registered
twice in a throw-away MLflow registry (SQLite, local artifacts): as training registers it (native UBJ, sha256
tag) for ``ativo serve``, and with a numeric signature for ``mlflow models serve``. MLflow's XGBoost flavour cannot
score this model from its raw rows: it builds a DMatrix without ``enable_categorical``, so string categories are
refused (checked below and reported); it is therefore sent the rows already encoded as category codes
(``dataframe_split``), while Ativo gets the raw rows and validates every field against the spec. Both servers run
uvicorn with one worker, one after the other, and are driven by the same closed-loop generator
(:mod:`devtools.loadgen`, keep-alive connections) with single rows and with 100-row batches. Ativo also writes its
prediction log (Parquet, with the top contributions of every row) while it is measured; MLflow logs nothing.

Usage: ``.venv/bin/python bench/serve.py [--duration 15] [--concurrency 4]``. The last line is one JSON object
with ``ativo_rps``, ``mlflow_rps``, ``rps_ratio``, ``ativo_p99_ms``, ``mlflow_p99_ms`` (single row) and the same
for batches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ativo import http
from ativo.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(tempfile.mkdtemp(prefix="ativo-bench-serve-"))
os.environ.update(ATIVO_HOME=str(HOME), ATIVO_MLFLOW_TRACKING_URI=f"sqlite:///{HOME / 'mlflow.db'}",
                  MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false", MLFLOW_DISABLE_TELEMETRY="true")  # fmt: skip
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))

SPEC = "adult_income"


def _mlflow_server(model_uri: str, port: int, tracking_uri: str) -> subprocess.Popen:
    env = dict(
        os.environ, MLFLOW_TRACKING_URI=tracking_uri, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    )  # its uvicorn
    log = open(HOME / "mlflow-serve.log", "wb")  # noqa: SIM115  # closed with the process
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited: {(HOME / 'mlflow-serve.log').read_text()[-2000:]}")
        http.get_text(f"http://127.0.0.1:{port}/ping", timeout=2, attempts=1)
        return True

    wait_until(answers, 120, 0.5, "mlflow models serve to answer /ping", retry_on=(http.HttpError,))
    return proc


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """(status, parsed body) of one POST of a JSON body, whatever its status."""
    return http.parse_response(http.request("POST", url, doc=json.loads(body), headers=headers, timeout=30))


def main() -> None:
    """Train, register, serve with both, load both, print a table and one JSON line."""
    import mlflow
    import mlflow.xgboost
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from ativo.config import load_settings
    from ativo.data.features import to_features
    from ativo.data.landing import reference_records
    from ativo.deploy.promotion import promote
    from ativo.evaluate.suite import request_rows
    from ativo.model.served import ServedModel
    from ativo.spec import get_spec
    from ativo.train.trainer import fit, split_frame
    from devtools.harness import free_port, register_booster, start_server
    from devtools.loadgen import run_load

    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args()

    settings = load_settings()
    spec = get_spec(SPEC, settings.specs_dir)
    raw = reference_records(spec, settings.reference_dir)
    raw[spec.data_schema.event_time] = "2026-01-01"
    split = split_frame(to_features(raw, spec), spec)
    t0 = time.perf_counter()
    booster = fit(spec, split, threads=2).booster
    print(f"trained on {len(split.train)} rows in {time.perf_counter() - t0:.1f}s "
          f"({booster.num_boosted_rounds()} trees)", flush=True)  # fmt: skip
    uri = settings.mlflow_tracking_uri
    version = register_booster(uri, spec.registered_model_name, booster, artifact_root=HOME / "artifacts")
    promote(spec, settings, version, reason="benchmark")

    rows = request_rows(spec, split.test, 500)
    served = ServedModel(spec=spec, name=spec.name, version=version, booster=booster, sha256="")
    codes = served.encode(rows).astype(np.float64)
    names = spec.data_schema.feature_names
    # MLflow's copy: same booster, numeric signature (category codes), logged by MLflow's own flavour (the baseline,
    # not Ativo's artifact contract).
    mlflow.set_tracking_uri(uri)
    frame = pd.DataFrame(codes, columns=names)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(booster, name="model", model_format="ubj", pip_requirements=["xgboost"],
                                        signature=infer_signature(frame, served.score(codes.astype(np.float32))),
                                        registered_model_name="adult_income_mlflow_bench")  # fmt: skip
    mlflow_uri = f"models:/adult_income_mlflow_bench/{info.registered_model_version}"

    ativo_single = [json.dumps({"features": r, "subject_id": f"s-{i}"}).encode() for i, r in enumerate(rows)]
    ativo_batch = [json.dumps({"rows": [{"features": r} for r in rows[i : i + 100]]}).encode()
                   for i in range(0, 500, 100)]  # fmt: skip
    ml_single = [json.dumps({"dataframe_split": {"columns": names, "data": [list(map(_num, c))]}}).encode()
                 for c in codes]  # fmt: skip
    ml_batch = [json.dumps({"dataframe_split": {"columns": names,
                                                "data": [list(map(_num, c)) for c in codes[i : i + 100]]}}).encode()
                for i in range(0, 500, 100)]  # fmt: skip
    raw_refused = _mlflow_on_raw_rows(spec, split, booster, rows[:3])
    print(f"MLflow's pyfunc on raw rows (the model logged as training logs it): {raw_refused}", flush=True)

    results: dict[str, dict] = {}
    port = free_port()
    proc = _mlflow_server(mlflow_uri, port, uri)
    try:
        status, body = _post(f"http://127.0.0.1:{port}/invocations", ml_single[0], {})
        ml_score = body["predictions"][0]
        for name, bodies in (("single", ml_single), ("batch100", ml_batch)):
            r = run_load(f"http://127.0.0.1:{port}/invocations", bodies, concurrency=args.concurrency,
                         duration_s=args.duration, warmup_s=2)  # fmt: skip
            results[f"mlflow_{name}"] = r.summary()
            print(f"mlflow {name:9s} {r.summary()}", flush=True)
    finally:
        _stop(proc)

    server = start_server(settings, SPEC)
    try:
        headers = {"Authorization": f"Bearer {server.key}"}
        status, body = _post(server.url + "/predict", ativo_single[0], headers)
        ativo_score = body["score"]
        for name, bodies in (("single", ativo_single), ("batch100", ativo_batch)):
            r = run_load(server.url + "/predict", bodies, headers=headers, concurrency=args.concurrency,
                         duration_s=args.duration, warmup_s=2)  # fmt: skip
            results[f"ativo_{name}"] = r.summary()
            print(f"ativo  {name:9s} {r.summary()}", flush=True)
        health = http.get_json(server.url + "/health", timeout=30)
    finally:
        server.stop()

    a, m = results["ativo_single"], results["mlflow_single"]
    ab, mb = results["ativo_batch100"], results["mlflow_batch100"]
    out = {
        "ativo_rps": a["rps"], "mlflow_rps": m["rps"], "rps_ratio": round(a["rps"] / m["rps"], 2),
        "ativo_p50_ms": a["p50_ms"], "mlflow_p50_ms": m["p50_ms"],
        "ativo_p99_ms": a["p99_ms"], "mlflow_p99_ms": m["p99_ms"],
        "p99_ratio": round(m["p99_ms"] / a["p99_ms"], 2),
        "ativo_batch_rps": ab["rps"], "mlflow_batch_rps": mb["rps"], "batch_rps_ratio": round(ab["rps"] / mb["rps"], 2),
        "ativo_batch_rows_per_s": round(ab["rps"] * 100), "mlflow_batch_rows_per_s": round(mb["rps"] * 100),
        "ativo_batch_p99_ms": ab["p99_ms"], "mlflow_batch_p99_ms": mb["p99_ms"],
        "failed": {k: v["failed"] for k, v in results.items()},
        "same_score": abs(ativo_score - ml_score) < 1e-6,
        "mlflow_raw_rows": raw_refused,
        "ativo_log_rows_written": health["prediction_log"]["written_rows"],
        "concurrency": args.concurrency, "duration_s": args.duration, "workers": 1,
    }  # fmt: skip
    print()
    print(f"{'':22s}{'ativo serve':>14s}{'mlflow serve':>14s}{'ratio':>8s}")
    print(f"{'single row req/s':22s}{a['rps']:14.0f}{m['rps']:14.0f}{out['rps_ratio']:8.2f}")
    print(f"{'single row p50 ms':22s}{a['p50_ms']:14.2f}{m['p50_ms']:14.2f}")
    print(f"{'single row p99 ms':22s}{a['p99_ms']:14.2f}{m['p99_ms']:14.2f}{out['p99_ratio']:8.2f}")
    print(f"{'100-row batch req/s':22s}{ab['rps']:14.0f}{mb['rps']:14.0f}{out['batch_rps_ratio']:8.2f}")
    print(f"{'100-row batch p99 ms':22s}{ab['p99_ms']:14.2f}{mb['p99_ms']:14.2f}")
    print(json.dumps(out))
    shutil.rmtree(HOME, ignore_errors=True)


def _mlflow_on_raw_rows(spec, split, booster, rows) -> str:  # noqa: ANN001
    """What MLflow's own pyfunc does with raw rows for the model as training logs it (string categories)."""
    import mlflow
    import pandas as pd

    from ativo.model.artifact import log_booster
    from ativo.model.encoding import design_matrix

    with mlflow.start_run():
        logged = log_booster(booster, signature_sample=design_matrix(split.valid.head(200), spec))
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("float64")
    try:
        mlflow.pyfunc.load_model(logged.uri).predict(frame)
    except Exception as err:
        return f"refused: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return "accepted"


def _num(x: float) -> float | None:
    return None if x != x else float(x)  # NaN (a missing category) as JSON null


if __name__ == "__main__":
    main()
